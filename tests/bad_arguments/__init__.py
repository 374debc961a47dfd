"""The table behind ``tests/test_bad_arguments.py``: per public callable, one call that works
and the bad variants of it, each changing exactly one argument.

An :class:`Entry` holds the baseline ``(args, kwargs)`` and its cases; a *slot* names the
argument a case replaces (an ``int`` for a position, a ``str`` for a keyword). The helpers
below turn one slot into the usual bad values for its kind of argument (a callable, a tensor,
an integer option, a tolerance, a choice, a flag, a seed, a chunk size, a memory budget).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from jacobite.errors import (
    ArgnumsError,
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteError,
    NonFiniteInputError,
    ShapeError,
)

Slot = int | str
Case = tuple[Slot, Any]
Expected = type[JacobiteError] | tuple[type[JacobiteError], ...]

F64 = torch.float64


@dataclass
class Entry:
    """One public callable: a baseline call that works, and bad variants of it."""

    name: str
    target: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    xfail: dict[str, str] = field(default_factory=dict)  # case id -> reason (others' areas)

    def call(self, slot: Slot | None = None, value: Any = None) -> Any:
        args, kwargs = list(self.args), dict(self.kwargs)
        if isinstance(slot, int) and slot >= len(args):  # a later positional: by its name
            slot = list(inspect.signature(self.target).parameters)[slot]
        if isinstance(slot, int):
            args[slot] = value
        elif slot is not None:
            kwargs[slot] = value
        return self.target(*args, **kwargs)


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        v = f"tensor{tuple(value.shape)}-{str(value.dtype).removeprefix('torch.')}"
        if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
            v += "-nan"
        return v
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**6:
        return "huge"
    if isinstance(value, (str, int, float, bool, type(None))):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_short(k)}:{_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ",".join(_short(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if getattr(value, "label_smoothing", 0.0):  # a loss told apart from the plain one
        return f"{type(value).__name__}(label_smoothing={value.label_smoothing})"
    shape = getattr(value, "shape", None)
    return type(value).__name__ + (str(tuple(shape)) if isinstance(shape, tuple) else "")


def case_id(slot: Slot, value: Any) -> str:
    """A short, stable id for a case: ``slot=value``."""
    return f"{slot}={_short(value)}"[:80]


def entry(name: str, target: Callable[..., Any], *args: Any, cases: Iterable[Case] = (),
          xfail: dict[str, str] | None = None, **kwargs: Any) -> Entry:
    return Entry(name, target, args, kwargs, list(cases), dict(xfail or {}))


class Typed(tuple[Slot, Any]):
    """A case ``(slot, value)`` that also names the error class(es) it must raise: a wrong type
    gives :class:`ArgumentTypeError`, a value out of range :class:`InvalidOptionError`."""

    expected: Expected


def typed(slot: Slot, value: Any, expected: Expected) -> Case:
    case = Typed((slot, value))
    case.expected = expected
    return case


def expected_error(case: Case) -> Expected:
    """The error class(es) ``case`` must raise: its own where a helper below typed it, else
    any :class:`JacobiteError`."""
    return case.expected if isinstance(case, Typed) else JacobiteError


_TYPE, _VALUE = ArgumentTypeError, InvalidOptionError


# ---- bad values per kind of argument ------------------------------------------------------

def fn(slot: Slot) -> list[Case]:
    """Where a callable belongs: a number, a string, None."""
    return [typed(slot, 3, _TYPE), typed(slot, "sin", _TYPE), typed(slot, None, _TYPE)]


def tensor(slot: Slot, *wrong_shapes: Any, none: bool = True, ints: bool = True,
           nan: bool = True, dtype: torch.dtype = F64) -> list[Case]:
    """Where a floating tensor belongs: a string, None, an object, an integer tensor, a NaN
    tensor, and each of ``wrong_shapes`` (a shape tuple gives a finite tensor of that shape)."""
    out: list[Case] = [(slot, "abc"), (slot, object())]
    if none:
        out.append((slot, None))
    if ints:
        out.append((slot, torch.ones(3, dtype=torch.int64)))
    if nan:
        # a shape check may come first where (3,) is also the wrong shape
        out.append(typed(slot, torch.tensor([0.5, math.nan, 1.0], dtype=dtype),
                         (NonFiniteInputError, ShapeError)))
    for s in wrong_shapes:
        out.append((slot, torch.ones(s, dtype=dtype) if isinstance(s, tuple) else s))
    return out


def posint(slot: Slot, *, huge: bool = False, zero: bool = True) -> list[Case]:
    """An int ≥ 1 option: negative, zero, float, bool, string (and huge where it is checked
    against a size)."""
    out: list[Case] = [typed(slot, -1, _VALUE), typed(slot, 2.5, _TYPE),
                       typed(slot, True, _TYPE), typed(slot, "3", _TYPE)]
    if zero:
        out.append(typed(slot, 0, _VALUE))
    if huge:
        out.append(typed(slot, 10**12, _VALUE))
    return out


def tol(slot: Slot, *, negative: bool = True, named: bool = False) -> list[Case]:
    """A tolerance or budget: NaN, inf, negative, a string (an unknown option where ``named``:
    the argument also takes a string such as ``'present'``, else a wrong type)."""
    out: list[Case] = [typed(slot, math.nan, _VALUE), typed(slot, math.inf, _VALUE),
                       typed(slot, "1e-8", _VALUE if named else _TYPE)]
    if negative:
        out.append(typed(slot, -1.0, _VALUE))
    return out


def choice(slot: Slot) -> list[Case]:
    """A mode-like string: an unknown one, a number."""
    return [typed(slot, "no-such-option", _VALUE), typed(slot, 7, _VALUE)]


def flag(slot: Slot) -> list[Case]:
    """A boolean flag: a string, an int other than 0/1."""
    return [typed(slot, "yes", _TYPE), typed(slot, 2, _TYPE)]


def seed(slot: Slot) -> list[Case]:
    return [typed(slot, -1, _VALUE), typed(slot, 1.5, _TYPE), typed(slot, "0", _TYPE)]


def chunk(slot: Slot) -> list[Case]:
    return [typed(slot, 0, _VALUE), typed(slot, -2, _VALUE), typed(slot, 1.5, _TYPE),
            typed(slot, "big", _VALUE)]


def budget(slot: Slot) -> list[Case]:
    return [typed(slot, "lots", _VALUE), typed(slot, -1, _VALUE), typed(slot, math.nan, _VALUE)]


def argnums(slot: Slot = "argnums") -> list[Case]:
    return [typed(slot, v, ArgnumsError) for v in (5, "0", (0, 0), 1.0)]
