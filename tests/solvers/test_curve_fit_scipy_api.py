"""jacobite.curve_fit takes SciPy's curve_fit arguments and gives its answers: nan_policy and
check_finite, scalar and 2-D sigma, broadcast ydata, a scalar p0, Bounds objects, full_output
(MINPACK's factors and ier for "lm"), models written in NumPy (finite differences), and a
rank-deficient fit whose undetermined parameters get variance inf. SciPy is the oracle
throughout (its fit of the reduced model where jacobite is deliberately different)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
)
from jacobite.solvers import curve_fit, least_squares
from jacobite.solvers.lsq.result import covariance

TIGHT = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)
X = np.linspace(0.0, 3.0, 20)
Y = 2.5 * np.exp(-1.3 * X) + 0.4 + 0.02 * np.random.default_rng(3).standard_normal(X.size)
SIG = 0.02 + 0.01 * np.random.default_rng(4).random(X.size)


def decay_np(x, a, k, c):
    return a * np.exp(-k * x) + c


def decay_t(x, a, k, c):
    return a * torch.exp(-k * x) + c


def scipy_fit(f, x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
        return scipy.optimize.curve_fit(f, x, y, **TIGHT, **kw)


@pytest.mark.parametrize("jac", [None, "3-point", "cs"])
def test_a_numpy_model_is_fitted_by_differences_like_scipy(jac):
    popt, pcov = curve_fit(decay_np, X, Y, p0=[1, 1, 0], jac=jac)
    want, want_cov = scipy_fit(decay_np, X, Y, p0=[1, 1, 0], method="trf",
                               jac=lambda x, a, k, c: np.stack(
                                   [np.exp(-k * x), -a * x * np.exp(-k * x), np.ones_like(x)], 1))
    assert isinstance(popt, np.ndarray) and isinstance(pcov, np.ndarray)
    np.testing.assert_allclose(popt, want, rtol=1e-7)
    np.testing.assert_allclose(pcov, want_cov, rtol=1e-5 if jac is None else 1e-7)


def test_the_model_is_called_with_numpy_once_it_is_numpy():
    seen = []

    def f(x, a, b):
        seen.append((type(x), type(a)))
        return np.sin(a * x) + b  # NumPy of a parameter: not differentiable by torch

    popt, _ = curve_fit(f, X, np.sin(0.7 * X) + 1, p0=[0.5, 0.5])
    np.testing.assert_allclose(popt, [0.7, 1.0], rtol=1e-9)
    assert all(t == (np.ndarray, np.float64) for t in seen[1:])  # the first call was the probe


@pytest.mark.parametrize("model", [
    lambda x, a, b: math.exp(a) * x + b,  # the parameter's value read into Python
    lambda x, a, b: float(a) * x + b if isinstance(a, torch.Tensor) else a * x + b,
])
def test_a_model_that_reads_a_parameter_into_python_is_differenced_not_differentiated(model):
    y = 2.0 * X + 0.3
    popt, _ = curve_fit(model, X, y, p0=[0.1, 0.0])
    want, _ = scipy_fit(model, X, y, p0=[0.1, 0.0])
    np.testing.assert_allclose(popt, want, rtol=1e-7)


@pytest.mark.parametrize("sigma", [0.3, SIG, np.diag(SIG ** 2) + 1e-5])
@pytest.mark.parametrize("absolute_sigma", [False, True])
def test_sigma_scalar_1d_and_2d_match_scipy(sigma, absolute_sigma):
    popt, pcov = curve_fit(decay_t, X, Y, p0=[1, 1, 0], sigma=sigma,
                           absolute_sigma=absolute_sigma)
    want, want_cov = scipy_fit(decay_np, X, Y, p0=[1, 1, 0], sigma=sigma, method="trf",
                               absolute_sigma=absolute_sigma)
    np.testing.assert_allclose(popt, want, rtol=1e-8)
    np.testing.assert_allclose(pcov, want_cov, rtol=1e-6)


@pytest.mark.parametrize("sigma_dim", [0, 1, 2])
def test_nan_policy_omit_drops_the_points_and_their_sigma(sigma_dim):
    x, y = X.copy(), Y.copy()
    x[3], y[7] = np.nan, np.nan
    sigma = {0: 0.1, 1: SIG, 2: np.diag(SIG ** 2) + 1e-5}[sigma_dim]
    popt, pcov = curve_fit(decay_t, x, y, p0=[1, 1, 0], sigma=sigma, nan_policy="omit")
    want, want_cov = scipy_fit(decay_np, x, y, p0=[1, 1, 0], sigma=sigma, nan_policy="omit",
                               method="trf")
    np.testing.assert_allclose(popt, want, rtol=1e-8)
    np.testing.assert_allclose(pcov, want_cov, rtol=1e-6)


def test_nan_policy_omit_on_a_2d_xdata_drops_columns():
    x = np.stack([X, X ** 2])
    x[1, 4] = np.nan
    y = 1.5 * x[0] - 0.5 * np.nan_to_num(x[1]) + 2.0

    def f(x, a, b, c):
        return a * x[0] + b * x[1] + c

    popt, _ = curve_fit(f, x, y, nan_policy="omit")
    want, _ = scipy_fit(f, x, y, nan_policy="omit", method="trf", p0=[1, 1, 1])
    np.testing.assert_allclose(popt, want, rtol=1e-9)


def test_nan_policy_raise_propagate_and_unknown_are_value_errors():
    x, y = X.copy(), Y.copy()
    y[2] = np.nan
    with pytest.raises(NonFiniteInputError, match="The input contains nan"):
        curve_fit(decay_t, x, y, p0=[1, 1, 0], nan_policy="raise")
    with pytest.raises(InvalidOptionError, match="propagate"):
        curve_fit(decay_t, x, y, p0=[1, 1, 0], nan_policy="propagate")
    with pytest.raises(InvalidOptionError, match="nan_policy must be one of"):
        curve_fit(decay_t, x, y, p0=[1, 1, 0], nan_policy="hi", check_finite=False)
    with pytest.raises(NonFiniteInputError, match="nan_policy='omit'"):
        curve_fit(decay_t, x, y, p0=[1, 1, 0], check_finite=False)
    with pytest.raises(NonFiniteInputError, match="xdata"):  # check_finite covers xdata too
        curve_fit(decay_t, np.where(X > 1, np.nan, X), Y, p0=[1, 1, 0])


def test_ydata_broadcasts_against_the_model_output():
    target = 4.7 * X ** 2 + 3.5 * X + np.random.default_rng(5).random(X.size)

    def f(x, a, b):
        return a * x ** 2 + b * x - torch.as_tensor(target)

    p0, c0 = curve_fit(f, X, np.zeros_like(X))
    p1, c1 = curve_fit(f, X, 0)
    A = np.stack([X ** 2, X], 1)  # linear: the normal equations are the oracle
    want, rss, *_ = np.linalg.lstsq(A, target, rcond=None)
    np.testing.assert_allclose(p1, p0, rtol=1e-12)
    np.testing.assert_allclose(c1, c0, rtol=1e-12)
    np.testing.assert_allclose(p1, want, rtol=1e-12)
    np.testing.assert_allclose(c1, np.linalg.inv(A.T @ A) * rss[0] / (X.size - 2), rtol=1e-9)


def test_a_scalar_p0_and_bounds_given_as_a_bounds_object():
    popt, _ = curve_fit(lambda x, a: torch.sin(x + a), X, np.sin(X + 0.5), p0=0.3)
    np.testing.assert_allclose(popt, [0.5], rtol=1e-12)
    bounds = scipy.optimize.Bounds([1.0, 0.0, 0.0], [1.5, 3.0, 1.0])
    popt, _ = curve_fit(decay_t, X, Y, bounds=bounds)
    want, _ = scipy_fit(decay_np, X, Y, bounds=bounds)
    np.testing.assert_allclose(popt, want, rtol=1e-6)
    with pytest.raises(InvalidOptionError, match="Initial guess is outside of provided bounds"):
        curve_fit(decay_t, X, Y, p0=[2, 1, 0], bounds=bounds)


def test_full_output_for_lm_has_minpack_factors_like_leastsq():
    _, _, info, mesg, ier = curve_fit(decay_t, X, Y, p0=[1, 1, 0], method="lm",
                                         full_output=1)
    _, _, want, _, want_ier = scipy.optimize.curve_fit(decay_np, X, Y, p0=[1, 1, 0],
                                                       full_output=True, **TIGHT)
    assert ier in (1, 2, 3, 4) and want_ier in (1, 2, 3, 4) and isinstance(mesg, str)
    assert info["fjac"].shape == want["fjac"].shape == (3, X.size)
    np.testing.assert_array_equal(info["ipvt"], want["ipvt"])
    R, R_want = (np.triu(d["fjac"].T[:3]) for d in (info, want))
    np.testing.assert_allclose(np.abs(R), np.abs(R_want), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.abs(info["qtf"]), np.abs(want["qtf"]), atol=1e-8)
    np.testing.assert_allclose(info["fvec"], want["fvec"], atol=1e-9)


def test_lm_with_more_parameters_than_points_is_a_type_error_as_in_scipy():
    with pytest.raises(ArgumentTypeError, match="The number of func parameters=5"):
        curve_fit(lambda x, a, b, c, d, e: a * torch.exp(-b * x) + c + d + e,
                  [1.0, 2.0, 3.0, 4.0], [5.0, 9.0, 13.0, 17.0])
    with pytest.raises(InvalidOptionError, match="args"):
        curve_fit(lambda x, a, b: a * x + b, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], args=(1,))


def test_maxfev_is_max_nfev():
    popt, _ = curve_fit(lambda x, p: p * x, X, 2 * X, bounds=(0, 3), maxfev=100)
    np.testing.assert_allclose(popt, [2.0], atol=1e-14)


def test_an_undetermined_parameter_has_inf_variance_and_the_others_their_own():
    with pytest.warns(JacobiteWarning, match=r"do not determine the parameters \[1\]"):
        _, pcov = curve_fit(lambda x, a, b: a * x + 0 * b, X, 2 * X + Y, p0=[1, 0],
                               sigma=SIG, absolute_sigma=True)
    # the fit of a alone is linear: var(a) = 1 / Σ (x/σ)²
    np.testing.assert_allclose(pcov[0, 0], 1 / np.sum((X / SIG) ** 2), rtol=1e-12)
    assert pcov[1, 1] == np.inf and pcov[0, 1] == pcov[1, 0] == 0.0
    with pytest.warns(JacobiteWarning, match="could not be estimated"):
        _, scaled = curve_fit(lambda x, a, b: a * x + 0 * b, X, 2 * X + Y, p0=[1, 0])
    _, rss, *_ = np.linalg.lstsq(X[:, None], 2 * X + Y, rcond=None)
    # the reduced χ² counts both parameters: m − 2 degrees of freedom
    np.testing.assert_allclose(scaled[0, 0], rss[0] / (X.size - 2) / (X @ X), rtol=1e-9)


def test_least_squares_covariance_is_inf_exactly_where_undetermined():
    def r(p):
        return torch.stack([p[0] - 1.0, p[0] + 1.0, 2.0 * p[0], p[0] - 0.5]) + 0.0 * (p[1] + p[2])

    with pytest.warns(JacobiteWarning, match=r"rank deficient.*\[1, 2\]"):
        res = least_squares(r, torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
    a = np.array([1.0, 1.0, 2.0, 1.0])
    _, rss, *_ = np.linalg.lstsq(a[:, None], np.array([1.0, -1.0, 0.0, 0.5]), rcond=None)
    cov = np.asarray(res.covariance)
    np.testing.assert_allclose(cov[0, 0], rss[0] / (4 - 3) / (a @ a), rtol=1e-12)
    assert np.all(np.isinf(np.diag(cov)[1:])) and np.all(cov[0, 1:] == 0) and cov[1, 2] == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=3, max_size=3),
       st.integers(0, 2))
def test_covariance_with_a_zero_column_is_the_full_rank_one_and_inf(w, k):
    """A zero column k: the other variances are the full-rank ones; k's is inf."""
    rng = np.random.default_rng(abs(hash(tuple(w))) % 2**32)
    A = rng.standard_normal((8, 3)) + np.asarray(w)
    A[:, k] = 0.0
    f = rng.standard_normal(8)
    cov = covariance(A, f, warn=False)
    keep = [j for j in range(3) if j != k]
    want = covariance(A[:, keep], f, scale=False) * float(f @ f) / (8 - 3)
    np.testing.assert_allclose(cov[np.ix_(keep, keep)], want, rtol=1e-9)
    assert cov[k, k] == np.inf and np.all(cov[k, keep] == 0)


