"""Bad inputs raise jacobite's typed errors, with a message naming the fix."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import jacobite
from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    JacobianTooLarge,
    JacobiteError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.numeric import NumericOptionError, jacobian


@pytest.mark.parametrize("x", [np.array([1.0, np.nan]), [0.0, np.inf], float("nan"),
                               torch.tensor([1.0, float("inf")], dtype=torch.float64)])
def test_non_finite_x(x):
    f = torch.sin if isinstance(x, torch.Tensor) else np.sin
    with pytest.raises(NonFiniteInputError, match="replace the non-finite"):
        jacobian(f, x)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_tensor_is_rejected_naming_double(dtype):
    with pytest.raises(DtypeError, match=r"x\.double\(\)"):
        jacobian(torch.sin, torch.ones(3, dtype=dtype))


def test_complex_inputs_are_rejected():
    with pytest.raises(DtypeError, match="real"):
        jacobian(np.sin, np.array([1 + 1j]))
    with pytest.raises(DtypeError, match="view_as_real"):
        jacobian(torch.sin, torch.ones(2, dtype=torch.complex128))


def test_non_numeric_x():
    with pytest.raises(DtypeError, match="real numbers"):
        jacobian(np.sin, np.array(["a", "b"]))
    with pytest.raises(DtypeError):
        jacobian(np.sin, [[1.0], [1.0, 2.0]])  # ragged


@pytest.mark.parametrize("out", ["text", {"a": 1}, None, np.array([True, False])])
def test_non_numeric_output(out):
    with pytest.raises(OutputTypeError, match="make f return"):
        jacobian(lambda v: out, np.ones(2))


def test_complex_output_is_rejected():
    with pytest.raises(OutputTypeError, match="real and imaginary"):
        jacobian(lambda v: v * 1j, np.ones(2))


def test_nan_output_at_base_point():
    with pytest.raises(NonFiniteInputError, match="f is not finite at x"), \
            np.errstate(all="ignore"):
        jacobian(np.log, np.array([1.0, -1.0]))
    with pytest.raises(NonFiniteInputError, match="domain"):
        jacobian(torch.log, torch.tensor([-1.0], dtype=torch.float64))


def test_output_shape_change_is_rejected():
    calls = [0]

    def f(v):
        calls[0] += 1
        return np.ones(2 if calls[0] == 1 else 3)

    with pytest.raises(ShapeError, match="same shape"):
        jacobian(f, np.ones(2))


def test_non_finite_at_trial_points_of_plain_differences():
    # sqrt at 1e-9: the central step crosses 0
    with pytest.raises(NonFiniteInputError, match="smaller step"), np.errstate(all="ignore"):
        jacobian(np.sqrt, np.array([1e-9]), "central")


def test_richardson_never_finite_along_a_coordinate():
    def f(v):
        out = np.array([v[0], 1.0])
        if v[0] != 0.5:
            out[1] = np.nan
        return out

    with pytest.raises(NonFiniteInputError, match="step"):
        jacobian(f, np.array([0.5]))


@pytest.mark.parametrize("step", [0.0, -1e-3, [1e-3, -1e-3]])
def test_bad_step(step):
    with pytest.raises(NumericOptionError, match="positive"):
        jacobian(np.sin, np.ones(2), "central", step=step)


def test_bad_step_shape_and_value():
    with pytest.raises(ShapeError, match="broadcast"):
        jacobian(np.sin, np.ones(2), step=np.ones(3))
    with pytest.raises(NonFiniteInputError):
        jacobian(np.sin, np.ones(2), step=np.nan)
    with pytest.raises(NumericOptionError):
        jacobian(np.sin, np.ones(2), step="big")


def test_unknown_method():
    with pytest.raises(NumericOptionError, match="richardson"):
        jacobian(np.sin, np.ones(2), "fivepoint")


def test_step_too_small_for_precision():
    with pytest.raises(NumericOptionError, match="larger step"):
        jacobian(np.sin, np.array([1e10]), "forward", step=1e-20)


def test_typed_errors_are_also_builtin_errors():
    with pytest.raises(ValueError):
        jacobian(np.sin, np.array([np.nan]))
    with pytest.raises(TypeError):
        jacobian(torch.sin, torch.ones(2, dtype=torch.int64))
    with pytest.raises(JacobiteError):
        jacobian(lambda v: "x", 1.0)


def test_non_callable_f():
    with pytest.raises(ArgumentTypeError, match="must be a callable"):
        jacobian(3.0, np.ones(2))


@pytest.mark.parametrize("kw", [{"args": 3}, {"kwargs": [1]}])
def test_args_and_kwargs_have_their_container_types(kw):
    with pytest.raises(ArgumentTypeError, match=r"e\.g\."):
        jacobian(np.sin, np.ones(2), **kw)


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_jacobian_over_the_budget_is_refused_before_it_is_allocated():
    # 100000 x 100000 float64 is 80 GB per array: refused after the one call f(x)
    calls = []

    def f(v):
        calls.append(1)
        return 2.0 * v

    def run():
        with pytest.raises(JacobianTooLarge, match=r"memory_budget=\.\.\."):
            jacobian(f, np.zeros(100_000), method="central")

    assert _peak(run) < 16 * 2**20
    assert len(calls) == 1


@pytest.mark.parametrize("method", ["richardson", "central", "forward", "complex"])
def test_the_budget_counts_values_error_and_step(method):
    x = np.zeros(100)  # 3 arrays of 100 x 100 float64: 240000 bytes
    with pytest.raises(JacobianTooLarge, match=r"234\.38 KiB"):
        jacobian(np.sin, x, method=method, memory_budget=200_000)
    with jacobite.config.memory_budget(200_000), pytest.raises(JacobianTooLarge):
        jacobian(np.sin, x, method=method)
    res = jacobian(np.sin, x, method=method, memory_budget=240_000)
    np.testing.assert_allclose(res.jacobian, np.eye(100), atol=1e-8)


@pytest.mark.parametrize("budget", [0, -1, "lots", float("inf")])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(JacobiteError):
        jacobian(np.sin, [1.0], memory_budget=budget)


def test_a_meta_tensor_is_refused_naming_a_real_device_or_the_dense_jacobian():
    x = torch.zeros(3, device="meta")
    with pytest.raises(UnsupportedOperationError, match=r"jacobite\.jacobian") as info:
        jacobian(torch.sin, x)
    assert "device='cpu'" in str(info.value)


def test_a_difference_that_overflows_is_refused_not_returned_as_inf():
    # f(x +- h) - f(x) = 3.4e308 overflows: no Inf or NaN Jacobian comes back
    def f(v):
        return np.where(v > 0, 1.7e308, -1.7e308)

    with np.errstate(over="ignore"), pytest.raises(NonFiniteInputError, match="step="):
        jacobian(f, [0.0], method="forward")
