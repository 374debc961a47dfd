"""Hostile values for jacobite.numeric.jacobian: non-finite points and outputs, empty and 0-d
inputs, tiny and large magnitudes, kinks, domain edges, noisy and constant functions, odd
dtypes — against analytic derivatives, with the error estimate held to account."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import jacobite
from jacobite import numeric
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    JacobiteWarning,
    NonFiniteInputError,
    OutputTypeError,
    UnsupportedOperationError,
)

from ._probe import assert_close, python_peak, refuses, within

METHODS = ["richardson", "central", "forward", "backward", "complex"]
TOL = {"richardson": 1e-12, "central": 1e-9, "forward": 1e-6, "backward": 1e-6, "complex": 1e-14}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("x", [[0.5, 1.0], 0.5, np.array([[0.1, 0.2], [0.3, 0.4]]).T],
                         ids=["list", "0-d", "transposed"])
def test_smooth_functions_match_the_analytic_jacobian_with_an_honest_error(method, x):
    xa = np.asarray(x, dtype=float)
    with within():
        res = numeric.jacobian(np.sin, x, method=method)
    want = np.diag(np.cos(xa).ravel()).reshape(xa.shape + xa.shape)
    assert_close(res.jacobian, want, rtol=TOL[method], atol=TOL[method])
    assert np.all(np.abs(res.jacobian - want) <= np.asarray(res.error) * 10 + 1e-15)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_nonfinite_point_is_refused(method, bad):
    with refuses(NonFiniteInputError, "replace the non-finite entries"):
        numeric.jacobian(np.sin, [bad, 1.0], method=method)


@pytest.mark.parametrize("method", METHODS)
def test_a_function_nonfinite_at_the_point_is_refused(method):
    with refuses(NonFiniteInputError, "inside f's domain"):
        numeric.jacobian(lambda v: v * np.nan, [1.0], method=method)


@pytest.mark.parametrize("method", METHODS)
def test_an_empty_point_gives_an_empty_jacobian_in_one_call(method):
    with within():
        res = numeric.jacobian(np.sin, np.zeros(0), method=method)
    assert np.asarray(res.jacobian).shape == (0, 0) and res.nfev == 1


@pytest.mark.parametrize("method", ["richardson", "central", "forward", "backward"])
def test_a_constant_function_has_a_zero_jacobian(method):
    with within():
        res = numeric.jacobian(lambda v: np.ones(2), [1.0, 2.0], method=method)
    assert_close(res.jacobian, np.zeros((2, 2)), atol=1e-7)


@pytest.mark.parametrize("method", ["richardson", "central", "forward", "backward", "complex"])
@pytest.mark.parametrize("x", [1e-300, 5e-324, -1e-200])
def test_tiny_points_of_a_smooth_function_match_the_analytic_value(method, x):
    with within():
        res = numeric.jacobian(lambda v: v ** 2 + 3 * v, [x], method=method)
    assert_close(res.jacobian, [[2 * x + 3]], rtol=TOL[method], atol=TOL[method])


@pytest.mark.parametrize(("method", "rtol"), [("richardson", 1e-7), ("central", 1e-4),
                                              ("complex", 1e-7)])
def test_a_slowly_varying_function_at_large_x_matches_the_analytic_value(method, rtol):
    # the central step at 1e8 (0.003, the step sin needs there) leaves a rounding error of
    # eps |f| / (h |J|), about 1e-5 relative, which the error estimate must cover
    want = -np.exp(-1.0) / 1e8
    with within():
        res = numeric.jacobian(lambda v: np.exp(-v / 1e8), [1e8], method=method)
    assert_close(res.jacobian, [[want]], rtol=rtol, atol=0)
    assert abs(float(res.jacobian[0, 0]) - want) <= float(res.error[0, 0])


def test_the_complex_step_at_huge_x_is_exact():
    with within():
        res = numeric.jacobian(lambda v: v ** 2, [1e150], method="complex")
    assert_close(res.jacobian, [[2e150]], rtol=1e-14)


_RNG = np.random.default_rng(0)


@pytest.mark.parametrize("f", [lambda v: np.abs(v) ** 2, lambda v: np.ones(1),
                               lambda v: v + _RNG.random(1)],
                         ids=["abs", "constant", "random"])
def test_the_complex_step_refuses_non_analytic_functions_naming_richardson(f):
    with refuses(UnsupportedOperationError, "method='richardson'"):
        numeric.jacobian(f, [1.0], method="complex")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("method", ["central", "backward"])
def test_a_step_across_the_domain_edge_is_refused_naming_a_smaller_step(method):
    with refuses(NonFiniteInputError, "smaller step"):
        numeric.jacobian(np.sqrt, [0.0], method=method)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_richardson_at_the_domain_edge_is_refused_naming_the_step():
    with refuses(NonFiniteInputError, "step="):
        numeric.jacobian(np.sqrt, [0.0])


@pytest.mark.parametrize(("method", "slope"), [("forward", 1.0), ("backward", -1.0)])
def test_one_sided_differences_at_a_kink_give_the_one_sided_slope(method, slope):
    with within():
        res = numeric.jacobian(np.abs, [0.0], method=method)
    assert_close(res.jacobian, [[slope]], rtol=1e-10)


def test_a_noisy_function_reports_an_error_that_covers_the_truth():
    rng = np.random.default_rng(1)
    with within():
        res = numeric.jacobian(lambda v: v + 1e-3 * rng.random(1), [1.0])
    assert abs(float(res.jacobian[0, 0]) - 1.0) <= float(res.error[0, 0])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("f", [lambda v: "a", lambda v: None, lambda v: v * 1j],
                         ids=["str", "None", "complex"])
def test_non_real_outputs_are_refused(method, f):
    with refuses(OutputTypeError, "return"):
        numeric.jacobian(f, [1.0], method=method)


@pytest.mark.parametrize("x", [torch.tensor([1]), torch.tensor([True]), ["a"], [True, False]],
                         ids=["int-tensor", "bool-tensor", "strings", "bools"])
def test_non_real_points_are_refused_naming_the_conversion(x):
    with refuses(DtypeError, "double()" if isinstance(x, torch.Tensor) else "dtype=float"):
        numeric.jacobian(np.sin, x)


def test_a_complex_tensor_point_is_refused_naming_view_as_real():
    with refuses(DtypeError, "view_as_real"):
        numeric.jacobian(torch.sin, torch.tensor([1j]))


@pytest.mark.parametrize("step", [0, -1.0])
def test_a_non_positive_step_is_refused(step):
    with refuses(InvalidOptionError, "step=1e-6"):
        numeric.jacobian(np.sin, [1.0], step=step)


def test_a_nan_step_is_refused():
    with refuses(NonFiniteInputError, "finite positive steps"):
        numeric.jacobian(np.sin, [1.0], step=np.nan)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_low_precision_tensors_warn_and_stay_within_their_precision(dtype):
    with within(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = numeric.jacobian(torch.sin, torch.tensor([0.5], dtype=dtype), method="central")
    assert any(issubclass(w.category, JacobiteWarning) for w in caught)
    assert res.jacobian.dtype == dtype
    assert_close(res.jacobian, [[np.cos(0.5)]], rtol=5e-2 if dtype == torch.float16 else 1e-3)


def test_a_requires_grad_tensor_is_differentiated_like_a_plain_one():
    x = torch.tensor([0.3, 1.0], dtype=torch.float64, requires_grad=True)
    with within():
        res = numeric.jacobian(torch.sin, x)
    assert_close(res.jacobian, torch.diag(torch.cos(x.detach())), rtol=1e-12)


def test_a_function_that_raises_propagates_its_error():
    with pytest.raises(ZeroDivisionError):
        numeric.jacobian(lambda v: 1 / 0, [1.0])


@pytest.mark.parametrize("method", ["richardson", "central", "forward"])
def test_a_wide_jacobian_stays_within_a_small_multiple_of_its_size(method):
    n = 300
    result_bytes = n * n * 8
    with within(), python_peak(32 * result_bytes):
        res = numeric.jacobian(lambda v: 2.0 * v, np.zeros(n), method=method)
    assert_close(res.jacobian, 2.0 * np.eye(n), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["richardson", "central", "complex"])
def test_a_jacobian_over_the_memory_budget_is_refused_before_allocating(method):
    with python_peak(16 * 2**20), refuses(JacobianTooLarge, "memory_budget="):
        numeric.jacobian(lambda v: 2.0 * v, np.zeros(100_000), method=method)


@pytest.mark.parametrize("x", [1e150, -1e150])
def test_central_differences_at_a_huge_point_are_finite_and_cover_the_truth(x):
    with within(), warnings.catch_warnings():
        warnings.simplefilter("error")
        res = numeric.jacobian(lambda v: v ** 2, [x], method="central")
    assert_close(res.jacobian, [[2 * x]], rtol=1e-10, atol=0)
    assert abs(float(res.jacobian[0, 0]) - 2 * x) <= float(res.error[0, 0])


def test_richardson_at_a_huge_point_is_refused_naming_the_step():
    with refuses(NonFiniteInputError, "step="):
        numeric.jacobian(lambda v: v ** 2, [1e150])


@pytest.mark.parametrize("x", [0.0, 1e-300])
def test_the_complex_step_at_a_branch_point_is_refused_naming_a_one_sided_method(x):
    with refuses(UnsupportedOperationError, "method='forward'"):
        numeric.jacobian(torch.sqrt, torch.tensor([x], dtype=torch.float64), method="complex")


@pytest.mark.parametrize("method", METHODS)
def test_a_meta_tensor_is_refused_naming_the_dense_jacobian(method):
    with refuses(UnsupportedOperationError, "jacobite.jacobian", "device='cpu'"):
        numeric.jacobian(torch.sin, torch.zeros(3, device="meta"), method=method)


@pytest.mark.parametrize("f", [lambda v: v + torch.rand_like(v),
                               lambda v: torch.nn.functional.dropout(v, 0.5, training=True)],
                         ids=["rand_like", "dropout"])
def test_check_refuses_a_function_that_draws_random_numbers(f):
    with refuses(UnsupportedOperationError, "manual_seed", "eval()"):
        jacobite.check(f, torch.ones(3, dtype=torch.float64))


def test_check_of_a_rough_function_is_inconclusive_not_ok():
    # AD is right (J = 1) but the numeric estimate (about 0.04) cannot confirm it to 1 %
    def f(v):
        return v + (1e-2 * torch.sin(1e9 * v)).detach()

    with within():
        res = jacobite.check(f, torch.tensor([0.7], dtype=torch.float64))
    assert not res.ok and res.inconclusive
    torch.testing.assert_close(res.ad_jacobian, torch.ones(1, 1, dtype=torch.float64))
