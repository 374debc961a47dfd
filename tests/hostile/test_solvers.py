"""Hostile values for jacobite.solvers: non-finite starts and residuals, empty problems,
constant, linear, kinked and rootless functions, singular implicit systems — each answer
against an analytic or SciPy oracle, each failure reported as a failure."""

from __future__ import annotations

import pytest
import scipy.optimize
import torch

from jacobite.errors import (
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    SingularOperatorError,
)
from jacobite.solvers import (
    curve_fit,
    implicit_jacobian,
    least_squares,
    newton_minimize,
    root,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64


# ---- non-finite and empty inputs ---------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("call", [
    lambda x0: newton_minimize(lambda v: ((v - 1) ** 2).sum(), x0),
    lambda x0: least_squares(lambda p: p - 1, x0),
    lambda x0: root(lambda p: p ** 3 - 8, x0),
], ids=["newton_minimize", "least_squares", "root"])
def test_a_nonfinite_start_is_refused_naming_a_finite_point(call, bad):
    with refuses(NonFiniteInputError, "finite point"):
        call([bad, 0.0])


@pytest.mark.parametrize("call", [
    lambda: newton_minimize(lambda v: ((v - 1) ** 2).sum() * float("nan"), [0.0, 0.0]),
    lambda: least_squares(lambda p: torch.stack([p[0] - 1, p[1] * float("nan")]), [0.0, 0.0]),
    lambda: root(lambda p: p * float("inf"), [1.0]),
], ids=["newton_minimize", "least_squares", "root"])
def test_a_function_nonfinite_at_the_start_is_refused(call):
    with refuses(NonFiniteInputError, "start from a point where"):
        call()


def test_an_empty_start_is_refused():
    with refuses(ShapeError, "at least one coordinate"):
        newton_minimize(lambda v: (v ** 2).sum(), torch.zeros(0, dtype=F64))


def test_no_residuals_are_refused():
    with refuses(ShapeError, "at least one"):
        least_squares(lambda p: p[:0], [0.0, 0.0])


def test_nonfinite_data_for_curve_fit_is_refused():
    t = torch.linspace(0, 1, 5, dtype=F64)
    with refuses(NonFiniteInputError, "remove those points"):
        curve_fit(lambda s, a: a * s, t, torch.tensor([0.0, 1.0, float("nan"), 2.0, 3.0],
                                                       dtype=F64), [1.0])


def test_a_non_square_system_for_root_is_refused_naming_least_squares():
    with refuses(NotSquareError, "jacobite.least_squares"):
        root(lambda p: torch.stack([p[0], p[0]]), [1.0])


# ---- answers against oracles -------------------------------------------------------------------

@pytest.mark.parametrize("x0", [[1e150, 0.0], [1e-300, -1e-300], [5e-324, 0.0], [-3.0, 7.0]],
                         ids=["huge", "tiny", "subnormal", "plain"])
def test_newton_minimize_of_a_bowl_from_extreme_starts(x0):
    with within():
        res = newton_minimize(lambda v: ((v - 1) ** 2).sum(), x0)
    assert res.success
    assert_close(res.x, [1.0, 1.0], rtol=1e-12)


