"""Regions of integration: one ``(low, high)`` pair per new coordinate, validated up front."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidOptionError, ShapeError

__all__ = ["Bounds", "normalize_region"]

#: A region: a sequence of ``(low, high)`` pairs (one per variable, in order), or a mapping
#: ``{variable: (low, high)}`` that overrides some of the transform's default bounds.
Bounds = Sequence[Any] | Mapping[str, Any]


def _number(v: Any, what: str) -> float:
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InvalidOptionError(f"{what} must be a real number (math.inf allowed), got {v!r}")
    f = float(v)
    if math.isnan(f):
        raise InvalidOptionError(f"{what} is NaN; give a number or ±math.inf")
    return f


def _pair(bounds: Any, var: str, where: str) -> tuple[float, float]:
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise ShapeError(f"the bounds of {var!r} in {where} must be a (low, high) pair, got "
                         f"{bounds!r}")
    lo = _number(bounds[0], f"the lower bound of {var!r}")
    hi = _number(bounds[1], f"the upper bound of {var!r}")
    if lo > hi:
        raise InvalidOptionError(
            f"the lower bound of {var!r} is above its upper bound ({lo} > {hi}) in {where}; "
            f"swap them — ({hi}, {lo}) — and negate the result if you meant the reversed "
            f"orientation")
    if lo == hi and math.isinf(lo):
        raise InvalidOptionError(f"the interval ({lo}, {hi}) of {var!r} is empty at infinity; "
                                 f"give at least one finite end")
    return lo, hi


def normalize_region(region: Bounds, names: Sequence[str],
                     defaults: Sequence[tuple[float, float]],
                     what: str) -> tuple[tuple[float, float], ...]:
    """Check ``region`` against the variables ``names`` and return one float pair per variable.

    A mapping only changes the variables it names (the others keep ``defaults``); a sequence
    must give every variable. For one variable a bare ``(low, high)`` pair is accepted.

    >>> import math
    >>> normalize_region({"r": (0, 1)}, ("r", "t"), ((0, math.inf), (0, 6.0)), "polar")
    ((0.0, 1.0), (0.0, 6.0))
    >>> normalize_region((0, 2), ("u",), ((-math.inf, math.inf),), "user")
    ((0.0, 2.0),)
    """
    names = tuple(names)
    where = f"the region of the {what} transform"
    if isinstance(region, Mapping):
        unknown = sorted(set(map(str, region)) - set(names))
        if unknown:
            raise InvalidOptionError(f"{where} names unknown variable(s) {unknown}; use only "
                                     f"the variables {names}")
        out = list(defaults)
        for i, var in enumerate(names):
            if var in region:
                out[i] = _pair(region[var], var, where)
        return tuple((float(a), float(b)) for a, b in out)
    if isinstance(region, (str, bytes)) or not isinstance(region, Sequence):
        raise ShapeError(f"{where} must be a sequence of (low, high) pairs or a dict "
                         f"{{variable: (low, high)}}, got {type(region).__name__}")
    items = list(region)
    if len(names) == 1 and len(items) == 2 and all(
            isinstance(b, numbers.Real) or hasattr(b, "item") for b in items):
        items = [items]
    if len(items) != len(names):
        raise ShapeError(
            f"{where} has {len(items)} bound(s) for {len(names)} variable(s) {names}; give one "
            f"(low, high) pair per variable in that order, or a dict such as "
            f"{{{names[0]!r}: (0, 1)}} to change only some of the default bounds")
    return tuple(_pair(b, var, where) for b, var in zip(items, names, strict=True))
