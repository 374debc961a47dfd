"""Variables (the order of the Jacobian's columns) and points (values for them).

Variables default to the free symbols of the expressions sorted by name, with digit runs compared
as numbers (``x2`` before ``x10``); pass an explicit order as ``"x, y, z"``, ``"x y z"`` or a
list of names or SymPy symbols. Symbols that are free in the expressions but not listed are
*parameters*: they stay symbolic in the result, and a point may give them values too.

>>> from jacobite.symbolic.parse import parse
>>> resolve_variables(parse("x10 + x2 + a"))
(a, x2, x10)
>>> resolve_variables(parse("a*x"), "x")
(x,)
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from ..errors import ExpressionError, NonFiniteInputError, ShapeError, require
from .parse import CONSTANTS, FUNCTIONS, parse

__all__ = ["free_symbols", "resolve_point", "resolve_variables"]

_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _natural(sym: Any) -> tuple[Any, ...]:
    parts = re.split(r"(\d+)", sym.name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def free_symbols(exprs: Sequence[Any]) -> dict[str, Any]:
    """Free symbols of ``exprs`` by name; two different symbols sharing a name are an error."""
    out: dict[str, Any] = {}
    for e in exprs:
        for s in e.free_symbols:
            if s.name in out and out[s.name] != s:
                raise ExpressionError(
                    f"two different symbols are both named {s.name!r} (e.g. one real, one not); "
                    "build the expressions from the same Symbol objects")
            out[s.name] = s
    return out


def _check_name(name: str) -> str:
    if not _IDENT.fullmatch(name) or keyword.iskeyword(name):
        raise ExpressionError(f"{name!r} is not a valid variable name; use letters, digits and _ "
                              "starting with a letter, like x, y2 or theta")
    if name in FUNCTIONS or name in CONSTANTS:
        raise ExpressionError(f"{name!r} is a function or constant, not a variable; choose "
                              "another name")
    return name


def resolve_variables(exprs: Sequence[Any], variables: Any = None) -> tuple[Any, ...]:
    """The SymPy symbols to differentiate by, in order.

    Args:
        exprs: parsed expressions (see :func:`jacobite.symbolic.parse`).
        variables: ``None`` (free symbols sorted by name), a string of names separated by commas
            or spaces, or a sequence of names / SymPy symbols.

    >>> from jacobite.symbolic.parse import parse
    >>> resolve_variables(parse("r*cos(theta), r*sin(theta)"))
    (r, theta)
    """
    sp = require("sympy", "symbolic")
    if isinstance(exprs, (str, bytes)) or not isinstance(exprs, Sequence) or not all(
            isinstance(e, sp.Basic) for e in exprs):
        raise ExpressionError(f"exprs must be a sequence of parsed expressions, got {exprs!r}; "
                              f"pass jacobite.symbolic.parse(...)")
    free = free_symbols(exprs)
    if variables is None:
        if not free:
            raise ExpressionError("the expressions have no variables; pass variables=..., "
                                  "e.g. variables='x, y'")
        return tuple(sorted(free.values(), key=_natural))
    if isinstance(variables, str):
        items: list[Any] = [v for v in re.split(r"[,\s]+", variables.strip()) if v]
    elif isinstance(variables, sp.Symbol):
        items = [variables]
    elif isinstance(variables, Sequence):
        items = list(variables)
    else:
        raise ExpressionError(f"variables must be a string like 'x, y' or a list of names, got "
                              f"{type(variables).__name__}")
    if not items:
        raise ExpressionError("variables is empty; name at least one, e.g. variables='x, y'")
    out = []
    for v in items:
        if isinstance(v, sp.Symbol):
            if v.name in free and free[v.name] != v:
                raise ExpressionError(f"the symbol {v.name!r} differs from the one in the "
                                      "expressions (other assumptions); pass its name instead")
            out.append(v)
        elif isinstance(v, str):
            name = _check_name(v)
            out.append(free.get(name, sp.Symbol(name, real=True)))
        else:
            raise ExpressionError(f"a variable must be a name or a SymPy Symbol, got {v!r}")
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ExpressionError(f"variable(s) {', '.join(dup)} listed twice; list each once")
    return tuple(out)


def _value(sp: Any, v: Any, name: str) -> Any:
    if isinstance(v, bool):
        raise ExpressionError(f"the value of {name} is a bool; give a number")
    if isinstance(v, int):
        return sp.Integer(v)
    if isinstance(v, Fraction):
        return sp.Rational(v.numerator, v.denominator)
    if isinstance(v, str):
        (e,) = parse([v])
        if e.free_symbols:
            raise ExpressionError(f"the value of {name}, {v!r}, is not a constant; give a "
                                  "number such as 0.5, '1/3' or 'pi/4'")
        return e
    if isinstance(v, sp.Basic):
        if not (isinstance(v, sp.Expr) and v.is_number):
            raise ExpressionError(f"the value of {name}, {v}, is not a number; give a number")
        if v.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            raise NonFiniteInputError(f"the value of {name} is {v}; give a finite number")
        return v
    try:
        f = float(v)  # floats, numpy scalars, one-element tensors and arrays
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ExpressionError(f"the value of {name} ({type(v).__name__}) is not a number; give "
                              f"a number such as 0.5, '1/3' or 'pi/4'") from exc
    if not math.isfinite(f):
        raise NonFiniteInputError(f"the value of {name} is {f}; give a finite number")
    return sp.Float(f)


def resolve_point(point: Any, variables: Sequence[Any],
                  parameters: Mapping[str, Any] | None = None) -> dict[Any, Any]:
    """``{symbol: exact value}`` for a point given as a mapping or a sequence in variable order.

    Args:
        point: ``{"x": 1, "y": 2}`` (names or symbols as keys; parameters allowed too), or a
            sequence / 1-D tensor / array with one value per variable. Values may be ints,
            floats, fractions, SymPy numbers or strings such as ``"1/3"`` and ``"pi/4"``.
        variables: the variables, in order.
        parameters: other free symbols (by name) the point may give values for.

    >>> import sympy
    >>> x, y = sympy.symbols("x y", real=True)
    >>> resolve_point({"x": 1, "y": "1/2"}, (x, y))
    {x: 1, y: 1/2}
    """
    sp = require("sympy", "symbolic")
    if isinstance(variables, (str, bytes)) or not isinstance(variables, Sequence) or not all(
            isinstance(s, sp.Symbol) for s in variables):
        raise ExpressionError(f"variables must be a sequence of SymPy symbols, got "
                              f"{variables!r}; pass resolve_variables(...)")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ExpressionError(f"parameters must map names to symbols, got "
                              f"{type(parameters).__name__}; e.g. parameters={{'a': a}}")
    names = {s.name: s for s in variables}
    extra = dict(parameters or {})
    listing = ", ".join(names)
    if isinstance(point, Mapping):
        out: dict[Any, Any] = {}
        for key, v in point.items():
            name = key.name if isinstance(key, sp.Symbol) else key
            if not isinstance(name, str):
                raise ExpressionError(f"point keys must be variable names, got {key!r}")
            sym = names.get(name, extra.get(name))
            if sym is None:
                raise ExpressionError(f"unknown variable {name!r} in the point; use only the "
                                      f"variables {listing}")
            out[sym] = _value(sp, v, name)
        missing = [n for n, s in names.items() if s not in out]
        if missing:
            raise ExpressionError(f"the point gives no value for {', '.join(missing)}; give one "
                                  f"value per variable ({listing})")
        return out
    if isinstance(point, (str, bytes)):
        raise ExpressionError("give the point as a mapping like {'x': 1, 'y': 2} or a sequence "
                              "of numbers, not a string")
    try:
        values = list(point.reshape(-1) if hasattr(point, "reshape") else point)
    except TypeError as exc:
        raise ExpressionError(f"cannot read a point from {type(point).__name__}; give a mapping "
                              "like {'x': 1, 'y': 2} or a sequence of numbers") from exc
    if len(values) != len(names):
        raise ShapeError(f"the point has {len(values)} value(s) but there are {len(names)} "
                         f"variables ({listing}); give one value per variable, in this order")
    return {s: _value(sp, v, s.name) for s, v in zip(variables, values, strict=True)}