def test_leastsq_spellings_col_deriv_diag_and_epsfcn():
    def jac_t(x, a, k, c):  # the transposed Jacobian, as col_deriv=True promises
        e = np.exp(-k * x)
        return np.stack([e, -a * x * e, np.ones_like(x)])

    popt, pcov = curve_fit(decay_np, X, Y, p0=[1, 1, 0], jac=jac_t, col_deriv=True,
                           diag=[1.0, 2.0, 3.0])
    want, want_cov = scipy_fit(decay_np, X, Y, p0=[1, 1, 0], jac=jac_t, col_deriv=True,
                               diag=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(popt, want, rtol=1e-8)
    np.testing.assert_allclose(pcov, want_cov, rtol=1e-6)
    points = []

    def f(x, a):
        points.append(float(a))
        return np.exp(a * x)

    with pytest.warns(JacobiteWarning, match="did not converge"):
        curve_fit(f, X, np.exp(0.5 * X), p0=[0.25], epsfcn=1e-6, max_nfev=2)
    steps = np.diff(points)  # each difference step follows the point it perturbs
    assert np.any(np.isclose(steps, 1e-3 * np.abs(points[:-1]), rtol=1e-9))
    with pytest.raises(InvalidOptionError, match="factor"):
        curve_fit(decay_np, X, Y, p0=[1, 1, 0], factor=10)


@settings(max_examples=20, deadline=None)
@given(st.sets(st.integers(0, X.size - 1), max_size=6), st.sets(st.integers(0, X.size - 1),
                                                                 max_size=6))
def test_nan_policy_omit_is_the_fit_of_the_points_left(nan_x, nan_y):
    x, y = X.copy(), 1.5 * X - 0.5 + Y
    x[list(nan_x)], y[list(nan_y)] = np.nan, np.nan
    keep = ~(np.isnan(x) | np.isnan(y))
    popt, pcov = curve_fit(lambda x, a, b: a * x + b, x, y, nan_policy="omit")
    A = np.stack([X[keep], np.ones(keep.sum())], 1)  # linear: the normal equations decide
    want, rss, *_ = np.linalg.lstsq(A, y[keep], rcond=None)
    np.testing.assert_allclose(popt, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pcov, np.linalg.inv(A.T @ A) * rss[0] / (keep.sum() - 2),
                               rtol=1e-8)
