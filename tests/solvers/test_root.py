"""``jacobite.solvers.root`` against known roots, SciPy's MINPACK ``hybrj`` and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite import config
from jacobite.dense import jacobian
from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    OutputTypeError,
    ShapeError,
)
from jacobite.solvers.root import RootResult, root
from tests.root_problems import BY_NAME, PROBLEMS, bratu

DT = torch.float64
METHODS = ("hybrid", "newton")
REACHABLE = [p for p in PROBLEMS if p.reachable]


def scipy_root(fun, x0):
    """MINPACK hybrj (SciPy ``method="hybr"``) with the exact Jacobian, tight xtol."""
    return scipy.optimize.root(lambda x: fun(torch.as_tensor(x)).numpy(), np.asarray(x0),
                               jac=lambda x: jacobian(fun, torch.as_tensor(x), flat=True).numpy(),
                               method="hybr", options={"xtol": 1e-13})


# ----------------------------------------------------------------------------- the battery


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("prob", REACHABLE, ids=lambda p: p.name)
def test_battery_converges_to_a_root(prob, method):
    res = root(prob.fun, prob.x0, method=method)
    assert isinstance(res, RootResult) and res.success and res.status > 0, res.message
    assert res.x.dtype == DT and res.x.shape == (len(prob.x0),)
    # the residual, recomputed here, and the reported one
    F = prob.fun(res.x)
    torch.testing.assert_close(res.fun, F, rtol=0, atol=0)
    assert float(F.abs().max()) <= 1e-12
    if prob.root is not None:
        err = float((res.x - torch.tensor(prob.root, dtype=DT)).abs().max())
        assert err <= prob.root_atol
    # the exact Jacobian at x is returned
    torch.testing.assert_close(res.jac, jacobian(prob.fun, res.x, flat=True))
    assert res.nfev <= 100 * (len(prob.x0) + 1) and res.njev >= 1 and res.nit >= 1


UNIQUE = ["rosenbrock", "powell_badly_scaled", "helical_valley", "broyden_tridiagonal",
          "discrete_boundary_value", "discrete_integral_equation", "freudenstein_roth_near",
          "bratu_6x6", "broyden_banded"]


@pytest.mark.parametrize("name", UNIQUE)
def test_battery_matches_scipy_hybrj(name):
    prob = BY_NAME[name]
    ref = scipy_root(prob.fun, prob.x0)
    assert ref.success
    res = root(prob.fun, prob.x0)
    scale = np.maximum(np.abs(ref.x), 1e-3)
    assert np.max(np.abs(res.x.numpy() - ref.x) / scale) <= 1e-7
    # at least as accurate as MINPACK, in fewer evaluations of F on these problems
    assert float(res.fun.norm()) <= max(np.linalg.norm(ref.fun), 1e-14)
    assert res.nfev <= ref.nfev


def test_powell_badly_scaled_to_full_precision():
    prob = BY_NAME["powell_badly_scaled"]
    res = root(prob.fun, prob.x0)
    np.testing.assert_allclose(res.x.numpy(), prob.root, rtol=1e-13)


@pytest.mark.parametrize("method", METHODS)
def test_local_minimum_trap_is_reported_not_claimed(method):
    prob = BY_NAME["freudenstein_roth"]
    ref = scipy_root(prob.fun, prob.x0)
    assert not ref.success  # MINPACK is trapped too
    res = root(prob.fun, prob.x0, method=method)
    assert not res.success and res.status == -1
    assert "local minimum" in res.message
    assert torch.isfinite(res.x).all()
    # the trap: ‖F‖ ≈ 7 (‖F‖² = 48.98, Moré–Garbow–Hillstrom), never worse than the start
    assert 6.9 < float(res.fun.norm()) < float(prob.fun(prob.start()).norm())


@pytest.mark.parametrize("method", METHODS)
def test_singular_jacobian_at_the_root(method):
    prob = BY_NAME["powell_singular"]
    res = root(prob.fun, prob.x0, method=method)
    assert res.success
    assert float(res.x.abs().max()) <= 1e-6  # only linear convergence: J(0) is singular


@pytest.mark.parametrize("method", METHODS)
def test_escapes_a_numerically_singular_valley(method):
    """Brown's almost-linear system from this start: the first Newton step lands where ∏x ≈ 0
    (‖F‖ = 1), the last row of J (∂∏x) is tiny and J singular to working precision; a
    minimum-norm least-squares step drops the near-null direction and stalls there."""
    prob = BY_NAME["brown_almost_linear"]
    x0 = np.random.default_rng(108).uniform(-5, 5, 10)
    res = root(prob.fun, x0, method=method)
    assert res.success and float(prob.fun(res.x).abs().max()) <= 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_stationary_start_fails_cleanly(method):
    res = root(lambda v: v ** 2 - 1, [0.0], method=method)  # J(0) = 0 and ∇½‖F‖² = 0
    assert not res.success and res.status == -1
    assert res.x.tolist() == [0.0]


# ----------------------------------------------------------------------------- property tests


@settings(max_examples=15)
@given(n=st.integers(1, 6), seed=st.integers(0, 2 ** 31 - 1))
def test_linear_system_is_solved_in_one_newton_step(n, seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = Q @ np.diag(rng.uniform(0.5, 3.0, n)) @ Q.T + rng.uniform(-0.3, 0.3, (n, n))
    b = rng.standard_normal(n)
    At, bt = torch.tensor(A), torch.tensor(b)
    want = np.linalg.solve(A, b)
    for method in METHODS:
        res = root(lambda v: At @ v - bt, np.zeros(n), method=method)
        assert res.success
        np.testing.assert_allclose(res.x.numpy(), want, rtol=1e-10, atol=1e-12)
    assert root(lambda v: At @ v - bt, np.zeros(n), method="newton").nit == 1


@settings(max_examples=15)
@given(eps=st.floats(-0.9, 0.9), b=st.lists(st.floats(-20, 20), min_size=1, max_size=5))
def test_kepler_like_equation_matches_brentq(eps, b):
    """``x + ε sin x = b`` is monotone for |ε| < 1: one root per entry, bracketed by b ± 1."""
    bt = torch.tensor(b, dtype=DT)
    want = [scipy.optimize.brentq(lambda x, bi=bi: x + eps * np.sin(x) - bi, bi - 1.0, bi + 1.0,
                                  xtol=1e-15, rtol=1e-15) for bi in b]
    for method in METHODS:
        res = root(lambda v: v + eps * torch.sin(v) - bt, torch.zeros(len(b)), method=method)
        assert res.success
        np.testing.assert_allclose(res.x.numpy(), want, rtol=1e-13, atol=1e-13)


@settings(max_examples=12)
@given(name=st.sampled_from(["freudenstein_roth", "powell_badly_scaled", "helical_valley",
                             "wood", "trigonometric"]),
       method=st.sampled_from(METHODS), seed=st.integers(0, 2 ** 31 - 1))
def test_never_worse_than_x0_and_never_a_false_success(name, method, seed):
    """From random starts: the returned point is finite, no worse than x0, and success is only
    claimed at a root (the residual recomputed here)."""
    prob = BY_NAME[name]
    x0 = np.random.default_rng(seed).uniform(-5, 5, len(prob.x0))
    if name == "helical_valley":
        x0[0] = x0[0] or 1.0  # θ(x) divides by x₁
    res = root(prob.fun, x0, method=method)
    F0, F = prob.fun(torch.tensor(x0)), prob.fun(res.x)
    assert torch.isfinite(res.x).all()
    assert float(F.norm()) <= float(F0.norm())
    if res.success:
        assert float(F.abs().max()) <= 1e-10
    else:
        assert res.status in (0, -1) and res.message


# ----------------------------------------------------------------------------- interface


def test_shapes_args_and_float32():
    target = torch.arange(1.0, 7.0, dtype=DT).reshape(3, 2)
    res = root(lambda X, T: (X.T ** 3 - T), torch.ones(2, 3), args=(target,))
    assert res.x.shape == (2, 3) and res.fun.shape == (3, 2) and res.jac.shape == (6, 6)
    torch.testing.assert_close(res.x, target.T ** (1 / 3))
    res32 = root(lambda v: v ** 3 - 2, torch.ones(1), dtype=None)
    assert res32.success and res32.x.dtype == torch.float32
    assert abs(float(res32.x) - 2 ** (1 / 3)) <= 1e-6


@pytest.mark.parametrize("method", METHODS)
def test_nan_trial_points_are_rejected_never_returned(method):
    seen = []

    def F(v):
        seen.append(v.clone())
        return torch.log(v)  # a full Newton step from 10 lands at 10 - 10 log 10 < 0: NaN

    res = root(F, [10.0], method=method)
    assert any(not torch.isfinite(torch.log(s)).all() for s in seen)
    assert res.success and torch.isfinite(res.x).all()
    assert abs(float(res.x) - 1.0) <= 1e-14


@pytest.mark.parametrize("method", METHODS)
def test_trial_points_with_nan_jacobian_are_rejected(method):
    def F(v):  # finite everywhere, but ∂F/∂x is NaN for x < 0.5 (where's NaN gradient)
        return torch.tanh(v - 1) + 0 * torch.where(v < 0.5, torch.zeros_like(v),
                                                   torch.sqrt(v - 0.5))

    seen = []

    def J(v):  # the AD Jacobian, recording where it was asked for
        seen.append((float(v), jacobian(F, v, flat=True)))
        return seen[-1][1]

    for jac in ("auto", J):  # the full Newton step from 2 lands at 0.19
        res = root(F, [2.0], method=method, jac=jac)
        assert res.success and res.x.tolist() == [1.0] and res.jac.tolist() == [[1.0]]
    assert any(x < 0.5 and J.isnan().all() for x, J in seen)


@pytest.mark.parametrize("method", METHODS)
def test_callable_dense_jacobian(method):
    calls = []

    def J(v):
        calls.append(1)
        return torch.stack([torch.stack([-20 * v[0], torch.tensor(10.0, dtype=DT)]),
                            torch.tensor([-1.0, 0.0], dtype=DT)])

    res = root(BY_NAME["rosenbrock"].fun, [-1.2, 1.0], jac=J, method=method)
    assert res.success and res.x.tolist() == [1.0, 1.0]
    assert res.njev == len(calls)


def bratu_sparse_jacobian(N, lam=6.0):
    h2 = 1.0 / (N + 1) ** 2
    T = sp.diags_array([-np.ones(N - 1), 4 * np.ones(N), -np.ones(N - 1)], offsets=[-1, 0, 1])
    L = sp.kronsum(T, sp.diags_array([-np.ones(N - 1), np.zeros(N), -np.ones(N - 1)],
                                     offsets=[-1, 0, 1]))
    return lambda u: (L - sp.diags_array(h2 * lam * np.exp(u.numpy()))).tocsr()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("jac", ["callable", "sparse"])
def test_sparse_jacobian_bratu(method, jac):
    N = 12
    F = bratu(N)
    dense = root(F, torch.zeros(N * N), method=method)
    res = root(F, torch.zeros(N * N), method=method,
               jac=bratu_sparse_jacobian(N) if jac == "callable" else "sparse")
    assert res.success and sp.issparse(res.jac)
    np.testing.assert_allclose(res.jac.toarray(), dense.jac.numpy(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(res.x, dense.x, rtol=1e-12, atol=1e-14)
    ref = scipy_root(bratu(6), np.zeros(36))
    small = root(bratu(6), torch.zeros(36), method=method, jac=bratu_sparse_jacobian(6))
    np.testing.assert_allclose(small.x.numpy(), ref.x, rtol=1e-9)


def test_torch_sparse_jacobian_and_singular_sparse_fallback():
    # a torch sparse Jacobian is taken as sparse
    res = root(lambda v: v ** 3 - 8, torch.ones(3),
               jac=lambda v: torch.diag(3 * v ** 2).to_sparse_csr())
    assert res.success and sp.issparse(res.jac)
    torch.testing.assert_close(res.x, torch.full((3,), 2.0, dtype=DT))
    # J(x0) singular in the first coordinate: the LSMR step takes over for that iteration
    res = root(lambda v: v ** 3 - 8, torch.tensor([0.0, 1.0, 1.0]),
               jac=lambda v: sp.diags_array(3 * v.numpy() ** 2).tocsr(), method="newton")
    assert not res.success and res.status == -1  # F₁ has a stationary point at 0


def test_verbose(capsys):
    root(BY_NAME["rosenbrock"].fun, [-1.2, 1.0], verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) > 2 and lines[-1].startswith("root (hybrid): converged")
    root(BY_NAME["rosenbrock"].fun, [-1.2, 1.0], verbose=1, method="newton")
    lines = capsys.readouterr().out.splitlines()  # the Jacobian chosen, then the final message
    assert len(lines) == 2 and lines[0].startswith("root: jac='auto' chose dense")


def test_too_large_for_dense_names_the_sparse_path():
    with config.memory_budget("64 KiB"), pytest.raises(JacobianTooLarge, match="jac='sparse'"):
        root(bratu(12), torch.zeros(144))  # a 144 x 144 float64 Jacobian is 162 KiB
    with config.memory_budget("64 KiB"):
        assert root(bratu(12), torch.zeros(144), jac="sparse").success


def test_max_nfev():
    res = root(BY_NAME["powell_badly_scaled"].fun, [0.0, 1.0], max_nfev=np.int64(10))
    assert not res.success and res.status == 0 and "max_nfev" in res.message
    assert res.nfev <= 10


# ----------------------------------------------------------------------------- bad input


def test_bad_input():
    f = BY_NAME["rosenbrock"].fun
    with pytest.raises(NonFiniteInputError, match="x0"):
        root(f, [float("nan"), 1.0])
    with pytest.raises(NonFiniteInputError, match="F"):
        root(lambda v: torch.log(v), [-1.0, 1.0])
    with pytest.raises(NonFiniteInputError, match="Jacobian"):
        root(lambda v: torch.sqrt(v), [0.0, 1.0])
    with pytest.raises(NotSquareError, match="least_squares"):
        root(lambda v: torch.cat([v, v]), [1.0, 2.0])
    with pytest.raises(OutputTypeError):
        root(lambda v: v.tolist(), [1.0])
    with pytest.raises(ShapeError):
        root(f, [])
    with pytest.raises(ShapeError, match="jac returned"):
        root(f, [1.0, 2.0], jac=lambda v: torch.eye(3, dtype=DT))
    for kw in ({"method": "lm"}, {"jac": "numeric"}, {"xtol": -1.0}, {"ftol": float("nan")},
               {"max_nfev": 0}, {"max_nfev": 2.5}, {"max_nfev": True}, {"verbose": 3},
               {"args": [1]}):
        with pytest.raises((InvalidOptionError, ArgumentTypeError)):
            root(f, [1.0, 2.0], **kw)
