"""The typed errors: hierarchy, the documented built-in bases, and real raises caught by them."""

from __future__ import annotations

import inspect
import pickle

import pytest
import torch

import jacobite
from jacobite import errors
from jacobite.errors import JacobiteError, JacobiteWarning

#: The built-in each error is documented to derive from (errors.py and its docstrings).
DOCUMENTED_BASES = {
    "NonFiniteInputError": ValueError,
    "DtypeError": TypeError,
    "ShapeError": ValueError,
    "NotSquareError": errors.ShapeError,
    "ArgnumsError": ValueError,
    "OutputTypeError": TypeError,
    "UnsupportedOperationError": RuntimeError,
    "ModuleStateError": RuntimeError,
    "JacobianTooLarge": MemoryError,
    "JacobianMismatchError": AssertionError,
    "MissingExtraError": ImportError,
    "InvalidOptionError": ValueError,
    "InvalidTagError": ValueError,
    "SingularOperatorError": ArithmeticError,
    "ConvergenceError": RuntimeError,
}


def _exported_classes() -> dict[str, type]:
    return {n: getattr(errors, n) for n in errors.__all__ if inspect.isclass(getattr(errors, n))}


def test_everything_in_all_exists() -> None:
    for name in errors.__all__:
        assert hasattr(errors, name), name
    assert jacobite.errors is errors


@pytest.mark.parametrize("name", sorted(DOCUMENTED_BASES))
def test_documented_builtin_bases(name: str) -> None:
    if not hasattr(errors, name):
        pytest.fail(f"jacobite.errors.{name} is documented but missing")
    cls = getattr(errors, name)
    assert issubclass(cls, JacobiteError)
    assert issubclass(cls, DOCUMENTED_BASES[name])
    assert issubclass(cls, Exception)
    assert cls.__doc__ and cls.__doc__.strip()


def test_every_exported_error_is_a_jacobite_error() -> None:
    for name, cls in _exported_classes().items():
        if name.endswith("Warning"):
            assert issubclass(cls, JacobiteWarning) and not issubclass(cls, JacobiteError), name
            continue
        assert issubclass(cls, JacobiteError), name
        assert cls.__doc__ and cls.__doc__.strip(), f"{name} has no docstring"
        if cls is not JacobiteError:
            # every concrete error is catchable by a matching built-in too (module docstring)
            assert any(issubclass(cls, b) for b in
                       (ValueError, TypeError, MemoryError, RuntimeError, AssertionError,
                        ImportError, ArithmeticError)), name


def test_warning_is_a_user_warning() -> None:
    assert issubclass(JacobiteWarning, UserWarning)
    with pytest.warns(UserWarning):
        import warnings

        warnings.warn("x", JacobiteWarning, stacklevel=1)


@pytest.mark.parametrize("name", sorted(DOCUMENTED_BASES))
def test_errors_pickle_round_trip(name: str) -> None:
    """Errors cross process boundaries (pytest-xdist, multiprocessing) intact."""
    cls = getattr(errors, name)
    err = cls("something went wrong; do this instead")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == str(err)


def test_raised_errors_are_caught_by_builtins() -> None:
    x = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    with pytest.raises(ValueError, match="NaN"):
        jacobite.jacobian(torch.sin, x)
    with pytest.raises(TypeError, match="double"):
        jacobite.jacobian(torch.sin, torch.tensor([1, 2]))
    with pytest.raises(MemoryError, match="budget"):
        jacobite.jacobian(torch.sin, torch.zeros(100, dtype=torch.float64), memory_budget=1000)
    with pytest.raises(ValueError, match="argnums"):
        jacobite.jacobian(torch.sin, x, argnums=3)
    try:
        jacobite.jacobian(torch.sin, x)
    except JacobiteError as exc:  # the root catches it too
        assert isinstance(exc, errors.NonFiniteInputError)
    else:  # pragma: no cover
        pytest.fail("no error raised")


def test_require_imports_or_names_the_extra() -> None:
    import math

    assert errors.require("math", "none") is math
    with pytest.raises(errors.MissingExtraError, match=r"pip install 'jacobite\[symbolic\]'") \
            as info:
        errors.require("jacobite_no_such_module_for_tests", "symbolic")
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value.__cause__, ImportError)
    assert "jacobite_no_such_module_for_tests" in str(info.value)