def test_least_squares_of_rosenbrock_matches_scipy():
    def r(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([10 * (p[1] - p[0] ** 2), 1 - p[0]])
    with within():
        res = least_squares(r, [-1.2, 1.0])
    ref = scipy.optimize.least_squares(lambda p: [10 * (p[1] - p[0] ** 2), 1 - p[0]],
                                       [-1.2, 1.0], xtol=1e-15, ftol=1e-15, gtol=1e-15)
    assert res.success
    assert_close(res.x, ref.x, rtol=1e-8)


@pytest.mark.parametrize(("x0", "want"), [(1.0, 2.0), (-1.0, -2.0), (1e-3, 2.0)])
def test_root_of_a_quadratic_matches_the_analytic_root(x0, want):
    with within():
        res = root(lambda p: p ** 2 - 4, [x0])
    assert res.success
    assert_close(res.x, [want], rtol=1e-12)


def test_curve_fit_of_noiseless_data_is_exact():
    t = torch.linspace(0, 1, 6, dtype=F64)
    with within():
        popt, _ = curve_fit(lambda s, a, b: a * torch.exp(b * s), t, 2 * torch.exp(-0.5 * t),
                            [1.0, 0.0])
    assert_close(popt, [2.0, -0.5], rtol=1e-9)


def test_implicit_jacobian_matches_the_analytic_derivative():
    # F(x, θ) = x - tanh(x)/2 - θ: dx/dθ = 1 / (1 - sech²(x)/2)
    x = torch.tensor([0.3, -1.0], dtype=F64)
    theta = x - 0.5 * torch.tanh(x)
    with within():
        J = implicit_jacobian(lambda u, th: u - 0.5 * torch.tanh(u) - th, x, theta)
    assert_close(J, torch.diag(1 / (1 - 0.5 / torch.cosh(x) ** 2)), rtol=1e-12)


# ---- failures reported as failures -------------------------------------------------------------

def test_newton_minimize_of_a_linear_function_reports_failure():
    with within(15.0):
        res = newton_minimize(lambda v: v.sum(), [0.0, 0.0], max_iter=10)
    assert not res.success


def test_newton_minimize_of_a_constant_reports_a_plateau_as_failure():
    with within():
        res = newton_minimize(lambda v: torch.tensor(1.0, dtype=F64), [0.0, 0.0])
    assert not res.success and "plateau" in res.message


@pytest.mark.parametrize("f", [lambda v: v[0] ** 2 - v[1] ** 2, lambda v: -(v ** 2).sum()],
                         ids=["saddle", "maximum"])
def test_newton_minimize_never_reports_a_saddle_or_maximum_start_as_a_minimum(f):
    with within(15.0):
        res = newton_minimize(f, [0.0, 0.0], max_iter=20)
    assert not res.success


def test_least_squares_of_a_constant_residual_reports_a_plateau():
    with within():
        res = least_squares(lambda p: torch.ones(2, dtype=F64), [0.0, 0.0])
    assert not res.success and "plateau" in res.message


@pytest.mark.parametrize("f", [lambda p: p ** 2 + 1, lambda p: torch.ones(1, dtype=F64),
                               lambda p: torch.sign(p)],
                         ids=["no-real-root", "constant", "jump"])
def test_root_without_a_root_reports_failure(f):
    with within():
        res = root(f, [1.0])
    assert not res.success
    assert float(torch.as_tensor(res.fun).abs().max()) > 1e-6


def test_root_from_a_zero_jacobian_start_reports_failure():
    with within():
        res = root(lambda p: p ** 2 - 1, [0.0])
    assert not res.success


def test_an_implicit_system_with_a_singular_jacobian_is_refused():
    with refuses(SingularOperatorError, "∂F/∂x invertible"):
        implicit_jacobian(lambda x, th: (x - th) * 0, torch.ones(2, dtype=F64),
                          torch.ones(2, dtype=F64))


def test_a_function_that_raises_propagates_its_error():
    with pytest.raises(ZeroDivisionError):
        newton_minimize(lambda v: 1 / 0, [1.0])



def test_least_squares_leaves_a_zero_gradient_start_at_a_maximum_of_the_cost():
    # r = p² − 1: at p = 0 the gradient of ½ r² vanishes, but it is a maximum; the roots are ±1
    with within():
        res = least_squares(lambda p: p ** 2 - 1, [0.0])
    assert res.success
    assert_close(res.x.abs(), [1.0], rtol=1e-10)


def test_least_squares_at_a_kinked_minimum_reports_the_minimum():
    # ½ (|p − 1| + ½)² is smallest at the kink p = 1, where it is 1/8
    with within():
        res = least_squares(lambda p: (p - 1).abs() + 0.5, [1.0])
    assert res.success
    assert_close(res.x, [1.0], rtol=1e-12)
    assert_close(res.cost, 0.125, rtol=1e-12)


@pytest.mark.parametrize("c", [1e20, 1e200, -1e300])
def test_least_squares_of_a_huge_shift_finds_it_without_overflowing_the_cost(c):
    with within():
        r = least_squares(lambda p: p - c, torch.tensor([0.0], dtype=F64))
    assert r.success  # an honest failure would do too; a success must be the analytic x = c
    assert_close(r.x, [c], rtol=1e-15, atol=0)


def test_least_squares_with_trf_far_from_a_huge_solution_reports_failure():
    with within():
        r = least_squares(lambda p: p - 1e200, torch.tensor([0.0], dtype=F64), method="trf")
    assert not r.success and "max_nfev" in r.message


def test_curve_fit_of_data_of_size_1e200_is_exact():
    t = torch.linspace(0, 1, 6, dtype=F64)
    with within():
        popt, _ = curve_fit(lambda t, a, b: a + b * t, t, 1e200 * (1 + 2 * t),
                            torch.tensor([0.0, 0.0], dtype=F64))
    assert_close(popt, [1e200, 2e200], rtol=1e-12, atol=0)
