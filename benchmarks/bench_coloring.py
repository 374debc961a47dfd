"""Coloring of sparsity patterns: time at scale, and colors against SciPy's CPR grouping.

Column coloring (``jacobite.sparse.column_coloring``) of a banded pattern at n = 10⁵ (target:
≤ 50 ms for one good order), and the number of colors against SciPy's
``scipy.optimize._numdiff.group_columns`` (CPR grouping, its default random order and the
natural order) on the 1-D Bratu (tridiagonal) and 2-D Brusselator (periodic N×N grid) patterns.
Target: colors ≤ SciPy's groups on every problem, ≤ 10 on the Brusselator.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize._numdiff import group_columns
from tests.problems import banded, brusselator

from jacobite.sparse import bicoloring, column_coloring, lower_bound, row_coloring, star_coloring

from ._common import Section, time_call

TIME_TARGET_S = 0.050


def _once(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run(quick: bool = False) -> Section:
    sec = Section(
        "Coloring: column coloring time and colors vs SciPy's CPR grouping",
        ["problem", "n", "order", "colors", "lower bound", "SciPy groups (random / natural)",
         "coloring (ms)", "SciPy group_columns (ms)"],
    )
    repeats = 3 if quick else 7
    n = 10**5
    timing_ok = []
    for hb in (1, 2):
        P = banded(n, hb)
        for order in ("natural", "largest_first", "best"):
            col = column_coloring(P, order)
            t = time_call(lambda P=P, o=order: column_coloring(P, o), repeats=repeats,
                          min_time=0.02)
            if order != "best":
                timing_ok.append(t)
            ts = time_call(lambda P=P: group_columns(P, order=np.arange(n)), repeats=repeats,
                           min_time=0.02)
            g_rand = int(group_columns(P).max()) + 1
            g_nat = int(group_columns(P, order=np.arange(n)).max()) + 1
            sec.rows.append([f"banded (half-bandwidth {hb})", n, order, col.num_colors,
                             lower_bound(P), f"{g_rand} / {g_nat}", t * 1e3, ts * 1e3])
    problems = [("Bratu 1-D (tridiagonal)", banded(k, 1)) for k in
                ((10**4, 10**5) if quick else (10**4, 10**5, 10**6))]
    problems += [(f"Brusselator 2-D, N = {N}", brusselator(N)) for N in
                 ((40, 160) if quick else (40, 160, 640))]
    worse = []
    for name, P in problems:
        col, t = _once(lambda P=P: column_coloring(P))
        g, ts = _once(lambda P=P: group_columns(P))
        g_rand = int(g.max()) + 1
        g_nat = int(group_columns(P, order=np.arange(P.shape[1])).max()) + 1
        if col.num_colors > min(g_rand, g_nat):
            worse.append(name)
        sec.rows.append([name, P.shape[1], f"best → {col.order}", col.num_colors,
                         lower_bound(P), f"{g_rand} / {g_nat}", t * 1e3, ts * 1e3])
    n_arrow = 10**4 if quick else 10**5
    A = sp.lil_array(sp.eye_array(n_arrow, dtype=bool))
    A[0, :] = True
    A[:, 0] = True
    A = sp.csr_array(A)
    bi, t = _once(lambda: bicoloring(A))
    g_nat = int(group_columns(A, order=np.arange(n_arrow)).max()) + 1
    sec.rows.append(["arrowhead, bicoloring (forward + reverse)", n_arrow,
                     f"{bi.num_column_colors} fwd + {bi.num_row_colors} rev", bi.num_colors,
                     f"column {column_coloring(A).num_colors}, row {row_coloring(A).num_colors}",
                     f"- / {g_nat}", t * 1e3, "-"])
    for N in (40,) if quick else (40, 160):
        H = brusselator(N)
        H = sp.csr_array(H + H.T)
        st, t = _once(lambda H=H: star_coloring(H))
        sec.rows.append([f"Brusselator N = {N} symmetrised, star coloring (Hessian)", H.shape[1],
                         f"best → {st.order}", st.num_colors,
                         f"distance-2: {column_coloring(H).num_colors}",
                         f"{int(group_columns(H).max()) + 1} / -", t * 1e3, "-"])
    fastest = min(timing_ok)
    brus = [r[3] for r in sec.rows if str(r[0]).startswith("Brusselator 2-D")]
    sec.notes += [
        f"Banded n = 10⁵, one good order: {fastest * 1e3:.1f} ms (target ≤ "
        f"{TIME_TARGET_S * 1e3:.0f} ms): {'met' if fastest <= TIME_TARGET_S else '**not met**'}."
        " Times are medians of repeated calls and include pattern canonicalisation and the "
        "decompression index map.",
        "Colors ≤ SciPy's CPR groups on every problem: "
        + ("met." if not worse else f"**not met** on {', '.join(worse)}."),
        f"Brusselator colors {brus} (target ≤ 10, lower bound 6; 5 divides N so 10 is "
        "reachable): " + ("met." if max(brus) <= 10 else "**not met**.")
        + " The greedy orders give 11-12; iterated greedy (recoloring with the color classes "
        "reordered) brings them to 10.",
        "Problem rows time one call of order='best' (which stops at the lower bound and skips "
        "the Python-loop dynamic orders above 3·10⁵ conflict edges) against one call of SciPy's "
        "group_columns (random order, its default).",
    ]
    return sec


if __name__ == "__main__":
    print(run(quick=True).to_markdown())
