"""Library-wide settings: the memory budget that chunked computations stay under.

The budget only changes *how* a result is computed (the chunk size), never the result.

>>> import jacobite
>>> jacobite.config.get_memory_budget() == 2**30
True
>>> with jacobite.config.memory_budget("64 MiB"):
...     jacobite.config.get_memory_budget()
67108864
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Iterator

from .errors import ArgumentTypeError, InvalidOptionError

__all__ = ["format_bytes", "get_memory_budget", "memory_budget", "parse_bytes", "set_memory_budget"]

DEFAULT_MEMORY_BUDGET = 2**30  # 1 GiB

_state = threading.local()
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}


def parse_bytes(value: int | float | str) -> int:
    """Turn ``1024``, ``"512 MiB"`` or ``"2GB"`` into a number of bytes.

    >>> parse_bytes("1.5 KiB")
    1536
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ArgumentTypeError(
            f"a memory size must be a number of bytes or a string like '512 MiB', got {value!r}"
        )
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise InvalidOptionError(
                f"memory size must be a positive, finite number of bytes, got {value}; "
                "write e.g. 2**30 or '1 GiB' (there is no unlimited budget: name a large one)"
            )
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidOptionError(
            f"cannot read memory size {value!r}; write a number of bytes or e.g. '512 MiB', '2 GiB'"
        )
    from fractions import Fraction  # exact for long integer strings, unlike float

    n = int(Fraction(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise InvalidOptionError(f"memory size must be positive, got {value!r}; e.g. '512 MiB'")
    return n


def format_bytes(n: float) -> str:
    """Human-readable size.

    >>> format_bytes(3 * 2**30)
    '3.00 GiB'
    """
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        raise ArgumentTypeError(f"format_bytes takes a number of bytes, got {n!r}; e.g. 1024")
    if not math.isfinite(n) or n < 0:
        raise InvalidOptionError(f"a number of bytes must be finite and ≥ 0, got {n}; e.g. 1024")
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover


def get_memory_budget() -> int:
    """The memory budget in bytes for this thread (default 1 GiB)."""
    return getattr(_state, "budget", DEFAULT_MEMORY_BUDGET)


def set_memory_budget(value: int | float | str) -> None:
    """Set the memory budget for this thread, e.g. ``set_memory_budget("4 GiB")``."""
    _state.budget = parse_bytes(value)


@contextlib.contextmanager
def memory_budget(value: int | float | str) -> Iterator[int]:
    """Temporarily change the memory budget inside a ``with`` block."""
    old = get_memory_budget()
    set_memory_budget(value)
    try:
        yield get_memory_budget()
    finally:
        _state.budget = old
