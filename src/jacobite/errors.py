"""Typed errors raised by jacobite.

Every error derives from :class:`JacobiteError` and, where Python has a matching
built-in, from that too (``ValueError``, ``TypeError``, ``MemoryError``), so both
``except JacobiteError`` and the usual ``except ValueError`` catch it. Each message
says what went wrong *and* how to fix it.

>>> import jacobite, torch
>>> try:
...     jacobite.jacobian(torch.sin, torch.tensor([1.0, float("nan")]))
... except jacobite.errors.NonFiniteInputError as e:
...     print(type(e).__name__)
NonFiniteInputError
"""

from __future__ import annotations

__all__ = [
    "ArgnumsError",
    "ArgumentTypeError",
    "ConvergenceError",
    "DistributedError",
    "DtypeError",
    "ExpressionError",
    "InconsistentDataError",
    "InvalidOptionError",
    "InvalidTagError",
    "JacobianMismatchError",
    "JacobianTooLarge",
    "JacobiteError",
    "JacobiteWarning",
    "LocalPatternWarning",
    "LogDetMismatchError",
    "MissingExtraError",
    "ModuleStateError",
    "NonFiniteInputError",
    "NotFittedError",
    "NotSquareError",
    "OutputTypeError",
    "RankFailedError",
    "ShapeError",
    "SingularOperatorError",
    "UnsafeExpressionError",
    "UnsupportedOperationError",
]


class JacobiteError(Exception):
    """Root of every error jacobite raises on purpose."""


class JacobiteWarning(UserWarning):
    """Root of every warning jacobite emits."""


class LocalPatternWarning(JacobiteWarning):
    """A sparsity pattern found at one point (value-dependent control flow, a value read into
    Python) is used at another point, where it may miss nonzeros."""


class InvalidOptionError(JacobiteError, ValueError):
    """An option has a value outside its allowed set (an unknown method, a negative step)."""


class ArgumentTypeError(JacobiteError, TypeError):
    """An argument has the wrong type: a non-callable ``f``, a string where a number belongs."""


class NonFiniteInputError(JacobiteError, ValueError):
    """An input (or a residual) contains NaN or Inf."""


class DtypeError(JacobiteError, TypeError):
    """A tensor has a dtype that cannot be differentiated (integers, bool)."""


class ShapeError(JacobiteError, ValueError):
    """Shapes do not fit together (a vector of the wrong length, a non-matrix)."""


class NotSquareError(ShapeError):
    """An operation needs a square operator (determinant, solve) and got a rectangular one."""


class ArgnumsError(JacobiteError, ValueError):
    """``argnums`` names an argument that does not exist or is not a tensor."""


class OutputTypeError(JacobiteError, TypeError):
    """The function returned something that is not a tensor or a pytree of tensors."""


class UnsupportedOperationError(JacobiteError, RuntimeError):
    """The function uses an operation the chosen transform cannot handle."""


class ModuleStateError(JacobiteError, RuntimeError):
    """An ``nn.Module`` changes its own state (buffers) during the forward pass."""


class ExpressionError(JacobiteError, ValueError):
    """A symbolic expression, variable list or point is malformed or names unknown variables."""


class UnsafeExpressionError(ExpressionError):
    """An expression string holds something other than arithmetic, numbers, variable names and
    whitelisted functions (attribute access, strings, keywords, dunder names, ...)."""


class InvalidTagError(JacobiteError, ValueError):
    """A structural tag is unknown or contradicted by the operator it is attached to."""


class SingularOperatorError(JacobiteError, ArithmeticError):
    """A solve or inverse was asked of a singular (or numerically singular) operator."""


class NotFittedError(JacobiteError, ValueError, AttributeError):
    """An estimator (such as :class:`jacobite.nn.JENNRegressor`) was asked to predict before
    ``fit`` was called; a ``ValueError`` and an ``AttributeError``, as in scikit-learn."""


class ConvergenceError(JacobiteError, RuntimeError):
    """An iterative method stopped before reaching its tolerance."""


class DistributedError(JacobiteError, RuntimeError):
    """A ``process_group=`` cannot be used: ``torch.distributed`` is not initialised (call
    ``torch.distributed.init_process_group(...)`` or start under ``torchrun``), or this process
    is not a member of the group."""


class RankFailedError(DistributedError):
    """Another rank of the process group raised inside a guarded collective; the message names
    each failing rank and its error (``rank 1 failed: ValueError: ...``). The failing rank
    itself re-raises its own error."""


class JacobianTooLarge(JacobiteError, MemoryError):
    """The requested dense result alone would exceed the memory budget."""


class JacobianMismatchError(JacobiteError, AssertionError):
    """:func:`jacobite.check` found AD and numeric Jacobians that disagree, or could not tell."""


class LogDetMismatchError(JacobianMismatchError):
    """A transform's claimed log|det J| disagrees with the exact one from its AD Jacobian
    (:meth:`jacobite.transforms.flows.LogDetCheck.raise_if_bad`); the message names the likely
    bug (flipped sign, constant offset, wrong scale, a few bad samples) and its fix."""


class InconsistentDataError(JacobiteError, ValueError):
    """Supplied training data disagree with the function that should have produced them
    (:meth:`jacobite.nn.DataCheck.raise_if_bad`): wrong values, or Jacobians with a flipped sign,
    a wrong factor, a transpose or inputs out of order."""


class MissingExtraError(JacobiteError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra.

    >>> require("math", "none").sqrt(4.0)
    2.0
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(
            f"this feature needs the optional dependency {module!r}; "
            f"install it with: pip install 'jacobite[{extra}]'"
        ) from exc
