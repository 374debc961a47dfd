"""jacobite.least_squares against closed forms and SciPy's least_squares (exact Jacobian, tight
tolerances) on the battery of tests/lsq_problems.py, plus the result fields and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.solvers import LeastSquaresResult, least_squares
from tests.lsq_problems import BY_NAME, PROBLEMS, answer, oracle, rosenbrock

DT = torch.float64
CASES = [(p, m) for p in PROBLEMS for m in p.methods]


_ANSWERS: dict[str, np.ndarray] = {}


def _answer(p):
    if p.name not in _ANSWERS:
        _ANSWERS[p.name] = answer(p)
    return _ANSWERS[p.name]


def _cost0(p):
    r = p.fun(torch.as_tensor(p.x0, dtype=DT))
    return 0.5 * float(r @ r)


@pytest.mark.parametrize(("p", "method"), CASES, ids=[f"{p.name}-{m}" for p, m in CASES])
def test_battery(p, method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        res = least_squares(p.fun, p.x0, method=method, bounds=p.bounds)
    assert isinstance(res, LeastSquaresResult)
    assert res.success and res.status > 0 and res.method == method
    x = res.x.numpy()
    assert res.x.dtype == DT and np.all(np.isfinite(x))
    assert res.cost <= _cost0(p)
    if p.cost_star is not None:
        assert res.cost == pytest.approx(p.cost_star, rel=1e-8, abs=1e-20)
    if "rank" in p.tags:  # only the product is determined
        assert x[0] * x[1] == pytest.approx(2.25, rel=1e-10)
    elif "singular" in p.tags:
        assert np.max(np.abs(x)) < 1e-4
    else:
        rtol = p.rtol if method != "gauss-newton" else max(p.rtol, 1e-8)
        np.testing.assert_allclose(x, _answer(p), rtol=rtol, atol=1e-14)
    # the reported cost, residuals, Jacobian and gradient belong to the returned x
    f = p.fun(res.x)
    torch.testing.assert_close(res.fun, f, rtol=1e-12, atol=1e-15)
    assert res.cost == pytest.approx(0.5 * float(f @ f), rel=1e-12, abs=1e-30)
    J = jacobite.jacobian(p.fun, res.x)
    torch.testing.assert_close(res.jac, J, rtol=1e-12, atol=1e-12)
    # near the optimum Jᵀf cancels: its rounding is relative to |J|ᵀ|f|, not to Jᵀf (on an AMD
    # EPYC the misra_like gradient differs by 7e-12 = 4e-7 of itself, 6e-17 of |J|ᵀ|f|)
    err = (res.grad - J.T @ f).abs()
    assert bool((err <= 1e-10 * (J.abs().T @ f.abs()) + 1e-15).all()), err


def test_kowalik_osborne_reaches_the_certified_values():
    """NIST MGH09 from start 2 at the defaults: LRE >= 9 (SciPy's defaults give about 5)."""
    p = BY_NAME["kowalik_osborne"]
    res = least_squares(p.fun, p.x0)
    lre = -np.log10(np.max(np.abs(res.x.numpy() - p.x_star) / np.abs(p.x_star)))
    assert lre >= 9
    assert res.nfev + res.njev < 200


def test_bounds_active_mask_and_optimality():
    p = BY_NAME["rosenbrock_bounded"]
    res = least_squares(p.fun, p.x0, bounds=p.bounds)
    np.testing.assert_allclose(res.x.numpy(), [0.5, 0.25], rtol=1e-12)
    assert res.active_mask.tolist() == [1, 0]
    assert res.method == "trf"  # auto with bounds
    assert res.optimality < 1e-10  # projected (Coleman–Li scaled) gradient vanishes
    assert abs(float(res.grad[0])) > 0.1  # although the gradient does not
    assert res.covariance is None  # active bounds: not meaningful


def test_auto_method_choice():
    f = BY_NAME["exp_decay"].fun
    assert least_squares(f, [1.0, 1.0, 0.0]).method == "lm"
    assert least_squares(f, [1.0, 1.0, 0.0], loss="soft_l1").method == "trf"
    underdetermined = least_squares(lambda x: (x * x).sum(0, keepdim=True) - 1, [1.0, 1.0])
    assert underdetermined.method == "trf" and underdetermined.cost < 1e-20


def test_covariance_matches_scipy_curve_fit():
    p = BY_NAME["exp_decay"]
    from tests.lsq_problems import EXP_T, EXP_Y

    res = least_squares(p.fun, p.x0)
    popt, pcov = scipy.optimize.curve_fit(lambda t, a, k, c: a * np.exp(-k * t) + c, EXP_T,
                                          EXP_Y, p0=p.x0, method="trf", ftol=1e-15, xtol=1e-15,
                                          gtol=1e-15)
    np.testing.assert_allclose(res.x.numpy(), popt, rtol=1e-9)
    np.testing.assert_allclose(res.covariance.numpy(), pcov, rtol=1e-6)


def test_rank_deficient_covariance_is_inf_along_the_undetermined_direction():
    p = BY_NAME["product_rank_deficient"]  # only x0·x1 is determined: both variances are inf
    with pytest.warns(JacobiteWarning, match="rank deficient"):
        res = least_squares(lambda x: torch.cat([p.fun(x), p.fun(x)]), p.x0)
    x0, x1 = np.asarray(res.x).tolist()
    # the null direction of J = [x1, x0] is (x0, −x1): the covariance of x0 and x1 is −inf
    np.testing.assert_array_equal(np.asarray(res.covariance),
                                  [[np.inf, -np.inf], [-np.inf, np.inf]])
    assert x0 * x1 > 0


@pytest.mark.parametrize("method", ["lm", "trf", "gauss-newton"])
def test_float32_start_is_solved_in_float64_unless_asked(method):
    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float32)
    assert least_squares(rosenbrock, x0, method=method).x.dtype == torch.float64
    res = least_squares(rosenbrock, x0, method=method, dtype=None)
    assert res.x.dtype == torch.float32
    np.testing.assert_allclose(res.x.numpy(), [1.0, 1.0], rtol=1e-5)


