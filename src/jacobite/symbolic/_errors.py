"""Typed errors of the symbolic layer (to move into :mod:`jacobite.errors`).

>>> issubclass(UnsafeExpressionError, ExpressionError), issubclass(ExpressionError, ValueError)
(True, True)
"""

from __future__ import annotations

from ..errors import JacobiteError

__all__ = ["ExpressionError", "UnsafeExpressionError"]


class ExpressionError(JacobiteError, ValueError):
    """A symbolic expression, variable list or point is malformed or names unknown variables."""


class UnsafeExpressionError(ExpressionError):
    """An expression string contains something other than arithmetic, numbers, variable names
    and whitelisted functions (attribute access, strings, keywords, dunder names, ...)."""
