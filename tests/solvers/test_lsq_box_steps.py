"""The batched box geometry, robust losses, reflective and dogleg steps of the least-squares
engine against SciPy's private NumPy implementations, problem by problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize._lsq import common as sc
from scipy.optimize._lsq import dogbox as sd
from scipy.optimize._lsq import trf as st_
from scipy.optimize._lsq.least_squares import construct_loss_function

from jacobite.errors import InvalidOptionError, ShapeError
from jacobite.solvers.lsq.engine import box
from jacobite.solvers.lsq.engine.robust import RobustLoss, model, robust
from jacobite.solvers.lsq.engine.steps import dogleg, reflective

T = torch.float64


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _boxes(rng: np.random.Generator, B: int, n: int) -> tuple[np.ndarray, ...]:
    """Per-problem boxes (some sides open, some narrow) and a strictly feasible point in each."""
    lb = rng.uniform(-3, 0, (B, n))
    ub = lb + rng.choice([1e-3, 0.5, 4.0], (B, n))
    lb[rng.random((B, n)) < 0.3] = -np.inf
    ub[rng.random((B, n)) < 0.3] = np.inf
    lo = np.where(np.isfinite(lb), lb, np.where(np.isfinite(ub), ub - 5, -2.0))
    hi = np.where(np.isfinite(ub), ub, lo + 5)
    x = lo + rng.uniform(0.01, 0.99, (B, n)) * (hi - lo)
    on = rng.random((B, n)) < 0.15  # some exactly on a finite bound
    x = np.where(on & np.isfinite(lb), lb, x)
    return x, lb, ub


def _loss(loss, f_scale: np.ndarray) -> RobustLoss:
    out = robust(loss, _t(f_scale))
    assert out is not None
    return out


seeds = st.integers(0, 2 ** 31 - 1)


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 5))
def test_bound_geometry_matches_scipy_per_problem(seed, B, n):
    rng = np.random.default_rng(seed)
    x, lb, ub = _boxes(rng, B, n)
    s = rng.standard_normal((B, n)) * (rng.random((B, n)) < 0.8)
    g = rng.standard_normal((B, n)) * (rng.random((B, n)) < 0.8)
    t, hits = box.step_to_bound(_t(x), _t(s), _t(lb), _t(ub))
    act = box.find_active(_t(x), _t(lb), _t(ub), 1e-10)
    act0 = box.find_active(_t(x), _t(lb), _t(ub), 0.0)
    v, dv = box.cl_scaling(_t(x), _t(g), _t(lb), _t(ub))
    xs = box.make_strictly_feasible(_t(x), _t(lb), _t(ub))
    inb = box.in_bounds(_t(x + s), _t(lb), _t(ub))
    for i in range(B):
        t_ref, h_ref = sc.step_size_to_bound(x[i], s[i], lb[i], ub[i])
        assert t[i].item() == t_ref and hits[i].tolist() == h_ref.tolist()
        assert act[i].tolist() == sc.find_active_constraints(x[i], lb[i], ub[i]).tolist()
        assert act0[i].tolist() == sc.find_active_constraints(x[i], lb[i], ub[i], 0).tolist()
        v_ref, dv_ref = sc.CL_scaling_vector(x[i], g[i], lb[i], ub[i])
        assert np.array_equal(v[i].numpy(), v_ref) and np.array_equal(dv[i].numpy(), dv_ref)
        assert np.array_equal(xs[i].numpy(), sc.make_strictly_feasible(x[i], lb[i], ub[i], 0))
        assert bool(inb[i]) == sc.in_bounds(x[i] + s[i], lb[i], ub[i])


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 4), st.integers(1, 6))
def test_quadratic_helpers_match_scipy_per_problem(seed, B, n, m):
    rng = np.random.default_rng(seed)
    J = rng.standard_normal((B, m, n))
    g, s, s0 = (rng.standard_normal((B, n)) for _ in range(3))
    diag = rng.uniform(0, 2, (B, n))
    a, b, c = box.quadratic_1d(_t(J), _t(g), _t(s), _t(diag), _t(s0))
    q = box.evaluate_quadratic(_t(J), _t(g), _t(s), _t(diag))
    lo = rng.uniform(-1, 0, B)
    hi = lo + rng.uniform(0, 2, B)
    tm, ym = box.minimize_quadratic_1d(a, b, _t(lo), _t(hi), c)
    for i in range(B):
        ref = sc.build_quadratic_1d(J[i], g[i], s[i], diag=diag[i], s0=s0[i])
        np.testing.assert_allclose([a[i].item(), b[i].item(), c[i].item()], ref, rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(q[i].item(), sc.evaluate_quadratic(J[i], g[i], s[i], diag[i]),
                                   rtol=1e-12, atol=1e-12)
        t_ref, y_ref = sc.minimize_quadratic_1d(*ref[:2], lo[i], hi[i], c=ref[2])
        np.testing.assert_allclose([tm[i].item(), ym[i].item()], [t_ref, y_ref], rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("name", ["soft_l1", "huber", "cauchy", "arctan"])
def test_robust_losses_match_scipy_per_problem(name):
    rng = np.random.default_rng(3)
    f = rng.standard_normal((3, 7)) * np.array([[0.1], [1.0], [30.0]])
    f_scale = np.array([0.5, 1.0, 7.0])
    L = _loss(name, f_scale)
    rho, cost = L(_t(f)), L.cost(_t(f))
    J = rng.standard_normal((3, 7, 2))
    Jt, ft = L.scaled(_t(J), _t(f), rho)
    for i in range(3):
        ref = construct_loss_function(7, name, f_scale[i])
        r = ref(f[i].copy())
        np.testing.assert_allclose(rho[:, i].numpy(), r, rtol=1e-14, atol=0)
        np.testing.assert_allclose(cost[i].item(), ref(f[i], cost_only=True), rtol=1e-14)
        Jr, fr = sc.scale_for_robust_loss_function(J[i].copy(), f[i].copy(), r.copy())
        np.testing.assert_allclose(Jt[i].numpy(), Jr, rtol=1e-14)
        np.testing.assert_allclose(ft[i].numpy(), fr, rtol=1e-14)


def test_user_loss_in_scipy_convention():
    def loss(z):  # a NumPy callable, as SciPy takes it
        return np.vstack([np.log1p(z), 1 / (1 + z), -1 / (1 + z) ** 2])

    f = np.array([[0.5, -2.0], [3.0, 0.1]])
    L, ref = _loss(loss, np.array([1.0, 2.0])), _loss("cauchy", np.array([1.0, 2.0]))
    torch.testing.assert_close(L(_t(f)), ref(_t(f)), rtol=1e-15, atol=0)
    with pytest.raises(ShapeError, match=r"shape \(3, 4\)"):
        _loss(lambda z: z, np.ones(2))(_t(f))
    with pytest.raises(InvalidOptionError, match="loss must be"):
        robust("l2", _t(np.ones(1)))
    with pytest.raises(InvalidOptionError, match="f_scale"):
        robust("huber", _t(np.array([1.0, 0.0])))


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 4), st.integers(1, 6))
def test_reflective_select_step_matches_scipy_per_problem(seed, B, n, m):
    rng = np.random.default_rng(seed)
    x, lb, ub = _boxes(rng, B, n)
    x = box.make_strictly_feasible(_t(x), _t(lb), _t(ub)).numpy()
    J = rng.standard_normal((B, m, n))
    g = rng.standard_normal((B, n))
    scale_inv = rng.uniform(0.5, 2.0, (B, n))
    v, dv = box.cl_scaling(_t(x), _t(g), _t(lb), _t(ub))
    d, diag_h, g_h = reflective.hat_scaling(_t(g), _t(scale_inv), v, dv)
    Jh = _t(J) * d[:, None, :]
    delta = rng.uniform(0.1, 3.0, B)
    p_h = rng.standard_normal((B, n))
    p_h *= (delta * rng.uniform(0.2, 1.0, B) / np.linalg.norm(p_h, axis=1))[:, None]
    p = d.numpy() * p_h
    theta = np.maximum(0.995, 1 - np.abs(g).max(1))
    step, step_h, pred = reflective.select_step(_t(x), Jh, diag_h, g_h, _t(p), _t(p_h), d,
                                                _t(delta), _t(lb), _t(ub), _t(theta))
    for i in range(B):
        vi, dvi = sc.CL_scaling_vector(x[i], g[i], lb[i], ub[i])
        vi[dvi != 0] *= scale_inv[i][dvi != 0]
        di = vi ** 0.5 / scale_inv[i]
        np.testing.assert_allclose(d[i].numpy(), di, rtol=1e-15)
        ref = st_.select_step(x[i], J[i] * di, g[i] * dvi / scale_inv[i], di * g[i],
                              p[i].copy(), p_h[i].copy(), di, delta[i], lb[i], ub[i], theta[i])
        np.testing.assert_allclose(step[i].numpy(), ref[0], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(step_h[i].numpy(), ref[1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(pred[i].item(), ref[2], rtol=1e-9, atol=1e-12)
        assert np.all((x[i] + step[i].numpy() >= lb[i]) & (x[i] + step[i].numpy() <= ub[i]))


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 4), st.integers(1, 6))
def test_dogleg_step_matches_scipy_per_problem(seed, B, n, m):
    rng = np.random.default_rng(seed)
    x, lb, ub = _boxes(rng, B, n)
    on_bound = np.stack([np.where(x[i] == lb[i], -1, np.where(x[i] == ub[i], 1, 0))
                         for i in range(B)])
    J = rng.standard_normal((B, m, n))
    f = rng.standard_normal((B, m))
    g = np.einsum("bmn,bm->bn", J, f)
    delta = rng.uniform(0.05, 3.0, B)
    scale = rng.uniform(0.5, 2.0, (B, n))
    active = dogleg.active_set(_t(on_bound), _t(g))
    free = ~active
    gm = torch.where(active, 0.0, _t(g))
    newton = dogleg.newton_step(_t(J), _t(f), free)
    a, b = dogleg.cauchy_coefficients(_t(J) * free[:, None, :], gm)
    step, hits, tr_hit = dogleg.dogleg_step(_t(x), newton, gm, a, b, _t(delta)[:, None] *
                                            _t(scale), _t(lb), _t(ub))
    for i in range(B):
        fr = free[i].numpy()
        Jf = J[i][:, fr]
        nt = np.linalg.lstsq(Jf, -f[i], rcond=-1)[0]
        np.testing.assert_allclose(newton[i].numpy()[fr], nt, rtol=1e-9, atol=1e-10)
        assert np.all(newton[i].numpy()[~fr] == 0)
        ai, bi = sc.build_quadratic_1d(Jf, g[i][fr], -g[i][fr])
        ref = sd.dogleg_step(x[i][fr], nt, g[i][fr], ai, bi, delta[i] * scale[i][fr],
                             lb[i][fr], ub[i][fr])
        np.testing.assert_allclose(step[i].numpy()[fr], ref[0], rtol=1e-8, atol=1e-10)
        assert np.all(step[i].numpy()[~fr] == 0)
        assert hits[i].numpy()[fr].tolist() == ref[1].tolist()
        assert bool(tr_hit[i]) == bool(ref[2])


def test_trust_boundary_root_matches_scipy():
    rng = np.random.default_rng(0)
    p, r = rng.standard_normal((5, 3)) * 0.1, rng.standard_normal((5, 3))
    t = reflective.to_trust_boundary(_t(p), _t(r), _t(np.full(5, 2.0)))
    for i in range(5):
        np.testing.assert_allclose(t[i].item(), sc.intersect_trust_region(p[i], r[i], 2.0)[1],
                                   rtol=1e-13)
        np.testing.assert_allclose(np.linalg.norm(p[i] + t[i].item() * r[i]), 2.0, rtol=1e-13)


@settings(max_examples=25, deadline=None)
@given(seeds, st.sampled_from(["soft_l1", "huber", "cauchy", "arctan"]), st.integers(1, 3))
def test_robust_model_gradient_is_the_cost_gradient(seed, name, B):
    """``J̃ᵀ f̃`` of Triggs' correction is the gradient of ``½ Σ ρ(f²)`` (autograd through the
    loss's own ρ on ``f(x) = A x − b``), problem by problem."""
    rng = np.random.default_rng(seed)
    A, b = _t(rng.standard_normal((B, 6, 2))), _t(3 * rng.standard_normal((B, 6)))
    x = _t(rng.standard_normal((B, 2))).requires_grad_(True)
    L = _loss(name, rng.uniform(0.3, 2.0, B))
    f = (A @ x[..., None])[..., 0] - b
    (g_ad,) = torch.autograd.grad(L.cost(f).sum(), x)
    Jt, ft = model(A, f.detach(), L)
    torch.testing.assert_close((Jt.mT @ ft[..., None])[..., 0], g_ad, rtol=1e-10, atol=1e-12)
