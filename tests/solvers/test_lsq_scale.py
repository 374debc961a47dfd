"""Least squares at the edges of the float64 range: residuals and Jacobians of size ``1e±200``
are solved on ``2^-e r`` (exact scaling), a stop is never a success the method did not reach —
against analytic solutions and SciPy on the same problem at an ordinary scale."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import InvalidOptionError
from jacobite.solvers import curve_fit, least_squares
from jacobite.solvers.lsq.engine.steps.gauss_newton import sparse_col_norms
from jacobite.solvers.lsq.engine.steps.lm import col_norms

F64 = torch.float64


def _zero():
    return torch.tensor([0.0], dtype=F64)


@pytest.mark.parametrize("c", [1e20, 1e100, 1e200, -1e300, 1e-200, 1e-300])
@pytest.mark.parametrize("method", ["lm", "gauss-newton"])
def test_a_shifted_identity_is_solved_at_any_scale(c, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = least_squares(lambda p: p - c, _zero(), method=method)
    assert r.success and float(r.x) == pytest.approx(c, rel=1e-15)
    assert r.cost == 0.0


@pytest.mark.parametrize("c", [1e20, 1e200])
@pytest.mark.parametrize("method", ["lm", "trf"])
def test_x_scale_near_the_solution_solves_in_one_step(c, method):
    r = least_squares(lambda p: p - c, _zero(), method=method, x_scale=c)
    assert r.success and float(r.x) == pytest.approx(c, rel=1e-15) and r.nfev <= 3


@pytest.mark.parametrize("c", [1e100, 1e200])
def test_trf_from_zero_without_x_scale_fails_honestly(c):
    r = least_squares(lambda p: p - c, _zero(), method="trf")
    assert not r.success and "max_nfev" in r.message


def test_two_residuals_of_size_1e200_give_their_mean_and_the_unscaled_outputs():
    fun = lambda p: torch.stack([p[0] - 1e200, p[0] - 3e200])  # noqa: E731
    r = least_squares(fun, _zero())
    assert r.success and float(r.x) == pytest.approx(2e200, rel=1e-15)
    np.testing.assert_allclose(r.fun.numpy(), [1e200, -1e200], rtol=1e-15)
    np.testing.assert_allclose(r.jac.numpy(), [[1.0], [1.0]], rtol=1e-15)
    assert r.cost == math.inf  # ½ (1e200² + 1e200²) = 1e400 is past float64


def test_robust_loss_at_1e200_matches_scipy_at_1e0():
    def fun(c):
        return lambda p: torch.stack([p[0] - 1 * c, p[0] - 3 * c, p[0] - 10 * c])

    got = least_squares(fun(1e200), _zero(), loss="soft_l1", f_scale=1e200, x_scale=1e200)
    want = scipy.optimize.least_squares(
        lambda p: [p[0] - 1, p[0] - 3, p[0] - 10], [0.0], loss="soft_l1", f_scale=1.0,
        x_scale=1.0, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    assert got.success
    assert float(got.x) == pytest.approx(want.x[0] * 1e200, rel=1e-9)


def test_a_jacobian_and_residuals_too_far_apart_for_float64_fail_with_the_fix_named():
    r = least_squares(lambda p: 1e-300 * p - 1e300, _zero())
    assert not r.success and r.status == -7 and "rescale the problem" in r.message


@pytest.mark.parametrize("c", [1e20, 1e200])
def test_curve_fit_of_data_of_size_1e200(c):
    t = torch.linspace(0, 1, 6, dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "did not converge"
        popt, _ = curve_fit(lambda t, a, b: a + b * t, t, c * (1 + 2 * t),
                            torch.tensor([0.0, 0.0], dtype=F64))
    np.testing.assert_allclose(popt, [c, 2 * c], rtol=1e-12)


def test_an_f_scale_whose_square_leaves_float64_is_refused():
    with pytest.raises(InvalidOptionError, match="f_scale"):
        least_squares(lambda p: p - 1.0, _zero(), loss="huber", f_scale=1e-200)


@pytest.mark.parametrize("sparse", [False, True])
def test_column_norms_neither_overflow_nor_underflow(sparse):
    A = np.array([[3e-200, 1e200, 1.0], [4e-200, 0.0, 0.0]])
    got = sparse_col_norms(sp.csr_matrix(A)) if sparse else col_norms(torch.from_numpy(A)[None])
    np.testing.assert_allclose(got[0].numpy(), [5e-200, 1e200, 1.0], rtol=1e-15)


@settings(max_examples=20, deadline=None)
@given(e=st.integers(-900, 900), seed=st.integers(0, 2**16))
def test_a_linear_fit_is_scale_equivariant_across_the_float64_range(e, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((5, 2))
    b = rng.standard_normal(5)
    want = np.linalg.lstsq(A, b, rcond=None)[0]
    At, bt, c = torch.as_tensor(A), torch.as_tensor(b), 2.0 ** e
    r = least_squares(lambda p: At @ p - c * bt, torch.zeros(2, dtype=F64), x_scale=c)
    assert r.success
    np.testing.assert_allclose(r.x.numpy() / c, want, rtol=1e-8, atol=1e-10)
