"""From SymPy to torch: ``sympy.lambdify`` with the torch module, wrapped for jacobite.

The torch function takes ONE tensor whose last dimension holds the variables in order
(``x[..., i]`` is variable ``i``) and returns ``x.shape[:-1] + shape`` — so ``jacobite.jacobian``
of it at a 1-D point is the ``(m, n)`` Jacobian, and AD and symbols can be checked against each
other. Constant entries are broadcast (and have zero derivative); exact constants such as
``log(2)`` are rounded to float first. Derivatives of ``sign``/``Abs`` are taken almost
everywhere, as torch's AD does: ``DiracDelta`` becomes 0.

>>> import torch
>>> f = to_torch("x**2 + y, x*y")
>>> f(torch.tensor([1.0, 2.0], dtype=torch.float64)).tolist()
[3.0, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import ExpressionError, ShapeError, require
from .parse import parse_components
from .variables import resolve_variables

__all__ = ["TorchFunction", "to_torch"]


def _prepare(sp: Any, expr: Any) -> Any:
    """Rewrite what the torch printer cannot print: sec/csc/cot, DiracDelta, exact constants."""
    if expr.has(sp.DiracDelta, sp.sec, sp.csc, sp.cot):
        expr = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
        expr = expr.replace(sp.sec, lambda a: 1 / sp.cos(a))
        expr = expr.replace(sp.csc, lambda a: 1 / sp.sin(a))
        expr = expr.replace(sp.cot, lambda a: sp.cos(a) / sp.sin(a))
    consts: dict[Any, Any] = {}

    def visit(e: Any) -> None:
        if e.is_number and not (e.is_Rational or e.is_Float):  # sqrt(2), log(2), pi, exp(1)
            consts[e] = sp.Float(e.evalf(17), 17)
        else:
            for a in e.args:
                visit(a)

    visit(expr)
    return expr.xreplace(consts) if consts else expr


class TorchFunction:
    """A torch function built from SymPy expressions (see the module docstring).

    Attributes:
        exprs: the SymPy expressions, row-major.
        variables: the SymPy symbols, in the order of ``x[..., i]``.
        shape: the shape of one output (``()`` for one scalar expression).
    """

    def __init__(self, exprs: Sequence[Any], variables: Sequence[Any],
                 shape: tuple[int, ...]) -> None:
        sp = require("sympy", "symbolic")
        self.exprs = tuple(exprs)
        self.variables = tuple(variables)
        self.shape = shape
        self.__name__ = self.__qualname__ = "sympy_to_torch"
        free = set().union(*(e.free_symbols for e in self.exprs)) - set(self.variables)
        if free:
            names = ", ".join(sorted(s.name for s in free))
            raise ExpressionError(f"the expressions still depend on {names}, which are not "
                                  "variables; add them to variables=... or substitute values")
        prepared = [_prepare(sp, e) for e in self.exprs]
        try:  # one generated function returning the list of all entries
            self._fn: Callable[..., Any] = sp.lambdify(self.variables, prepared, modules="torch")
        except Exception as exc:  # the printer's own error types vary between SymPy versions
            raise ExpressionError(f"cannot convert to torch: {exc}; the expression uses a "
                                  "function torch does not have") from exc

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim == 0:
            raise ShapeError("call the function with one tensor whose last dimension holds the "
                             f"{len(self.variables)} variables, e.g. torch.tensor([1.0, 2.0])")
        if x.shape[-1] != len(self.variables):
            names = ", ".join(s.name for s in self.variables)
            raise ShapeError(f"the last dimension of x has {x.shape[-1]} entries but there are "
                             f"{len(self.variables)} variables ({names})")
        cols = [x[..., i] for i in range(len(self.variables))]
        zero = torch.zeros_like(x[..., 0])
        vals = [v + zero if isinstance(v, torch.Tensor) else zero + float(v)
                for v in self._fn(*cols)]
        out = torch.stack(vals, dim=-1)
        return out.reshape(tuple(x.shape[:-1]) + self.shape)

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.variables)
        body = ", ".join(str(e) for e in self.exprs)
        return f"TorchFunction(({names}) -> [{body}])"


def to_torch(exprs: Any, variables: Any = None) -> TorchFunction:
    """A torch function of one tensor ``x`` (variables on the last axis) computing ``exprs``.

    One expression gives a scalar per point; several give a vector of them; a SymPy matrix keeps
    its shape. Variables default to the free symbols sorted by name (see
    :func:`jacobite.symbolic.resolve_variables`).

    >>> import torch, jacobite
    >>> f = to_torch("r*cos(theta), r*sin(theta)")
    >>> J = jacobite.jacobian(f, torch.tensor([2.0, 0.0], dtype=torch.float64))
    >>> J.tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    sp = require("sympy", "symbolic")
    items, vector = parse_components(exprs)
    if isinstance(exprs, sp.MatrixBase):
        shape: tuple[int, ...] = tuple(exprs.shape)
    else:
        shape = (len(items),) if vector else ()
    return TorchFunction(items, resolve_variables(items, variables), shape)