def test_shapes_args_kwargs_and_x_scale():
    target = torch.arange(6, dtype=DT).reshape(2, 3)

    def fun(x, shift, *, power):
        return (x ** power - target - shift).reshape(3, 2)

    res = least_squares(fun, torch.ones(2, 3), args=(1.0,), kwargs={"power": 3},
                        x_scale=[1.0, 2.0, 3.0, 1.0, 1.0, 1.0])
    assert res.x.shape == (2, 3) and res.fun.shape == (6,) and res.jac.shape == (6, 6)
    torch.testing.assert_close(res.x ** 3, target + 1.0, rtol=1e-12, atol=1e-12)


def test_user_jacobian_callable():
    def jac(x):
        return torch.stack([torch.stack([-20 * x[0], torch.tensor(10.0, dtype=DT)]),
                            torch.tensor([-1.0, 0.0], dtype=DT)])

    res = least_squares(rosenbrock, [-1.2, 1.0], jac=jac)
    np.testing.assert_allclose(res.x.numpy(), [1.0, 1.0], rtol=1e-12)
    with pytest.raises(ShapeError, match="Jacobian has shape"):
        least_squares(rosenbrock, [-1.2, 1.0], jac=lambda x: torch.ones(3, 2))


def test_max_nfev_reached_is_reported_not_raised():
    res = least_squares(rosenbrock, [-1.2, 1.0], max_nfev=3)
    assert res.status == 0 and not res.success and "max_nfev" in res.message
    assert res.nfev <= 4 and res.cost <= _cost0(BY_NAME["rosenbrock"])


def test_verbose_prints_progress(capsys):
    least_squares(rosenbrock, [-1.2, 1.0], verbose=2)
    out = capsys.readouterr().out
    assert "iter" in out and "cost" in out and out.count("\n") > 5
    least_squares(rosenbrock, [-1.2, 1.0], verbose=1)
    assert "Function evaluations" in capsys.readouterr().out


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("method", ["lm", "trf", "gauss-newton"])
def test_nan_during_the_iteration_is_rejected(method):
    def fun(x):  # undefined beyond x = 3; the unconstrained minimiser x = 5 is out of reach
        return torch.where(x > 3, torch.full_like(x, float("nan")), x - 5)

    res = least_squares(fun, [0.0], method=method)
    assert torch.isfinite(res.x).all() and torch.isfinite(res.fun).all()
    assert float(res.x[0]) <= 3 and res.cost < 12.5


