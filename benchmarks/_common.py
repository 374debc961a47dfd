"""Shared helpers for the benchmarks: robust timing (median of repeats) and markdown tables.

Every benchmark module ``bench_*.py`` defines ``run(quick: bool = False) -> Section``; the runner
``python -m benchmarks.run`` collects the sections into BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Section:
    """One benchmark's result: a title, a markdown table, and notes (targets met or missed)."""

    title: str
    headers: list[str]
    rows: list[list[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        out = [f"## {self.title}", ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        for row in self.rows:
            out.append("| " + " | ".join(_fmt(c) for c in row) + " |")
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        out.append("")
        return "\n".join(out)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c == 0:
            return "0"
        if abs(c) >= 1e4 or abs(c) < 1e-3:
            return f"{c:.2e}"
        return f"{c:.3g}"
    return str(c)


def time_call(fn: Callable[[], object], *, repeats: int = 7, min_time: float = 0.05,
              warmup: int = 1) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` samples.

    Each sample loops ``fn`` enough times to last ``min_time`` seconds, so short calls are
    not dominated by timer resolution.
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(min_time / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - t0) / loops)
    return statistics.median(samples)


def time_pair(a: Callable[[], object], b: Callable[[], object], *, repeats: int = 7,
              min_time: float = 0.05) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, sampled interleaved so machine noise hits both alike."""
    for f in (a, b):
        f()
    t0 = time.perf_counter()
    a()
    b()
    one = max(time.perf_counter() - t0, 1e-7) / 2
    loops = max(1, int(min_time / one))
    sa: list[float] = []
    sb: list[float] = []
    for _ in range(repeats):
        for f, s in ((a, sa), (b, sb)):
            t0 = time.perf_counter()
            for _ in range(loops):
                f()
            s.append((time.perf_counter() - t0) / loops)
    return statistics.median(sa), statistics.median(sb)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def timed(call: Callable[[], T], repeats: int, clock: Callable[[], float]) -> tuple[float, T]:
    """``(median seconds, last result)`` of ``repeats`` calls of ``call`` (at least one), one
    call per sample, timed with ``clock`` (e.g. ``bench_clock()``): for calls long enough that
    the timer's resolution does not matter.

    >>> timed(lambda: 2 + 2, 3, time.perf_counter)[1]
    4
    """
    times: list[float] = []
    for _ in range(max(repeats, 1)):
        t0 = clock()
        out = call()
        times.append(clock() - t0)
    return statistics.median(times), out


class _Timeout(Exception):
    pass


def capped(call: Callable[[], Any], cap: float) -> tuple[float, Any]:
    """``(seconds, call())``, or ``(seconds, None)`` when it ran past ``cap`` seconds of wall
    time (SIGALRM, checked between Python steps; the main thread only)."""

    def on_alarm(*_: object) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, cap)
    t0 = time.perf_counter()
    try:
        out = call()
        return time.perf_counter() - t0, out
    except _Timeout:
        return time.perf_counter() - t0, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def have(module: str) -> bool:
    """Whether an optional peer is importable (without importing it)."""
    return importlib.util.find_spec(module) is not None


def met(ok: bool) -> str:
    """A target's verdict as the tables write it."""
    return "met" if ok else "**missed**"

