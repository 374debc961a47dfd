"""Symbolic calculus: Jacobian, gradient, Hessian, determinant, linear approximation, LaTeX.

Every function takes expressions as :func:`jacobite.symbolic.parse` does (a comma-separated string,
a list of strings, SymPy expressions) and ``variables`` as
:func:`jacobite.symbolic.resolve_variables` does (default: the free symbols sorted by name).

>>> jacobian("x**2 + y*z, sin(x*y), exp(x + z)").strings()
[['2*x', 'z', 'y'], ['y*cos(x*y)', 'x*cos(x*y)', '0'], ['exp(x + z)', '0', 'exp(x + z)']]
"""

from __future__ import annotations

from typing import Any

from .. import _validate
from ..errors import ShapeError, require
from .matrix import SymbolicMatrix
from .parse import parse, parse_components
from .variables import free_symbols, resolve_point, resolve_variables

__all__ = ["determinant", "gradient", "hessian", "jacobian", "latex", "linear_approximation"]


def jacobian(exprs: Any, variables: Any = None) -> SymbolicMatrix:
    """The exact Jacobian ``J[i, j] = d f_i / d x_j`` (one row per expression).

    Args:
        exprs: the components of ``F``, e.g. ``"x**2 + y, x*y"``.
        variables: the column order; default: the free symbols sorted by name. Free symbols not
            listed are parameters and stay symbolic.

    >>> J = jacobian("x**2 + y, x*y")
    >>> J.matrix
    Matrix([
    [2*x, 1],
    [  y, x]])
    >>> J.at({"x": 1, "y": 2}).tolist()
    [[2.0, 1.0], [2.0, 1.0]]
    """
    sp = require("sympy", "symbolic")
    items = parse(exprs)
    syms = resolve_variables(items, variables)
    J = sp.Matrix(items).jacobian(sp.Matrix(syms))
    return SymbolicMatrix(J.as_immutable(), syms, "jacobian", items)


def _scalar(exprs: Any, what: str) -> Any:
    items = parse(exprs)
    if len(items) != 1:
        raise ShapeError(f"{what} needs ONE scalar expression but got {len(items)} components; "
                         "for a vector function use jacobian(...)")
    return items


def gradient(expr: Any, variables: Any = None) -> SymbolicMatrix:
    """The gradient of a scalar expression (the transposed 1 x n Jacobian), a column.

    >>> g = gradient("x**2 + 4*y**2 - 11*x + 8*y - 16")
    >>> g.strings()
    ['2*x - 11', '8*y + 8']
    """
    sp = require("sympy", "symbolic")
    items = _scalar(expr, "gradient")
    syms = resolve_variables(items, variables)
    g = sp.Matrix([sp.diff(items[0], s) for s in syms])
    return SymbolicMatrix(g.as_immutable(), syms, "gradient", items)


def hessian(expr: Any, variables: Any = None) -> SymbolicMatrix:
    """The Hessian of a scalar expression: the Jacobian of its gradient (symmetric).

    >>> hessian("x**2 + 4*y**2 - 11*x + 8*y - 16").matrix
    Matrix([
    [2, 0],
    [0, 8]])
    """
    sp = require("sympy", "symbolic")
    items = _scalar(expr, "hessian")
    syms = resolve_variables(items, variables)
    return SymbolicMatrix(sp.hessian(items[0], syms).as_immutable(), syms, "hessian", items)


def determinant(exprs: Any, variables: Any = None, *, factor: bool = False) -> Any:
    """The simplified Jacobian determinant of a square system (``NotSquareError`` otherwise).

    >>> determinant("r*cos(theta), r*sin(theta)")
    r
    >>> determinant("x**2 - y**2, 2*x*y", factor=True)
    4*(x**2 + y**2)
    """
    factor = _validate.boolean(factor, "factor")
    return jacobian(exprs, variables).determinant(factor=factor)


def linear_approximation(exprs: Any, point: Any, variables: Any = None) -> Any:
    """The best linear approximation ``F(a) + J(a)(x - a)`` at ``a = point``, expanded.

    Exact when the point is (ints, fractions, strings like ``"1/3"``). One expression given on
    its own gives one expression back; several give a tuple.

    >>> linear_approximation("x**2 + y, x*y", {"x": 1, "y": 2})
    (2*x + y - 1, 2*x + y - 2)
    >>> linear_approximation("x**3", {"x": 2})
    12*x - 16
    """
    sp = require("sympy", "symbolic")
    items, vector = parse_components(exprs)
    syms = resolve_variables(items, variables)
    params = {n: s for n, s in free_symbols(items).items() if s not in syms}
    a = resolve_point(point, syms, params)
    at_a = {s: v for s, v in a.items() if s in syms}
    J = sp.Matrix(items).jacobian(sp.Matrix(syms)).subs(a)
    F = sp.Matrix(items).subs(a)
    dx = sp.Matrix([s - at_a[s] for s in syms])
    out = tuple(sp.expand(e) for e in F + J * dx)
    return out if vector else out[0]


def latex(obj: Any) -> str:
    r"""LaTeX of expressions (a column vector for several) or of a :class:`SymbolicMatrix`.

    >>> latex("x**2 + y, x*y")
    '\\left[\\begin{matrix}x^{2} + y\\\\x y\\end{matrix}\\right]'
    >>> latex("sqrt(x)/2")
    '\\frac{\\sqrt{x}}{2}'
    """
    sp = require("sympy", "symbolic")
    if isinstance(obj, SymbolicMatrix):
        return obj.latex()
    items, vector = parse_components(obj)
    return sp.latex(sp.Matrix(items)) if vector else sp.latex(items[0])
