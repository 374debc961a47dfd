"""How a sparse plan evaluates: the candidate colorings for a mode, and the fastest strategy.

``mode="auto"`` keeps every one-sided coloring with the fewest passes (forward and reverse tie on
structurally symmetric patterns), and a bicoloring when both sides need more than
:data:`BICOLOR_ABOVE` passes and it needs fewer. Among the remaining strategies (forward JVPs in
one ``vmap``; reverse VJPs through the autograd engine or in one ``vmap``) :func:`fastest` keeps
the one that evaluates fastest at the preparation point: which wins depends on f and n (on
torch 2.13 the engine loop wins for small, overhead-bound problems and the vmaps for large ones;
see BENCHMARKS.md), and every strategy gives the same exact Jacobian.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch

from .. import _validate
from ..errors import ShapeError
from ._inputs import as_matrix
from .coloring import (
    Bicoloring,
    Coloring,
    OrderChoice,
    bicoloring,
    column_coloring,
    lower_bound,
    row_coloring,
)

#: How a sparse Jacobian is compressed: column colors (forward), row colors (reverse), both
#: (bidirectional), or whichever needs the fewest passes (auto).
SparseMode = Literal["auto", "forward", "reverse", "bidirectional"]
MODES: tuple[SparseMode, ...] = ("auto", "forward", "reverse", "bidirectional")
#: ``mode="auto"`` tries a bicoloring only when both one-sided colorings need more passes.
BICOLOR_ABOVE = 16


def symmetric(p: sp.csr_array) -> bool:
    """Structurally symmetric (then rows and columns color alike)."""
    return p.shape[0] == p.shape[1] and (p != p.T).nnz == 0


def candidates(p: sp.csr_array, mode: SparseMode, order: OrderChoice,
               ) -> list[tuple[Coloring | Bicoloring, str]]:
    """``(coloring, mode)`` pairs worth evaluating; all with the fewest passes for ``mode``."""
    _validate.choice(mode, "mode", MODES)
    if mode == "reverse":
        return [(row_coloring(p, order), "reverse")]
    if mode == "bidirectional":
        return [(bicoloring(p, order), "bidirectional")]
    col = column_coloring(p, order)
    if mode == "forward":
        return [(col, "forward")]
    row: Coloring | None = None
    if symmetric(p):  # rows color exactly like columns
        rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
        row = Coloring(col.colors, col.num_colors, col.order, "row", p,
                       col.colors[rows] * p.shape[1] + p.indices)
    elif col.num_colors > 1 and (p.shape[0] < p.shape[1] or col.num_colors > lower_bound(p)):
        row = row_coloring(p, order)
    found: list[tuple[Coloring | Bicoloring, str]] = [(col, "forward")]
    if row is not None and row.num_colors < col.num_colors:
        found = [(row, "reverse")]
    elif row is not None and row.num_colors == col.num_colors:
        found = [(row, "reverse"), (col, "forward")]  # reverse first: the untimed default
    best = found[0][0].num_colors
    if best > BICOLOR_ABOVE:
        bi = bicoloring(p, order)
        if bi.num_colors < best:
            found = [(bi, "bidirectional")]
    return found


def as_bool_csr(pattern: Any, m: int | None, n: int) -> sp.csr_array:
    """A user's or detection's pattern as a canonical CSR bool matrix of the right shape."""
    mat = as_matrix(pattern)
    mat = sp.csr_array(mat if sp.issparse(mat) else mat != 0, dtype=bool)
    mat.eliminate_zeros()
    mat.sum_duplicates()
    mat.sort_indices()
    if mat.shape[1] != n or (m is not None and mat.shape[0] != m):
        raise ShapeError(f"the given pattern has shape {mat.shape}, expected "
                         f"({'m' if m is None else m}, {n}) for this x; pass the pattern of "
                         "the flattened output against x.reshape(-1), or pattern=None to "
                         "detect it")
    return mat


def fastest(plans: Sequence[Any], run: Callable[[Any], object], repeats: int = 2) -> Any:
    """The plan whose ``run(plan)`` is fastest (best of ``repeats`` after one warm-up).

    A strategy that fails (e.g. an op ``vmap`` does not support) is dropped; when all fail the
    first failure is raised. A vectorised plan whose values differ from those of its loop over
    the autograd engine (same coloring) is dropped too: some of torch's batching rules are
    wrong (``cdist``'s backward under ``vmap``), and the engine is the reference.
    """
    if len(plans) == 1:
        return plans[0]
    timed: list[tuple[float, Any]] = []
    values: dict[int, object] = {}
    first_error: Exception | None = None
    for plan in plans:
        try:
            run(plan)
            t = np.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                values[id(plan)] = run(plan)
                t = min(t, time.perf_counter() - t0)
        except Exception as exc:
            first_error = first_error or exc
            continue
        timed.append((t, plan))
    if not timed:
        assert first_error is not None
        raise first_error
    ranked = [p for _, p in sorted(timed, key=lambda tp: tp[0])]
    for plan in ranked:
        loop = next((q for q in ranked if q is not plan and q.coloring is plan.coloring
                     and not q.vectorize), None) if getattr(plan, "vectorize", False) else None
        if loop is None or _agree(values[id(plan)], values[id(loop)]):
            return plan
    return ranked[0]  # pragma: no cover - the loop itself is always kept


def _agree(a: Any, b: Any) -> bool:
    """Two sparse results with the same values (to round-off; NaN where NaN)."""
    va, vb = a.to_torch().values(), b.to_torch().values()
    return bool(torch.allclose(va, vb, rtol=1e-6, atol=1e-12, equal_nan=True)) \
        if va.shape == vb.shape else False
