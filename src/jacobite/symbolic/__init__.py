"""Symbolic Jacobians with SymPy (the optional ``symbolic`` extra): parse safely, differentiate
exactly, evaluate, print, and hand over to torch.

Part of the *compute* layer. Expressions are strings such as ``"x**2 + y, x*y"`` (parsed by a
whitelist; nothing is executed, see :mod:`jacobite.symbolic.parse`) or SymPy expressions.
SymPy is imported on first use, so ``import jacobite`` works without it.

>>> from jacobite import symbolic
>>> J = symbolic.jacobian("x**2 + y, x*y")
>>> J.matrix
Matrix([
[2*x, 1],
[  y, x]])
>>> J.at({"x": 0, "y": 1}).tolist()
[[0.0, 1.0], [1.0, 0.0]]
"""

from ..errors import ExpressionError, UnsafeExpressionError
from .bridge import TorchFunction, to_torch
from .calculus import determinant, gradient, hessian, jacobian, latex, linear_approximation
from .matrix import SymbolicMatrix
from .parse import parse
from .variables import resolve_point, resolve_variables

__all__ = [
    "ExpressionError",
    "SymbolicMatrix",
    "TorchFunction",
    "UnsafeExpressionError",
    "determinant",
    "gradient",
    "hessian",
    "jacobian",
    "latex",
    "linear_approximation",
    "parse",
    "resolve_point",
    "resolve_variables",
    "to_torch",
]
