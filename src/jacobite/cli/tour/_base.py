"""The tour's building block: one worked example of a source text, checked two ways.

Each :class:`Example` holds jacobite's computation, the value the source text prints (at the
precision it prints), and the correct value from an independent closed form. It *passes* when
jacobite equals the correct value and agrees with the source text exactly where the source text
is right; where it is wrong (``text_ok=False``) jacobite must disagree with it, and the note
says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Example:
    ref: str  # "002"
    section: str  # the text's section, as printed
    what: str  # what is computed
    compute: Callable[[], Any]  # jacobite's value: a number, nested list, or expression string
    text: Any  # the value the source text prints (None when it prints none)
    correct: Callable[[], Any]  # the correct value from an independent closed form
    decimals: int | None = None  # the text's printed precision; None = exact
    text_ok: bool = True
    note: str = ""
    how: str = ""  # the jacobite call or command that reproduces it
    claim: str = ""  # how the source text's wrong claim reads, when its bare value says too little


@dataclass(frozen=True)
class Outcome:
    example: Example
    value: Any
    correct: Any
    jacobite_ok: bool
    agrees_with_text: bool | None  # None: the text prints no value
    passed: bool


def _symbolic_equal(a: str, b: str) -> bool:
    import sympy

    from ...symbolic import parse

    pa, pb = parse(a), parse(b)
    if len(pa) != len(pb):
        return False
    return all(sympy.simplify(x - y) == 0 for x, y in zip(pa, pb, strict=True))


def _flatten(v: Any) -> Any:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and any(isinstance(e, str) for e in np.ravel(
            np.asarray(v, dtype=object))):
        return [str(e) for e in np.ravel(np.asarray(v, dtype=object))]
    return np.asarray(v, dtype=float).ravel()


def close(a: Any, b: Any, *, rtol: float = 1e-9, atol: float = 1e-10) -> bool:
    """Numbers/arrays to a tight tolerance; expression strings by symbolic equality."""
    fa, fb = _flatten(a), _flatten(b)
    if isinstance(fa, str) or isinstance(fb, str):
        return isinstance(fa, str) and isinstance(fb, str) and _symbolic_equal(fa, fb)
    if isinstance(fa, list) or isinstance(fb, list):
        if not (isinstance(fa, list) and isinstance(fb, list)) or len(fa) != len(fb):
            return False
        return all(_symbolic_equal(x, y) for x, y in zip(fa, fb, strict=True))
    return fa.shape == fb.shape and bool(np.allclose(fa, fb, rtol=rtol, atol=atol))


def agrees(value: Any, text: Any, decimals: int | None) -> bool:
    """Does jacobite's value, rounded as the text rounds, equal what the text prints?"""
    if decimals is None:
        return close(value, text)
    fa, fb = _flatten(value), _flatten(text)
    if isinstance(fa, (str, list)) or isinstance(fb, (str, list)):
        return close(value, text)
    if fa.shape != fb.shape:
        return False
    scale = 10.0**decimals
    # round half away from zero, as people round by hand
    rounded = np.sign(fa) * np.floor(np.abs(fa) * scale + 0.5) / scale
    return bool(np.all(np.abs(rounded - fb) < 0.5 / scale * 1e-6 + 1e-12))


def evaluate(ex: Example) -> Outcome:
    value = ex.compute()
    correct = ex.correct()
    ok = close(value, correct)
    agree = None if ex.text is None else agrees(value, ex.text, ex.decimals)
    passed = ok and (agree is None or agree == ex.text_ok)
    return Outcome(ex, value, correct, ok, agree, passed)


def fmt(v: Any, decimals: int | None = None) -> str:
    """Short display of a value."""
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:.{decimals}f}" if decimals is not None else f"{v:.10g}"
    if isinstance(v, int):
        return str(v)
    try:
        arr = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return str(v)
    d = 6 if decimals is None else max(decimals, 0)
    def one(x: float) -> str:
        if abs(x) < 0.5 * 10.0**-d:
            x = 0.0  # no "-0.000000" for rounding noise
        if math.isfinite(x) and x == int(x) and abs(x) < 1e12:
            return str(int(x))
        return f"{x:.{d}f}"
    if arr.ndim == 0:
        return one(float(arr))
    if arr.ndim == 1:
        return "[" + ", ".join(one(float(x)) for x in arr) + "]"
    return "[" + ", ".join(fmt(r.tolist(), decimals) for r in arr) + "]"


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return fmt(v, 6)


def disagreement(o: Outcome) -> str | None:
    """Where the source text is wrong: its claim next to the correct value, then the reason.

    >>> ex = Example("000", "s", "number of classes", lambda: 3, 4, lambda: 3, decimals=0,
    ...              text_ok=False, note="three logits, three names")
    >>> disagreement(evaluate(ex))
    'the source text claims 4; the correct value is 3 — three logits, three names'
    """
    e = o.example
    if e.text_ok:
        return None
    claimed = e.claim or (_show(e.text) if e.decimals is None else fmt(e.text, e.decimals))
    line = f"the source text claims {claimed}; the correct value is {_show(o.correct)}"
    return f"{line} — {e.note}" if e.note else line
