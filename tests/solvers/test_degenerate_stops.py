"""Stops where the gradient vanishes but the point is no minimum: kinks, saddles, plateaus.

Each residual below has a point where AD's gradient of the cost is exactly zero. The statuses
must say what that point is: a success only where it is a minimum (the cost rises, or at least
does not fall, nearby), a continued run where a nearby point is lower, and −4 / −5 / −6 where the
solver cannot go on. SciPy's ``least_squares`` (finite-difference Jacobians, which see one-sided
slopes) and analytic minima are the oracles for ``x`` and the cost.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp
import torch

import jacobite
from jacobite.errors import OutputTypeError

DT = torch.float64
METHODS = ["lm", "trf", "gauss-newton"]


def scipy_fit(fun, x0, **kw):
    return so.least_squares(lambda p: fun(torch.tensor(p, dtype=DT)).numpy(), x0, **kw)


def abs_minus_one(p):
    return p.abs() - 1


def relu_minus_one(p):
    return torch.relu(p) - 1


# ---------------------------------------------------------------- kinks: not minima, go on


@pytest.mark.parametrize("method", METHODS)
def test_abs_from_its_kink_goes_on_to_the_minimum(method):
    res = jacobite.least_squares(abs_minus_one, torch.zeros(1), method=method)
    ref = scipy_fit(abs_minus_one, [0.0], method="trf")
    assert res.success and res.status in (1, 2, 3, 4)
    assert "kink" in res.message and "went on" in res.message
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-10)
    assert res.cost == pytest.approx(ref.cost, abs=1e-20) and res.cost < 1e-20


def test_abs_from_its_kink_within_the_budget_reports_the_kink():
    res = jacobite.least_squares(abs_minus_one, torch.zeros(1), max_nfev=3)
    assert res.status == -4 and not res.success
    assert "kink" in res.message and "smooth the residual" in res.message
    assert res.x.tolist() == [0.0] and res.cost == 0.5


@pytest.mark.parametrize("n", [2, 5])
def test_separable_kinks_move_together(n):
    res = jacobite.least_squares(abs_minus_one, torch.zeros(n))
    assert res.success
    np.testing.assert_allclose(res.x.numpy(), np.ones(n), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_relu_at_its_kink_goes_on_to_the_live_side(method):
    res = jacobite.least_squares(relu_minus_one, torch.zeros(1), method=method)
    assert res.success and "kink" in res.message
    np.testing.assert_allclose(res.x.numpy(), [1.0], atol=1e-10)


def test_a_kink_under_bounds_and_a_robust_loss():
    res = jacobite.least_squares(abs_minus_one, torch.zeros(1), bounds=(-0.5, 2.0))
    assert res.success and res.method == "trf"
    np.testing.assert_allclose(res.x.numpy(), [1.0], atol=1e-10)
    res = jacobite.least_squares(abs_minus_one, torch.zeros(1), loss="soft_l1")
    ref = scipy_fit(abs_minus_one, [0.0], loss="soft_l1")
    assert res.success
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-8)


def test_a_kink_with_a_sparse_jacobian():
    def jac(p):
        return sp.diags(torch.sign(p).numpy())

    res = jacobite.least_squares(abs_minus_one, torch.zeros(4), jac=jac, method="trf")
    assert res.success and "kink" in res.message
    np.testing.assert_allclose(res.x.numpy(), np.ones(4), atol=1e-10)


def test_a_kink_at_a_minimum_is_a_success():
    res = jacobite.least_squares(lambda p: p.abs() + 1, torch.zeros(1))
    assert res.success and res.status == 1 and res.nit == 0 and "kink" not in res.message
    assert res.x.tolist() == [0.0] and res.cost == 0.5  # ½(|p| + 1)² >= ½


# ------------------------------------------------------- saddles and maxima of the cost


@pytest.mark.parametrize("method", METHODS)
def test_a_maximum_of_the_cost_at_the_start_is_left(method):
    # ½(p² − 1)² has a maximum at 0, where J = 2p = 0: the Gauss–Newton model is blind there
    res = jacobite.least_squares(lambda p: p ** 2 - 1, torch.zeros(1), method=method)
    assert res.success and "saddle point or maximum" in res.message
    np.testing.assert_allclose(np.abs(res.x.numpy()), [1.0], atol=1e-10)
    assert res.cost < 1e-20


@pytest.mark.parametrize("method", METHODS)
def test_cos_from_zero_is_a_maximum(method):
    res = jacobite.least_squares(torch.cos, torch.zeros(1), method=method)
    assert res.success and "saddle point or maximum" in res.message
    assert abs(math.cos(res.x.item())) < 1e-10


def test_a_maximum_hidden_by_full_rank_jacobian():
    # J = [2p, 0.1] has full rank at 0, but ½(p² − 1)² + ½(0.1 p)² has a maximum there
    res = jacobite.least_squares(lambda p: torch.cat([p ** 2 - 1, 0.1 * p]), torch.zeros(1))
    assert res.success
    np.testing.assert_allclose(np.abs(res.x.numpy()), [math.sqrt(0.995)], rtol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_a_saddle_reached_by_iteration_is_left(method):
    def r(p):
        return torch.stack([p[0] ** 2 - 1, p[1]])

    res = jacobite.least_squares(r, [0.0, 0.5], method=method)
    ref = scipy_fit(r, [0.0, 0.5])
    assert res.success and "saddle point or maximum" in res.message
    np.testing.assert_allclose(np.abs(res.x.numpy()), np.abs(ref.x), atol=1e-10)
    assert res.cost < 1e-20 and ref.cost < 1e-20


def test_a_maximum_within_the_budget_reports_the_saddle():
    res = jacobite.least_squares(lambda p: p ** 2 - 1, torch.zeros(1), max_nfev=3)
    assert res.status == -5 and not res.success and "saddle point or maximum" in res.message
    assert res.x.tolist() == [0.0]


# ------------------------------------------------------------------------------ plateaus


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shift", [-1.0, 1.0])
def test_a_dead_relu_is_a_plateau(method, shift):
    # relu(p) ∓ 1 from p < 0: J = 0 and the cost is flat; nothing is known about where to go
    def r(p):
        return torch.relu(p) + shift

    res = jacobite.least_squares(r, [-1.0], method=method)
    ref = scipy_fit(r, [-1.0])
    assert res.status == -6 and not res.success and "plateau" in res.message
    assert res.x.tolist() == ref.x.tolist() == [-1.0] and res.cost == ref.cost == 0.5


def test_a_staircase_is_a_plateau():
    res = jacobite.least_squares(lambda p: torch.floor(p) - 2.5, [0.5])
    assert res.status == -6 and res.x.tolist() == [0.5]


# --------------------------------------------------------- genuine minima stay successes


@pytest.mark.parametrize("method", METHODS)
def test_a_start_at_the_solution(method):
    res = jacobite.least_squares(lambda p: p - 1, [1.0], method=method)
    assert res.success and res.status == 1 and res.cost == 0.0 and res.x.tolist() == [1.0]


@pytest.mark.parametrize("method", METHODS)
def test_a_start_at_a_nonzero_residual_minimum(method):
    def r(p):
        return torch.stack([p[0] - 1, p[0] + 1])  # inconsistent: least squares at 0, cost 1

    res = jacobite.least_squares(r, [0.0], method=method)
    ref = scipy_fit(r, [0.0])
    assert res.success and res.status == ref.status == 1 and res.nit == 0
    assert res.x.tolist() == ref.x.tolist() and res.cost == ref.cost == 1.0
    assert res.message == "gtol termination condition is satisfied"


@pytest.mark.parametrize("method", METHODS)
def test_a_minimum_where_the_jacobian_vanishes(method):
    # r = p² + 1: J = 0 at 0, yet ½(p² + 1)² has its strict minimum there (curvature 2)
    res = jacobite.least_squares(lambda p: p ** 2 + 1, [0.0], method=method)
    ref = scipy_fit(lambda p: p ** 2 + 1, [0.0])
    assert res.success and res.x.tolist() == ref.x.tolist() == [0.0]
    assert res.cost == ref.cost == 0.5


def test_a_quartic_minimum_where_the_jacobian_vanishes():
    res = jacobite.least_squares(lambda p: p ** 4 + 1, [0.0])
    assert res.success and res.x.tolist() == [0.0] and res.cost == 0.5


def test_a_redundant_parameter_is_not_a_failure():
    t = torch.linspace(0, 1, 6, dtype=DT)
    y = 2.0 * t + 1.0

    def r(p):  # only p[0] + p[1] is determined
        return (p[0] + p[1]) * t + p[2] - y

    with pytest.warns(jacobite.errors.JacobiteWarning, match="rank deficient"):
        res = jacobite.least_squares(r, [1.0, 0.0, 0.0])
    assert res.success and res.status > 0 and res.cost < 1e-25


def test_a_fun_returning_none_is_refused():
    with pytest.raises(OutputTypeError, match="returned None"):
        jacobite.least_squares(lambda p: None, [0.0])


def test_float32_residuals_probe_above_their_rounding():
    z = torch.zeros(1, dtype=torch.float32)
    res = jacobite.least_squares(abs_minus_one, z, dtype=None)
    assert res.success and res.x.dtype == torch.float32 and res.x.tolist() == [1.0]
    res = jacobite.least_squares(relu_minus_one, -torch.ones(1), dtype=None)
    assert res.status == -6 and res.x.tolist() == [-1.0]
    for r in (lambda p: p ** 2 + 1, lambda p: p ** 4 + 1):
        res = jacobite.least_squares(r, z, dtype=None)
        assert res.success and res.x.tolist() == [0.0] and res.cost == 0.5
    res = jacobite.least_squares(lambda p: torch.stack([p[0] ** 2 - 1, p[1]]),
                                 torch.tensor([0.0, 0.5]), dtype=None)
    assert res.success and res.x.abs().tolist() == [1.0, 0.0]


def test_the_derivative_after_leaving_a_kink_and_on_a_plateau():
    theta = torch.tensor(2.0, dtype=DT, requires_grad=True)
    res = jacobite.least_squares(lambda p, t: p.abs() - t, torch.zeros(1), args=(theta,))
    assert res.success and res.x.item() == pytest.approx(2.0, abs=1e-12)
    (dx,) = torch.autograd.grad(res.x.sum(), theta)
    assert dx.item() == pytest.approx(1.0, abs=1e-12)  # x* = θ on the side it went on to
    theta = torch.tensor(2.0, dtype=DT, requires_grad=True)
    res = jacobite.least_squares(lambda p, t: torch.relu(p) - t, -torch.ones(1), args=(theta,))
    assert res.status == -6
    with pytest.raises(jacobite.errors.ConvergenceError, match="plateau"):
        torch.autograd.grad(res.x.sum(), theta)


@pytest.mark.filterwarnings("ignore:the Jacobian at the solution is rank deficient")
def test_curve_fit_warns_on_a_plateau():
    t = np.linspace(0.0, 1.0, 5)
    with pytest.warns(jacobite.errors.JacobiteWarning, match="did not converge: stopped on a "
                                                            "plateau"):
        out = jacobite.curve_fit(lambda t, a: torch.relu(a) * t, t, 2 * t, p0=[-1.0],
                                 full_output=True)
    assert out[0].tolist() == [-1.0] and out[-1] == -6
