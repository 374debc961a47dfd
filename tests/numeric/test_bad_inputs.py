"""Bad inputs raise jacobite's typed errors, with a message naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    JacobiteError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
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
