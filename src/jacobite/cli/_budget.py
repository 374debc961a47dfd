"""Pre-flight checks: symbolic work too large to finish is refused before it starts.

SymPy spends minutes, or gigabytes, in C on a few kinds of input: a power tower whose exponents
depend on the variables, an exact power with millions of digits (``2**387420489``), a constant
beyond any float (``E**E**E**100``), a determinant or a critical-point system whose expansion has
millions of terms. Each check reads only the expression tree (no expansion, no evaluation with
SymPy) and raises :class:`~jacobite.errors.ExpressionError` naming the limit and the fix; the
process limits (``--time-limit``, ``--memory-limit``) stay as the backstop.

>>> import sympy
>>> x, y = sympy.symbols("x y", real=True)
>>> log10_size(x**3 + y, {x: sympy.Integer(10), y: sympy.Integer(0)})
3.0
>>> check_tower([x**x**x**x**x])
Traceback (most recent call last):
...
jacobite.errors.ExpressionError: expression too large for symbolic work: a tower of 4 powers ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ExpressionError

__all__ = ["MAX_BEZOUT", "MAX_DET_TERMS", "MAX_DIGITS", "MAX_LOG10", "MAX_POWER", "MAX_TOWER",
           "bezout_bound", "check_determinant", "check_extrema", "check_magnitude",
           "check_tower", "det_terms", "log10_size", "preflight"]

#: Deepest accepted tower of powers whose exponents depend on the variables (``x**x**x``).
MAX_TOWER = 3
#: Most digits of an exact power at a point (Python's limit for printing an int is 4300).
MAX_DIGITS = 4300
#: Largest accepted log10 of any value at a point (floats end near 10**308).
MAX_LOG10 = 100_000.0
#: Largest integer exponent on a sum (or other compound base) in a determinant, which
#: simplifying expands: ``(x + y)**64`` takes about a second, ``(x + y)**200`` minutes.
MAX_POWER = 64
#: Most terms the expanded determinant may have (an upper bound from the entries).
MAX_DET_TERMS = 5000
#: Largest Bezout bound (product of the degrees of the gradient) for exact critical points.
MAX_BEZOUT = 1000

_PREFIX = "expression too large for symbolic work: "
_LOG10_E = math.log10(math.e)
_BOUNDED = {"sin", "cos", "tanh", "atan", "erf", "sign", "atan2", "asin", "acos"}


def _clip(expr: Any, n: int = 40) -> str:
    text = str(expr)
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------- towers


def _tower(expr: Any) -> int:
    if not expr.args:
        return 0
    deepest = max(_tower(a) for a in expr.args)
    if expr.is_Pow and expr.exp.free_symbols:
        return max(deepest, 1 + _tower(expr.exp))
    return deepest


def check_tower(exprs: Iterable[Any]) -> None:
    """Refuse a tower of more than :data:`MAX_TOWER` powers with variable exponents: each level
    multiplies the size of the derivative and of its simplification.

    >>> import sympy
    >>> x = sympy.Symbol("x")
    >>> check_tower([x**x**x, x**2**3**4])
    """
    for e in exprs:
        depth = _tower(e)
        if depth > MAX_TOWER:
            raise ExpressionError(f"{_PREFIX}a tower of {depth} powers with variable exponents "
                                  f"in {_clip(e)} (at most {MAX_TOWER}); write a lower tower, "
                                  "e.g. x**x**x")


# ---------------------------------------------------------------------------- magnitudes


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _estimate(expr: Any, values: Mapping[Any, Any]) -> tuple[float, float | None]:
    """``(log10 |value|, value as a float or None)`` of a constant expression, from floats only
    (a value beyond float64 keeps just its log10)."""
    if expr.is_Symbol:
        v = values[expr]
        return _estimate(v, {}) if hasattr(v, "free_symbols") else _from_float(float(v))
    if expr.is_Integer or expr.is_Rational:
        p, q = abs(int(expr.p)), int(expr.q)
        if p == 0:
            return -math.inf, 0.0
        lg = math.log10(p) - math.log10(q)
        return lg, (float(expr) if abs(lg) < 300 else None)
    if expr.is_Number or expr.is_NumberSymbol:
        return _from_float(float(expr))
    parts = [_estimate(a, values) for a in expr.args]
    if any(math.isnan(lg) for lg, _ in parts):
        return math.nan, None  # a singularity (1/0) below: the evaluation reports it
    floats = [v for _, v in parts]
    if expr.is_Add:
        if all(v is not None for v in floats):
            return _from_float(math.fsum(v for v in floats if v is not None))
        return max(lg for lg, _ in parts) + math.log10(len(parts)), None
    if expr.is_Mul:
        lg = sum(lg for lg, _ in parts)
        if all(v is not None for v in floats) and abs(lg) < 300:
            return lg, math.prod(v for v in floats if v is not None)
        return lg, None
    if expr.is_Pow:
        (lb, vb), (_, ve) = parts
        if ve is None:
            return (0.0, 1.0) if lb == 0 else (math.inf, None)
        if lb == -math.inf:
            return (-math.inf, 0.0) if ve > 0 else (math.nan, None)
        lg = ve * lb
        if vb is not None and abs(lg) < 300 and (vb >= 0 or float(ve).is_integer()):
            try:
                return lg, float(vb**ve)
            except (OverflowError, ZeroDivisionError):
                return lg, None
        return lg, None
    name = type(expr).__name__
    if name == "exp":
        (_, va), = parts
        if va is None:
            return math.inf, None
        return va * _LOG10_E, _float(math.exp(va)) if va < 700 else None
    if name == "log" and len(parts) == 1:
        (la, _), = parts
        if la == -math.inf:
            return math.nan, None  # log(0): the evaluation reports it
        inner = abs(la) * math.log(10)
        return (math.log10(inner) if inner > 0 else -math.inf), None
    if name in ("sinh", "cosh"):
        (_, va), = parts
        return (math.inf, None) if va is None else (abs(va) * _LOG10_E, None)
    if name in _BOUNDED:
        return 0.0, None
    return max((lg for lg, _ in parts), default=0.0), None


def _from_float(v: float) -> tuple[float, float | None]:
    if v == 0:
        return -math.inf, 0.0
    if not math.isfinite(v):
        return math.inf, None
    return math.log10(abs(v)), v


def log10_size(expr: Any, values: Mapping[Any, Any]) -> float:
    """An estimate of ``log10 |expr|`` with the symbols set to ``values`` (no SymPy evaluation).

    >>> import sympy
    >>> log10_size(sympy.E ** sympy.E ** sympy.Integer(100), {}) > 1e43
    True
    """
    return _estimate(expr, values)[0]


def _exact_digits(expr: Any, values: Mapping[Any, Any]) -> float:
    """Digits of an exact power ``p/q ** n`` (``n`` an integer) that substitution would
    compute; 0 for anything else."""
    base, exp = expr.base, expr.exp
    if base.is_Symbol and base in values:
        base = values[base]
    if not getattr(base, "is_Rational", False) or base in (0, 1, -1):
        return 0.0
    lg, ve = _estimate(exp, values)
    if ve is None:
        return math.inf if lg > 0 else 0.0
    if not float(ve).is_integer():
        return 0.0
    height = max(math.log10(abs(int(base.p))), math.log10(int(base.q)))
    return abs(ve) * height


def check_magnitude(exprs: Iterable[Any], values: Mapping[Any, Any], where: str) -> None:
    """Refuse a value (of the expressions or any part of them) that the point makes too large to
    compute: an exact power over :data:`MAX_DIGITS` digits or anything over 10**MAX_LOG10.
    Parts that still depend on a symbol without a value are skipped.

    >>> import sympy
    >>> x = sympy.Symbol("x")
    >>> check_magnitude([x**10], {x: sympy.Integer(2)}, "at x=2")
    """
    known = set(values)
    if not known:
        where = "as written"
    seen: set[Any] = set()
    for e in exprs:
        for node in _nodes(e):
            if node in seen or not node.free_symbols <= known:
                continue
            seen.add(node)
            what = (f"{_clip(node)} {where}" if node.free_symbols
                    else f"the constant {_clip(node)}")
            fix = " or another point with --at" if node.free_symbols else ""
            if node.is_Pow:
                digits = _exact_digits(node, values)
                if digits > MAX_DIGITS:
                    raise ExpressionError(
                        f"{_PREFIX}{what} is an exact number of "
                        f"{_count(digits)} digits (at most {MAX_DIGITS}); choose a smaller "
                        f"power{fix}")
            lg = log10_size(node, values)
            if lg > MAX_LOG10:
                raise ExpressionError(
                    f"{_PREFIX}{what} is {_count(lg)} digits long, far beyond "
                    f"float64 (10**308) and the limit of 10**{MAX_LOG10:.0f}; choose a smaller "
                    f"constant{fix}")


def preflight(J: Any, point: Mapping[str, str] | None) -> dict[Any, Any] | None:
    """The checks for a symbolic Jacobian and an optional ``--at`` point: the tower, then the
    magnitudes of the expressions and entries (constants alone without a point). Returns the
    exact point (``{symbol: value}``), or None without one (or where it cannot be read: the
    evaluation then says why)."""
    from ..errors import JacobiteError
    from ..symbolic import resolve_point

    exprs = [*(J.function or ()), *J.matrix]
    check_tower(exprs)
    exact: dict[Any, Any] | None = None
    if point is not None:
        try:
            exact = resolve_point(point, J.variables, {s.name: s for s in J.parameters})
        except JacobiteError:
            exact = None
    where = "at " + ",".join(f"{k}={v}" for k, v in point.items()) if point else "as written"
    check_magnitude(exprs, exact or {}, where)
    return exact


def _nodes(expr: Any) -> list[Any]:
    """Every sub-expression, each after its own parts (the innermost offender is named)."""
    order, stack = [], [expr]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.args)
    return order[::-1]


def _count(x: float) -> str:
    return f"about {x:.3g}" if math.isfinite(x) else "more than 10**308"


# ---------------------------------------------------------------------------- expansions


def _degree(expr: Any, symbols: frozenset[Any]) -> float:
    """An upper bound on the total degree in ``symbols``; a non-polynomial part counts 1."""
    if not expr.free_symbols & symbols:
        return 0.0
    if expr.is_Symbol:
        return 1.0
    if expr.is_Add:
        return max(_degree(a, symbols) for a in expr.args)
    if expr.is_Mul:
        return sum(_degree(a, symbols) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Integer:
        return abs(int(expr.exp)) * _degree(expr.base, symbols)
    return 1.0


def _terms(expr: Any) -> float:
    """An upper bound on the number of terms of ``expr`` expanded (multinomial counts)."""
    if expr.is_Add:
        return sum(_terms(a) for a in expr.args)
    if expr.is_Mul:
        return math.prod(_terms(a) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Integer and expr.base.is_Add:
        n, t = abs(int(expr.exp)), _terms(expr.base)
        return _binomial(n + t - 1, t - 1)
    return 1.0


def _binomial(n: float, k: float) -> float:
    if k <= 0 or n <= k:
        return 1.0
    lg = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return math.exp(lg) if lg < 700 else math.inf


def det_terms(rows: Sequence[Sequence[Any]], symbols: Sequence[Any]) -> float:
    """An upper bound on the terms of the expanded determinant: each term takes one term of one
    entry per row, and there are at most ``C(D + k, k)`` monomials of degree ``D`` (the sum of
    the rows' degrees) in ``k`` atoms.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> det_terms(sympy.Matrix([[2*x, 1], [y, x]]).tolist(), [x, y])
    4.0
    """
    syms = frozenset(symbols)
    by_rows = math.prod(sum(_terms(e) for e in row) for row in rows)
    atoms = {a for row in rows for e in row for a in _atoms(e)}
    degree = sum(max((_degree(e, syms) for e in row), default=0.0) for row in rows)
    return min(by_rows, _binomial(degree + len(atoms), float(len(atoms))))


def _atoms(expr: Any) -> Iterable[Any]:
    for node in _nodes(expr):
        if node.is_Symbol or (node.free_symbols and not (node.is_Add or node.is_Mul or (
                node.is_Pow and node.exp.is_Integer))):
            yield node


def check_determinant(rows: Sequence[Sequence[Any]], symbols: Sequence[Any]) -> None:
    """Refuse a determinant whose simplification would expand a power over :data:`MAX_POWER`
    of a sum, or whose expansion may have more than :data:`MAX_DET_TERMS` terms.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> check_determinant(sympy.Matrix([[2*x, 1], [y, x]]).tolist(), [x, y])
    """
    for row in rows:
        for e in row:
            for node in _nodes(e):
                if (node.is_Pow and node.exp.is_Integer and abs(int(node.exp)) > MAX_POWER
                        and not node.base.is_Symbol):
                    raise ExpressionError(
                        f"{_PREFIX}exponent {node.exp} on ({_clip(node.base)}) in the Jacobian, "
                        f"whose determinant expands it (at most {MAX_POWER} on a sum); use a "
                        "smaller power")
    terms = det_terms(rows, symbols)
    if terms > MAX_DET_TERMS:
        n = len(rows)
        raise ExpressionError(
            f"{_PREFIX}the {n}x{n} determinant may expand to {_count(terms)} terms (at most "
            f"{MAX_DET_TERMS}); give fewer or simpler components (the Python API "
            "jacobite.symbolic.jacobian(...).at(point) evaluates J without its determinant)")


def bezout_bound(expr: Any, symbols: Sequence[Any]) -> float | None:
    """The product of the degrees of ``d expr / d s`` (Bezout's bound on the number of isolated
    critical points); None where ``expr`` is not a polynomial in ``symbols``.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> bezout_bound(x**4 + y**3 + x*y, [x, y])
    6.0
    """
    if not expr.is_polynomial(*symbols):
        return None
    syms = frozenset(symbols)
    return math.prod(max(_degree(expr.diff(s), syms), 1.0) for s in symbols)


def check_extrema(expr: Any, symbols: Sequence[Any]) -> None:
    """Refuse exact critical points of a polynomial whose gradient system may have more than
    :data:`MAX_BEZOUT` solutions.

    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> check_extrema(x**2 + 4*y**2 - 11*x, [x, y])
    """
    bound = bezout_bound(expr, symbols)
    if bound is not None and bound > MAX_BEZOUT:
        raise ExpressionError(
            f"{_PREFIX}the gradient equations of {_clip(expr)} may have {_count(bound)} "
            f"solutions by Bezout's bound (at most {MAX_BEZOUT} for exact critical points); use "
            "--method newton with --x0 X,Y,... or --box LO:HI,...")