def test_bad_input_raises_typed_errors():
    with pytest.raises(NonFiniteInputError, match="not finite"):
        least_squares(lambda x: torch.log(x), [-1.0])
    with pytest.raises(NonFiniteInputError):
        least_squares(rosenbrock, [float("nan"), 1.0])
    with pytest.raises(NonFiniteInputError, match="Jacobian at x0"):
        least_squares(lambda x: torch.sqrt(x) - 1, [0.0, 1.0])
    with pytest.raises(InvalidOptionError, match="outside the bounds"):
        least_squares(rosenbrock, [-1.2, 1.0], bounds=(0.0, 2.0))
    with pytest.raises(InvalidOptionError, match="lb < ub"):
        least_squares(rosenbrock, [0.5, 1.0], bounds=(1.0, 0.0))
    with pytest.raises(InvalidOptionError, match="method"):
        least_squares(rosenbrock, [-1.2, 1.0], method="bogus")
    with pytest.raises(InvalidOptionError, match="loss"):
        least_squares(rosenbrock, [-1.2, 1.0], loss="tukey")
    with pytest.raises(InvalidOptionError, match="trf"):
        least_squares(rosenbrock, [0.5, 1.0], method="lm", bounds=(0.0, 2.0))
    with pytest.raises(InvalidOptionError, match="ftol"):
        least_squares(rosenbrock, [-1.2, 1.0], ftol=-1.0)
    with pytest.raises(InvalidOptionError, match="x_scale"):
        least_squares(rosenbrock, [-1.2, 1.0], x_scale=[1.0, -1.0])
    with pytest.raises(InvalidOptionError, match="jac"):
        least_squares(rosenbrock, [-1.2, 1.0], jac="4-point")
    with pytest.raises(ShapeError, match="bound"):
        least_squares(rosenbrock, [0.5, 1.0], bounds=([0.0, 0.0, 0.0], 2.0))
    with pytest.raises(ShapeError, match="empty"):
        least_squares(rosenbrock, [])
    with pytest.raises(DtypeError):
        least_squares(rosenbrock, [1, 1], dtype=torch.int64)
    calls = []

    def changing(x):
        calls.append(1)
        return x.repeat(len(calls))

    with pytest.raises(ShapeError, match=r"must not depend on x|Jacobian has shape"):
        least_squares(changing, [1.0], method="gauss-newton")


# ------------------------------------------------------------------------------ properties


@given(st.integers(1, 5), st.integers(0, 6), st.integers(0, 2 ** 31 - 1),
       st.sampled_from(["lm", "trf", "gauss-newton"]))
def test_linear_least_squares_matches_numpy_lstsq(n, extra, seed, method):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n + extra, n))
    b = rng.standard_normal(n + extra)
    At, bt = torch.as_tensor(A), torch.as_tensor(b)
    res = least_squares(lambda x: At @ x - bt, np.zeros(n), method=method)
    x_np = np.linalg.lstsq(A, b, rcond=None)[0]
    tol = 1e-12 * np.linalg.cond(A) * (1 + np.abs(x_np).max())  # forward error ~ cond · eps
    np.testing.assert_allclose(res.x, x_np, rtol=1e-8, atol=tol)  # NumPy x0: NumPy x


@settings(max_examples=12)
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=2),
       st.sampled_from(["lm", "trf", "gauss-newton"]),
       st.sampled_from(["linear", "soft_l1", "cauchy"]))
def test_cost_never_increases_from_x0(x0, method, loss):
    if method == "lm" and loss != "linear":
        method = "trf"
    p = BY_NAME["freudenstein_roth"]
    res = least_squares(p.fun, x0, method=method, loss=loss, max_nfev=25)
    from jacobite.solvers.lsq.losses import cost_of, robust_loss

    f0 = p.fun(torch.as_tensor(x0, dtype=DT)).numpy()
    assert res.cost <= cost_of(f0, robust_loss(loss)) * (1 + 1e-15)
    assert np.isfinite(res.x.numpy()).all()


def test_oracle_agrees_on_bounded_problem():
    p = BY_NAME["exp_decay_bounded"]
    res = least_squares(p.fun, p.x0, bounds=p.bounds)
    np.testing.assert_allclose(res.x.numpy(), oracle(p), rtol=1e-7)
    assert res.active_mask.tolist() == [0, -1, 0]


@pytest.mark.parametrize("method", ["lm", "trf", "gauss-newton"])
def test_float32_residuals_stop_at_their_rounding(method):
    p = BY_NAME["exp_decay"]
    res = least_squares(p.fun, torch.tensor(p.x0, dtype=torch.float32), method=method,
                        dtype=None)
    assert res.success and res.x.dtype == torch.float32
    np.testing.assert_allclose(res.x.numpy(), _answer(p), rtol=2e-6)
    assert res.nfev + res.njev < 30  # no churning at the float32 noise floor


def test_fun_returning_none_is_named_as_such() -> None:
    from jacobite.errors import OutputTypeError

    with pytest.raises(OutputTypeError, match="returned None"):
        jacobite.least_squares(lambda p: None, torch.zeros(2, dtype=torch.float64))
