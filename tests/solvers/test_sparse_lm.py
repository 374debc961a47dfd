"""Sparse Levenberg–Marquardt (sparse direct steps) against SciPy and dense solves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.optimize import least_squares as scipy_lsq

from jacobite.solvers.lsq._problem import Residuals
from jacobite.solvers.lsq.engine.single import run_single
from jacobite.solvers.lsq.losses import robust_loss
from tests.problems import bratu2d

TOL = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)
DT = torch.float64


def _solve(fun, x0, jac="sparse", **kw):
    P = Residuals(fun, torch.as_tensor(x0, dtype=DT), jac)
    return P, run_single(P, np.asarray(x0, dtype=float), "lm", **{**TOL, **kw})


def test_bratu2d_newton_converges_to_the_dense_solution() -> None:
    N = 12
    P, out = _solve(bratu2d, np.zeros(N * N))
    assert out.status > 0 and sp.issparse(out.J)
    assert np.linalg.norm(out.f) < 1e-8
    ref = scipy_lsq(lambda v: bratu2d(torch.from_numpy(v)).numpy(), np.zeros(N * N),
                    jac=lambda v: torch.func.jacrev(bratu2d)(torch.from_numpy(v)).numpy(),
                    method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(out.x, ref.x, rtol=1e-9, atol=1e-12)
    assert P.njev <= 10  # Newton: quadratic convergence from u = 0


def test_overdetermined_nonzero_residual_matches_scipy() -> None:
    t = torch.linspace(0, 3, 40, dtype=DT)
    y = 2.0 * torch.exp(-1.3 * t) + 0.05 * torch.sin(7 * t)

    def fun(p):  # block-sparse: 10 independent exponential fits of 2 parameters each
        a, k = p.reshape(10, 2).unbind(1)
        return (a[:, None] * torch.exp(-k[:, None] * t) - y * (1 + 0.01 *
                torch.arange(10, dtype=DT)[:, None])).reshape(-1)

    x0 = np.tile([1.0, 1.0], 10)
    _, out = _solve(fun, x0)
    dense = lambda v: torch.func.jacrev(fun)(torch.from_numpy(v)).numpy()  # noqa: E731
    ref = scipy_lsq(lambda v: fun(torch.from_numpy(v)).numpy(), x0, jac=dense, method="lm",
                    xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(out.x, ref.x, rtol=1e-8)
    assert out.cost <= ref.cost * (1 + 1e-10)


def test_robust_loss_matches_scipy_trf() -> None:
    g = np.random.default_rng(0)
    t = np.linspace(0, 1, 30)
    y = 1.5 * t + 0.3 + 0.01 * g.standard_normal(30)
    y[[3, 17]] += 5.0  # outliers
    tt, yy = torch.tensor(t), torch.tensor(y)
    fun = lambda p: p[0] * tt + p[1] - yy  # noqa: E731
    _, out = _solve(fun, np.zeros(2), loss=robust_loss("soft_l1", 0.1))
    ref = scipy_lsq(lambda p: p[0] * t + p[1] - y, np.zeros(2), loss="soft_l1", f_scale=0.1,
                    xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(out.x, ref.x, rtol=1e-6)


def test_singular_jacobian_is_damped() -> None:
    # r = (x0 + x1 - 2, x0 + x1 - 2): J singular everywhere; minimum-norm-like answer
    fun = lambda x: torch.stack([x[0] + x[1] - 2, x[0] + x[1] - 2])  # noqa: E731
    jac = lambda x: sp.csr_matrix(np.ones((2, 2)))  # noqa: E731
    _, out = _solve(fun, np.zeros(2), jac=jac)
    assert out.status > 0 and out.cost < 1e-20
    assert out.x.sum() == pytest.approx(2.0, abs=1e-10)


def test_nan_trial_point_is_rejected() -> None:
    fun = lambda x: torch.where(x > 3, torch.nan, torch.log1p(x) - 1)  # noqa: E731
    jac = lambda x: sp.diags(1 / (1 + x.numpy()))  # noqa: E731
    _, out = _solve(fun, np.full(3, 0.0), jac=jac)
    assert np.all(np.isfinite(out.f)) and out.status > 0
    np.testing.assert_allclose(out.x, np.e - 1, rtol=1e-12)
