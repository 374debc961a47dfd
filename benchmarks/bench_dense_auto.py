"""Does ``mode="auto"`` pick the faster of forward and reverse mode?

Over a grid of shapes (n inputs, m outputs) a dense nonlinear map, the tanh MLP
``x -> tanh(W2 tanh(W1 x))`` with a hidden width of 64, is differentiated with ``mode="auto"``,
``"forward"`` and ``"reverse"``, timed interleaved in one process. A shape passes when auto is
within 10% of the better fixed mode; target: at least 90% of the shapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

import jacobite

from ._common import Section, median
from .bench_dense_overhead import clock_note, time_interleaved

TOLERANCE = 1.10
TARGET_SHARE = 0.90
HIDDEN = 64


def _mlp(n: int, m: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(HIDDEN, n, generator=g) / n**0.5
    W2 = torch.randn(m, HIDDEN, generator=g) / HIDDEN**0.5

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(W2 @ torch.tanh(W1 @ x))

    return f


def run(quick: bool = False) -> Section:
    sizes = (4, 64) if quick else (1, 4, 16, 64, 256, 1024)
    repeats, min_time = (3, 0.002) if quick else (15, 0.01)
    sec = Section(
        "Auto mode: mode='auto' vs the better of 'forward' and 'reverse'",
        ["n", "m", "auto picks", "auto (ms)", "forward (ms)", "reverse (ms)", "faster fixed",
         "auto / best", "within 10%"],
    )
    ok = 0
    misses: list[str] = []
    for k, (n, m) in enumerate(itertools.product(sizes, sizes)):
        f = _mlp(n, m, seed=k)
        x = torch.randn(n, generator=torch.Generator().manual_seed(1000 + k))
        picked = jacobite.jacobian_plan(f, x).mode
        sa, sf, sr = time_interleaved(
            [lambda f=f, x=x, md=md: jacobite.jacobian(f, x, mode=md)
             for md in ("auto", "forward", "reverse")],
            repeats=repeats, min_time=min_time)
        ta, tf, tr = median(sa), median(sf), median(sr)
        # auto against the faster fixed mode (chosen on the medians), compared within each round
        r = median([a / (f_ if tf < tr else r_) for a, f_, r_ in zip(sa, sf, sr, strict=True)])
        good = r <= TOLERANCE
        ok += good
        if not good:
            misses.append(f"{n}→{m}")
        sec.rows.append([n, m, picked, ta * 1e3, tf * 1e3, tr * 1e3,
                         "forward" if tf < tr else "reverse", r, "yes" if good else "**no**"])
    total = len(sec.rows)
    share = ok / total
    sec.notes += [
        f"Function: tanh MLP n → {HIDDEN} → m (float32), jacobite defaults otherwise. "
        f"Auto is within 10% of the better fixed mode on {ok}/{total} shapes ({share:.0%}); "
        f"target ≥ {TARGET_SHARE:.0%}: {'met' if share >= TARGET_SHARE else '**not met**'}."
        + (f" Misses: {', '.join(misses)}." if misses else ""),
        "auto / best = median over rounds of auto's time over the faster fixed mode's time in "
        "the same round (all three timed back to back, order flipping each round). Auto's rule "
        "is forward when 2n + 64 < m, else reverse; when it picks the faster mode it runs the same "
        "computation, so 'auto / best' then differs from 1 only by noise.",
        clock_note(),
    ]
    return sec


if __name__ == "__main__":
    print(run().to_markdown())
