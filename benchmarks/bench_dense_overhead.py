"""Overhead of ``jacobite.jacobian`` over the ``torch.func`` transform it is built on.

Each row times ``jacobite.jacobian(f, x, mode=...)`` (default ``chunk_size="auto"``, so the
memory planner runs) against ``torch.func.jacrev(f)(x)`` (reverse) or ``torch.func.jacfwd(f)(x)``
(forward) on the same function and input, interleaved in one process. jacobite's one-time probe of
``f`` is cached per function and input signature; ``time_pair`` makes a warm-up call of each side
first, so the probe is not in the timings. Target: ratio <= 1.05.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch.func import jacfwd, jacrev

import jacobite

from ._common import Section, median

TARGET = 1.05


def bench_clock() -> Callable[[], float]:
    """The clock the dense benchmarks time with.

    Single-threaded (the runner's default), the process CPU time: it leaves out the time the
    process waits for a core that another process holds, the main noise on a shared machine,
    and with one compute thread it equals the work done. Multi-threaded, wall time (idle OpenMP
    threads spin, so CPU time would overstate the work).
    """
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def clock_note() -> str:
    if bench_clock() is time.process_time:
        return ("Times are process CPU time (single-threaded run): time spent waiting for a core "
                "held by another process is left out.")
    return "Times are wall-clock time."


def time_interleaved(fns: Sequence[Callable[[], object]], *, repeats: int = 15,
                     min_time: float = 0.01, clock: Callable[[], float] | None = None
                     ) -> list[list[float]]:
    """Per-round seconds per call of each of ``fns``, sampled round-robin.

    One warm-up call each; then ``repeats`` rounds, each timing every function (a loop lasting
    about ``min_time``) back to back, in an order that flips every round. Comparing functions
    within a round, then taking the median over rounds, cancels most of a shared machine's noise.
    ``clock`` defaults to :func:`bench_clock`.
    """
    clock = clock or bench_clock()
    for f in fns:
        f()
    t0 = time.perf_counter()
    for f in fns:
        f()
    loops = max(1, int(min_time / max((time.perf_counter() - t0) / len(fns), 1e-7)))
    samples: list[list[float]] = [[] for _ in fns]
    k = len(fns)
    for r in range(repeats):
        for i in range(k) if r % 2 == 0 else reversed(range(k)):
            t0 = clock()
            for _ in range(loops):
                fns[i]()
            samples[i].append((clock() - t0) / loops)
    return samples


def time_ratio(a: Callable[[], object], b: Callable[[], object], *, repeats: int = 15,
               min_time: float = 0.02, clock: Callable[[], float] | None = None
               ) -> tuple[float, float, float]:
    """Median seconds of ``a`` and ``b`` and the median of their per-round ratio.

    A paired variant of ``time_pair``: a burst of load from another process hits both samples
    of a round, so the median of the per-round ratios is steadier than the ratio of medians.
    """
    sa, sb = time_interleaved([a, b], repeats=repeats, min_time=min_time, clock=clock)
    return median(sa), median(sb), median([x / y for x, y in zip(sa, sb, strict=True)])


Case = tuple[str, Callable[[torch.Tensor], torch.Tensor], torch.Tensor]
Peer = Callable[[Callable[[torch.Tensor], torch.Tensor]], Callable[[torch.Tensor], torch.Tensor]]
MODES: tuple[tuple[Literal["reverse", "forward"], Peer], ...] = (
    ("reverse", jacrev), ("forward", jacfwd))


def _cases(dtype: torch.dtype, quick: bool) -> list[Case]:
    g = torch.Generator().manual_seed(0)

    def rnd(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    W1, b1 = rnd(256, 100, scale=0.1), rnd(256)
    W2, b2 = rnd(256, 256, scale=1 / 16), rnd(256)
    W3, b3 = rnd(50, 256, scale=1 / 16), rnd(50)
    A = rnd(200, 200, scale=1 / 200**0.5)
    B = rnd(2000, 5)

    def mlp(x: torch.Tensor) -> torch.Tensor:
        return W3 @ torch.tanh(W2 @ torch.tanh(W1 @ x + b1) + b2) + b3

    def matrix_map(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(A @ x)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return (torch.sin(x) ** 2).sum() + 0.5 * (x * x).mean()

    def wide(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(B @ x)

    cases: list[Case] = [
        ("elementwise sin, n=m=10", torch.sin, rnd(10)),
        ("MLP 100→256→256→50 tanh", mlp, rnd(100)),
    ]
    if not quick:
        cases += [
            ("elementwise sin, n=m=1000", torch.sin, rnd(1000)),
            ("matrix map tanh(Ax), 200→200", matrix_map, rnd(200)),
            ("scalar loss, n=1000 → m=1", loss, rnd(1000)),
            ("forward-heavy tanh(Bx), n=5 → m=2000", wide, rnd(5)),
        ]
    return cases


def run(quick: bool = False) -> Section:
    sec = Section(
        "Dense overhead: jacobite.jacobian vs torch.func.jacrev / jacfwd",
        ["function", "dtype", "mode", "chunks", "jacobite (ms)", "torch.func (ms)",
         "extra (µs)", "ratio", "≤ 1.05"],
    )
    repeats, min_time = (3, 0.005) if quick else (21, 0.02)
    dtypes = (torch.float32,) if quick else (torch.float32, torch.float64)
    ratios: list[float] = []
    for dtype in dtypes:
        for name, f, x in _cases(dtype, quick):
            for mode, peer in MODES:
                plan = jacobite.jacobian_plan(f, x, mode=mode)
                ours = lambda f=f, x=x, mode=mode: jacobite.jacobian(f, x, mode=mode)  # noqa: E731
                theirs = lambda f=f, x=x, peer=peer: peer(f)(x)  # noqa: E731
                assert torch.allclose(ours(), theirs(), rtol=1e-4, atol=1e-5)
                ta, tb, r = time_ratio(ours, theirs, repeats=repeats, min_time=min_time)
                ratios.append(r)
                sec.rows.append([name, str(dtype).removeprefix("torch."), mode, plan.num_chunks,
                                 ta * 1e3, tb * 1e3, f"{(ta - tb) * 1e6:.0f}", r,
                                 "yes" if r <= TARGET else "**no**"])
    met = sum(r <= TARGET for r in ratios)
    sec.notes += [
        f"Target ratio ≤ {TARGET} (at most 5% overhead): met on {met}/{len(ratios)} rows; "
        f"median ratio {median(ratios):.3f}, worst {max(ratios):.3f}.",
        "jacobite runs with its defaults (chunk_size='auto', check_finite=True): the per-call "
        "cost of validating the input, looking up the cached probe and planning the chunk size is "
        "included; the one-time probe is not (both sides get a warm-up call).",
        "ratio = median over rounds of (jacobite / torch.func), each round timing both sides "
        "back to back in alternating order (`time_ratio`, a paired variant of `time_pair`); "
        "extra = difference of the median times. On a shared machine, rows under ~1 ms move by "
        "several percent from run to run.",
        clock_note(),
    ]
    return sec


if __name__ == "__main__":
    print(run().to_markdown())
