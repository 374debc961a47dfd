"""``SymbolicMatrix``: a matrix of derivatives (Jacobian, gradient or Hessian) with its variables.

It holds the exact SymPy matrix and the variable order, and turns it into everything else a user
needs: values at a point (exact or float64), the simplified determinant, LaTeX, strings for
JSON and a torch function (for cross-checks against AD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import ExpressionError, NotSquareError, require
from .bridge import TorchFunction
from .variables import free_symbols, resolve_point

__all__ = ["SymbolicMatrix"]

#: What a :class:`SymbolicMatrix` holds.
Kind = Literal["jacobian", "gradient", "hessian"]
_KINDS: tuple[Kind, ...] = ("jacobian", "gradient", "hessian")


def _real(sp: Any, v: Any, where: str) -> float:
    try:
        v = v.evalf(30)
        if v in (sp.oo, -sp.oo):
            return float(v)
        if v.has(sp.zoo, sp.nan):
            return float("nan")
        c = complex(v)
    except OverflowError as exc:  # beyond what even SymPy can evaluate: exp(exp(exp(exp(10))))
        raise ExpressionError(f"{where} is too large to evaluate at this point (far beyond "
                              "float64); choose another point or rescale the function") from exc
    if abs(c.imag) > 1e-12 * max(1.0, abs(c.real)):
        raise ExpressionError(f"{where} is not real at this point ({v}); choose a point in the "
                              "real domain (e.g. sqrt or log of a positive number)")
    return c.real


@dataclass(frozen=True, eq=False)
class SymbolicMatrix:
    """An exact matrix of derivatives.

    Attributes:
        matrix: the SymPy ``ImmutableMatrix`` (``(m, n)`` Jacobian, ``(n, 1)`` gradient,
            ``(n, n)`` Hessian).
        variables: the SymPy symbols differentiated by, in column order.
        kind: ``"jacobian"``, ``"gradient"`` or ``"hessian"``. A gradient is a column; its
            values (:meth:`at`, :meth:`to_torch`, :meth:`strings`) are 1-D.
        function: the expressions it was derived from.

    >>> from jacobite.symbolic import jacobian
    >>> J = jacobian("x**2 + y, x*y")
    >>> J
    SymbolicMatrix(jacobian of (x**2 + y, x*y) by (x, y): [[2*x, 1], [y, x]])
    >>> J.at({"x": 1, "y": 2}).tolist()
    [[2.0, 1.0], [2.0, 1.0]]
    """

    matrix: Any
    variables: tuple[Any, ...]
    kind: Kind = "jacobian"
    function: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the values: ``(m, n)``, or ``(n,)`` for a gradient."""
        r, c = self.matrix.shape
        return (r,) if self.kind == "gradient" else (r, c)

    @property
    def names(self) -> tuple[str, ...]:
        """The variable names, in column order."""
        return tuple(s.name for s in self.variables)

    @property
    def parameters(self) -> tuple[Any, ...]:
        """Free symbols of the function that are not variables (they stay symbolic)."""
        found = free_symbols([*self.function, *self.matrix])
        return tuple(s for n, s in sorted(found.items()) if s not in self.variables)

    def subs(self, point: Any) -> Any:
        """The exact matrix at ``point`` (a mapping by name, or a sequence in variable order).

        >>> from jacobite.symbolic import jacobian
        >>> jacobian("x**2 + y, x*y").subs({"x": "1/2", "y": 0})
        Matrix([
        [1, 1],
        [0, 1/2]])
        """
        values = resolve_point(point, self.variables, {s.name: s for s in self.parameters})
        return self.matrix.subs(values)

    def at(self, point: Any, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The values at ``point`` as a tensor of :attr:`shape`: exact substitution, then float.

        >>> from jacobite.symbolic import jacobian
        >>> jacobian("x**2 + y, x*y").at([0, 1]).tolist()
        [[0.0, 1.0], [1.0, 0.0]]
        """
        sp = require("sympy", "symbolic")
        exact = self.subs(point)
        left = set().union(*(e.free_symbols for e in exact))
        if left:
            names = ", ".join(sorted(s.name for s in left))
            raise ExpressionError(f"the {self.kind} still depends on {names} at this point; give "
                                  f"values for them in the point too, e.g. {{'{min(left, key=str)}'"
                                  ": 1.0, ...}")
        vals = [_real(sp, e, f"the {self.kind}") for e in exact]
        return torch.tensor(vals, dtype=dtype).reshape(self.shape)

    def determinant(self, *, factor: bool = False, simplify: bool = True) -> Any:
        """The determinant (square matrices only), simplified, optionally factored.

        >>> from jacobite.symbolic import jacobian
        >>> jacobian("r*cos(theta), r*sin(theta)").determinant()
        r
        >>> jacobian("x**2 - y**2, 2*x*y").determinant(factor=True)
        4*(x**2 + y**2)
        """
        sp = require("sympy", "symbolic")
        r, c = self.matrix.shape
        if r != c or self.kind == "gradient":
            raise NotSquareError(
                f"the {self.kind} is {r}x{c}; a determinant needs as many functions as variables "
                "(a square Jacobian); for a rectangular J use e.g. det(J^T J) or the singular "
                "values")
        det = self.matrix.det(method="berkowitz")
        if simplify:
            det = sp.simplify(det)
        return sp.factor(det) if factor else det

    def simplify(self) -> SymbolicMatrix:
        """A copy with every entry simplified by SymPy."""
        sp = require("sympy", "symbolic")
        return SymbolicMatrix(self.matrix.applyfunc(sp.simplify).as_immutable(), self.variables,
                              self.kind, self.function)

    def latex(self) -> str:
        r"""LaTeX of the matrix (a column for a gradient).

        >>> from jacobite.symbolic import jacobian
        >>> jacobian("x**2 + y, x*y").latex()
        '\\left[\\begin{matrix}2 x & 1\\\\y & x\\end{matrix}\\right]'
        """
        sp = require("sympy", "symbolic")
        return sp.latex(self.matrix)

    def strings(self) -> list[Any]:
        """Entries as strings (nested rows; a flat list for a gradient), e.g. for JSON.

        The strings parse back with :func:`jacobite.symbolic.parse`.

        >>> from jacobite.symbolic import jacobian
        >>> jacobian("x**2 + y, x*y").strings()
        [['2*x', '1'], ['y', 'x']]
        """
        rows = [[str(e) for e in self.matrix.row(i)] for i in range(self.matrix.rows)]
        return [row[0] for row in rows] if self.kind == "gradient" else rows

    def to_torch(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """A torch function ``x -> values`` (variables on the last axis of ``x``; parameters are
        not allowed), built by ``sympy.lambdify`` with the torch module.

        >>> import torch
        >>> from jacobite.symbolic import jacobian
        >>> J = jacobian("x**2 + y, x*y").to_torch()
        >>> J(torch.tensor([1.0, 2.0], dtype=torch.float64)).tolist()
        [[2.0, 1.0], [2.0, 1.0]]
        """
        return TorchFunction(list(self.matrix), self.variables, self.shape)

    def __repr__(self) -> str:
        rows = self.strings()
        body = "[" + ", ".join(rows) + "]" if self.kind == "gradient" else \
            "[" + ", ".join("[" + ", ".join(r) + "]" for r in rows) + "]"
        fn = self.function[0] if len(self.function) == 1 else self.function
        names = ", ".join(self.names)
        return f"SymbolicMatrix({self.kind} of {fn} by ({names}): {body})"

    def _repr_latex_(self) -> str:
        return f"$${self.latex()}$$"
