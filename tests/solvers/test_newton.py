"""Newton's method for minimisation (exact Hessian and Gauss–Newton) against SciPy and known
minima."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import DtypeError, InvalidOptionError, NonFiniteInputError, ShapeError
from jacobite.solvers import NewtonIterate, NewtonResult, newton_minimize
from tests.battery import f_rosenbrock

DT = torch.float64


def appendix_a(v):
    return v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16


def rosen2(v):
    return 100 * (v[1] - v[0] ** 2) ** 2 + (1 - v[0]) ** 2


# ----------------------------------------------------------------------------- quadratics


@pytest.mark.parametrize("line_search", [True, False])
def test_one_step_on_a_quadratic(line_search):
    res = newton_minimize(appendix_a, [0.0, 0.0], line_search=line_search)
    assert isinstance(res, NewtonResult) and res.success
    assert res.nit == 1
    torch.testing.assert_close(res.x, torch.tensor([5.5, -1.0], dtype=DT), rtol=0, atol=1e-14)
    assert res.fun == pytest.approx(-201 / 4, abs=1e-12)
    assert res.grad_norm <= 1e-10
    assert res.x.dtype == DT
    assert len(res.history) == 2 and isinstance(res.history[0], NewtonIterate)
    assert res.history[1].step_length == 1.0 and res.history[0].damping == 0.0


@settings(max_examples=10)
@given(st.integers(0, 10_000), st.integers(1, 5))
def test_random_convex_quadratic_is_one_step(seed, n):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    A = M @ M.T + n * np.eye(n)
    b = rng.standard_normal(n)
    At, bt = torch.tensor(A), torch.tensor(b)
    res = newton_minimize(lambda v: 0.5 * v @ At @ v + bt @ v, rng.standard_normal(n))
    assert res.success and res.nit <= 2
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(A, -b), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------------- Rosenbrock


def test_rosenbrock_converges_quadratically():
    res = newton_minimize(rosen2, [-1.2, 1.0])
    assert res.success and res.nit <= 30
    torch.testing.assert_close(res.x, torch.ones(2, dtype=DT), rtol=0, atol=1e-12)
    ref = scipy.optimize.minimize(scipy.optimize.rosen, [-1.2, 1.0], jac=scipy.optimize.rosen_der,
                                  hess=scipy.optimize.rosen_hess, method="Newton-CG",
                                  options={"xtol": 1e-12})
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-6)
    # the objective decreases monotonically (Armijo)
    funs = [h.fun for h in res.history]
    assert all(b <= a for a, b in itertools.pairwise(funs))
    # quadratic convergence near the minimum: e_{k+1} <= C e_k^2 with full, undamped steps
    errs = [float((h.x - 1).norm()) for h in res.history]
    tail = [(a, b) for a, b in itertools.pairwise(errs) if 0 < a < 1e-2 and b > 1e-15]
    assert len(tail) >= 2
    assert all(b <= 100 * a * a for a, b in tail)
    assert [h.step_length for h in res.history[-3:]] == [1.0, 1.0, 1.0]
    assert [h.damping for h in res.history[-3:]] == [0.0, 0.0, 0.0]


def test_rosenbrock_4d_from_the_battery_matches_scipy():
    x0 = [-1.2, 1.0, -1.2, 1.0]
    res = newton_minimize(f_rosenbrock, x0)
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  hess=scipy.optimize.rosen_hess, method="Newton-CG",
                                  options={"xtol": 1e-12})
    assert res.success
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-6)


def test_indefinite_hessian_is_damped_and_still_descends():
    f = lambda v: v[0] ** 4 - v[0] ** 2 + v[1] ** 2  # noqa: E731
    res = newton_minimize(f, [0.1, 1.0])
    assert res.success
    assert res.history[0].damping > 0  # f_xx(0.1) < 0: the Hessian was shifted
    torch.testing.assert_close(res.x.abs(), torch.tensor([2 ** -0.5, 0.0], dtype=DT),
                               rtol=0, atol=1e-10)
    funs = [h.fun for h in res.history]
    assert all(b <= a for a, b in itertools.pairwise(funs))


# ----------------------------------------------------------------------------- Gauss–Newton

T = torch.linspace(0.0, 2.0, 10, dtype=DT)
Y = 2.0 * torch.exp(-0.5 * T)


def residuals(p):
    return p[0] * torch.exp(p[1] * T) - Y


def test_gauss_newton_zero_residual_curve_fit():
    res = newton_minimize(None, [1.0, 0.0], hessian="gauss-newton", residuals=residuals)
    assert res.success and res.nit <= 10
    torch.testing.assert_close(res.x, torch.tensor([2.0, -0.5], dtype=DT), rtol=0, atol=1e-10)
    assert res.fun <= 1e-20
    ref = scipy.optimize.least_squares(lambda p: p[0] * np.exp(p[1] * T.numpy()) - Y.numpy(),
                                       [1.0, 0.0], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-8)
    assert all(h.damping == 0.0 for h in res.history)


def test_exact_hessian_of_half_squared_residuals():
    res = newton_minimize(None, [1.5, -0.2], residuals=residuals)
    assert res.success
    torch.testing.assert_close(res.x, torch.tensor([2.0, -0.5], dtype=DT), rtol=0, atol=1e-10)


def test_gauss_newton_with_nonzero_residual_matches_scipy():
    noisy = Y + 0.05 * torch.sin(7 * T)

    def r(p):
        return p[0] * torch.exp(p[1] * T) - noisy

    res = newton_minimize(None, [1.0, 0.0], hessian="gauss-newton", residuals=r, tol=1e-9,
                          max_iter=200)
    ref = scipy.optimize.least_squares(lambda p: p[0] * np.exp(p[1] * T.numpy()) - noisy.numpy(),
                                       [1.0, 0.0], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert res.success
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-7)


# ----------------------------------------------------------------------------- options, errors


def test_shape_dtype_and_failure_reporting():
    res = newton_minimize(lambda X: ((X - 3) ** 2).sum(), torch.zeros(2, 2, dtype=torch.int64))
    assert res.x.shape == (2, 2) and res.x.dtype == DT
    torch.testing.assert_close(res.x, torch.full((2, 2), 3.0, dtype=DT))
    r32 = newton_minimize(appendix_a, [0.0, 0.0], dtype=torch.float32, tol=1e-4)
    assert r32.x.dtype == torch.float32 and r32.success
    short = newton_minimize(rosen2, [-1.2, 1.0], max_iter=3)
    assert not short.success and short.nit == 3 and "max_iter=3" in short.message
    assert len(short.history) == 4
    tight = newton_minimize(lambda v: (v**2).sum() * 1e6 + 1e6, [1.0, 1.0], tol=0.0)
    assert tight.success  # the gradient reaches exactly zero here
    assert newton_minimize(appendix_a, [5.5, -1.0]).nit == 0


def test_errors_name_the_fix():
    with pytest.raises(NonFiniteInputError, match="x0"):
        newton_minimize(appendix_a, [float("nan"), 0.0])
    with pytest.raises(NonFiniteInputError, match="x0"):
        newton_minimize(appendix_a, torch.tensor([0.0, float("inf")]))
    with pytest.raises(NonFiniteInputError, match="f\\(x0\\)"):
        newton_minimize(lambda v: torch.log(v).sum(), [-1.0, 2.0])
    with pytest.raises(InvalidOptionError, match="'exact' or 'gauss-newton'"):
        newton_minimize(appendix_a, [0.0, 0.0], hessian="bfgs")
    with pytest.raises(InvalidOptionError, match="residuals=r"):
        newton_minimize(appendix_a, [0.0, 0.0], hessian="gauss-newton")
    with pytest.raises(InvalidOptionError, match="either f or residuals"):
        newton_minimize(appendix_a, [0.0, 0.0], residuals=residuals)
    with pytest.raises(InvalidOptionError, match="nothing to minimise"):
        newton_minimize(None, [0.0, 0.0])
    with pytest.raises(InvalidOptionError):
        newton_minimize(appendix_a, [0.0, 0.0], c1=1.5)
    with pytest.raises(ShapeError, match="scalar"):
        newton_minimize(lambda v: v**2, [1.0, 2.0])
    with pytest.raises(ShapeError, match="empty"):
        newton_minimize(appendix_a, [])
    with pytest.raises(ShapeError, match="cannot make a tensor"):
        newton_minimize(appendix_a, "1, 2")
    with pytest.raises(DtypeError):
        newton_minimize(appendix_a, [0.0, 0.0], dtype=torch.int32)
