"""Graph coloring of sparsity patterns: compress a sparse Jacobian into a few products.

Column coloring (forward mode) is a partial distance-2 coloring of the columns: columns that
share a nonzero row get different colors, so ``B = J @ S`` with the 0/1 seed matrix ``S`` holds
every nonzero of ``J`` exactly once. Row coloring (reverse mode) is the same on ``J.T``.
:func:`bicoloring` mixes both for patterns with dense rows and dense columns, and
:func:`star_coloring` compresses symmetric Hessians. Decompression is one fancy-indexing
operation through index maps computed once.

A pattern is a SciPy sparse matrix (any format; stored entries are the structural nonzeros) or
a dense array (nonzero entries), or anything with ``to_scipy()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from .. import _validate
from ..errors import ShapeError
from ._orders import (
    ORDERS,
    ColumnKernel,
    Order,
    as_pattern,
    conflict_graph,
    count,
    refine,
    relabel,
    seeds,
    star_greedy,
    vertex_order,
)

__all__ = ["Bicoloring", "Coloring", "bicoloring", "column_coloring", "lower_bound",
           "row_coloring", "star_coloring"]

#: ``order=``: one vertex order, the best of all (``"best"``) or of the two fast ones (``"fast"``).
OrderChoice = Order | Literal["best", "fast"]
#: What a :class:`Coloring` colors: columns (forward), rows (reverse) or a symmetric pattern's
#: variables (star, for Hessians).
ColoringKind = Literal["column", "row", "star"]
_CHOICES = (*ORDERS, "best", "fast")
#: ``order="fast"``: the two vectorised orders only (what :func:`jacobite.sparse.prepare` uses:
#: a color saved by the slower orders pays off only over very many evaluations)
FAST_ORDERS: tuple[Order, ...] = ("natural", "largest_first")
_PYTHON_ORDERS: tuple[Order, ...] = ("smallest_last", "incidence_degree", "dynamic_largest_first")
#: ``order="best"`` skips the three dynamic orders (Python heaps, about 1 s per 10⁶ edges)
#: when the column intersection graph has more edges than this; ask for them by name instead.
BEST_EDGE_LIMIT = 300_000
#: ... and every order but "natural" when the conflict graph may exceed this many entries
#: (bounded by the sum of squared row counts; dense rows make it quadratic).
GRAPH_LIMIT = 20_000_000


def _check_order(order: Any, iterations: Any = 0) -> None:
    _validate.choice(order, "order", _CHOICES)
    _validate.nonnegative_int(iterations, "iterations")


def _color_columns(a: sp.csr_array, order: OrderChoice, iterations: int = 0,
                   ) -> tuple[np.ndarray, OrderChoice]:
    """Greedy coloring in each requested order (refined), stopping early at the lower bound."""
    orders = ORDERS if order == "best" else FAST_ORDERS if order == "fast" else (order,)
    row_nnz = np.diff(a.indptr).astype(np.int64)
    lb = int(row_nnz.max()) if a.shape[0] and a.nnz else 0
    if a.shape[1] and lb >= a.shape[1]:  # a full row: every column needs its own color
        return np.arange(a.shape[1], dtype=np.int64), order
    g = None
    big = int(np.square(row_nnz).sum()) > GRAPH_LIMIT  # bound on the conflict graph's size
    cols = ColumnKernel(a)
    best: tuple[np.ndarray, Order] | None = None
    for o in orders:
        if o == "natural":
            seq = np.arange(a.shape[1])
        else:
            if order == "best" and big:
                continue  # the conflict graph alone would cost more than it can save
            g = conflict_graph(a) if g is None else g
            if order == "best" and o in _PYTHON_ORDERS and g.nnz > BEST_EDGE_LIMIT:
                continue  # the Python-loop orders would dominate the cost of "best"
            seq = vertex_order(g.indptr, g.indices, o)
        colors = refine(cols, cols.greedy(seq), iterations, lb)
        if best is None or count(colors) < count(best[0]):
            best = (colors, o)
        if count(best[0]) <= lb:
            break  # optimal: no order can do better
    assert best is not None
    return best


@dataclass(frozen=True)
class Coloring:
    """A column (or row) coloring of a pattern, with the index maps to decompress.

    ``colors[j]`` is the color of column ``j`` (of row ``j`` when ``kind == "row"``; of
    variable ``j`` of a symmetric pattern when ``kind == "star"``, compressed as ``H @ S``).
    Forward: ``B = J @ seed_matrix()`` is m × c. Reverse: ``C = seed_matrix().T @ J`` is c × n.
    """

    colors: np.ndarray
    num_colors: int
    order: OrderChoice
    kind: ColoringKind = "column"
    pattern: sp.csr_array | None = field(default=None, repr=False, compare=False)
    _flat: np.ndarray | None = field(default=None, repr=False, compare=False)

    def seed_matrix(self, dense: bool = False) -> sp.csr_array | np.ndarray:
        """The 0/1 seed (n × c for columns, m × c for rows), sparse CSR or dense."""
        s = seeds(self.colors, self.num_colors)
        return s.toarray() if dense else s

    def compress(self, jac: Any) -> np.ndarray:
        """``J @ S`` (column, star) or ``S.T @ J`` (row) as a dense array: what AD computes."""
        s = self.seed_matrix()
        out = (s.T @ jac) if self.kind == "row" else jac @ s
        return out.toarray() if sp.issparse(out) else np.asarray(out)

    def decompress(self, compressed: Any) -> sp.csr_array:
        """Recover J (CSR, the pattern's nonzeros) from the compressed product.

        >>> import numpy as np
        >>> J = np.array([[1., 2, 0], [0, 3, 4]])
        >>> col = column_coloring(J)
        >>> np.array_equal(col.decompress(col.compress(J)).toarray(), J)
        True
        """
        assert self.pattern is not None and self._flat is not None
        b = np.asarray(compressed)
        p = self.pattern
        want = (self.num_colors, p.shape[1]) if self.kind == "row" else (p.shape[0],
                                                                          self.num_colors)
        if b.shape != want:
            raise ShapeError(f"compressed product has shape {b.shape}, expected {want}; "
                             "pass J @ S (column) or S.T @ J (row) for this coloring's seed")
        data = b.reshape(-1)[self._flat]
        return sp.csr_array((data, p.indices, p.indptr), shape=p.shape)


def _column_index_map(p: sp.csr_array, colors: np.ndarray, c: int) -> np.ndarray:
    rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))
    return rows * c + colors[p.indices]


def column_coloring(pattern: Any, order: OrderChoice = "best", *, iterations: int = 20) -> Coloring:
    """Partial distance-2 coloring of the columns of an m×n sparsity pattern.

    Columns sharing a nonzero row get different colors. ``order`` is one of ``"natural"``,
    ``"largest_first"``, ``"smallest_last"``, ``"incidence_degree"``,
    ``"dynamic_largest_first"``, ``"best"`` (each, keeping the fewest colors; the dynamic
    ones only up to :data:`BEST_EDGE_LIMIT` conflict edges, and stopping at the lower
    bound) or ``"fast"`` (natural and largest-first only). Each greedy coloring is then
    improved by up to ``iterations`` rounds of iterated greedy (0: none).

    >>> import numpy as np
    >>> column_coloring(np.eye(4) + np.eye(4, k=1) + np.eye(4, k=-1)).num_colors
    3
    """
    _check_order(order, iterations)
    p = as_pattern(pattern)
    colors, used = _color_columns(p, order, iterations)
    c = count(colors)
    return Coloring(colors, c, used, "column", p, _column_index_map(p, colors, c))


def row_coloring(pattern: Any, order: OrderChoice = "best", *, iterations: int = 20) -> Coloring:
    """Coloring of the rows (reverse mode): the column coloring of the transpose.

    >>> import numpy as np
    >>> J = np.ones((2, 5))
    >>> row_coloring(J).num_colors, column_coloring(J).num_colors
    (2, 5)
    """
    _check_order(order, iterations)
    p = as_pattern(pattern)
    colors, used = _color_columns(sp.csr_array(p.T), order, iterations)
    c = count(colors)
    cols = p.indices
    flat = colors[np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))] * p.shape[1] + cols
    return Coloring(colors, c, used, "row", p, flat)


def lower_bound(pattern: Any) -> int:
    """The largest number of nonzeros in a row: no column coloring uses fewer colors.

    >>> import numpy as np
    >>> lower_bound(np.array([[1, 1, 0], [0, 1, 0]]))
    2
    """
    p = as_pattern(pattern)
    return int(np.diff(p.indptr).max()) if p.shape[0] else 0


@dataclass(frozen=True)
class Bicoloring:
    """Forward and reverse passes together: ``B = J @ S`` and ``C = W.T @ J``.

    ``column_colors[j]`` is column j's color in ``S`` (-1: not seeded) and ``row_colors[i]``
    row i's color in ``W`` (-1: row read from the forward product). ``num_colors`` is the
    total number of passes, ``num_column_colors + num_row_colors``.
    """

    column_colors: np.ndarray
    row_colors: np.ndarray
    num_column_colors: int
    num_row_colors: int
    pattern: sp.csr_array = field(repr=False, compare=False)
    _flat: np.ndarray = field(repr=False, compare=False)

    @property
    def num_colors(self) -> int:
        return self.num_column_colors + self.num_row_colors

    def seed_matrices(self) -> tuple[sp.csr_array, sp.csr_array]:
        """``(S, W)``: n × c_col forward seeds and m × c_row reverse seeds (CSR)."""
        return (seeds(self.column_colors, self.num_column_colors),
                seeds(self.row_colors, self.num_row_colors))

    def compress(self, jac: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(J @ S, W.T @ J)`` as dense arrays."""
        s, w = self.seed_matrices()
        b, c = (x.toarray() if sp.issparse(x) else np.asarray(x) for x in (jac @ s, w.T @ jac))
        return b, c

    def decompress(self, forward: Any, reverse: Any) -> sp.csr_array:
        """J (CSR) from ``J @ S`` and ``W.T @ J``.

        >>> import numpy as np
        >>> J = np.eye(5) + 0; J[0, :] = 2.0; J[:, 0] = 3.0
        >>> bi = bicoloring(J)
        >>> bi.num_colors, column_coloring(J).num_colors
        (3, 5)
        >>> np.array_equal(bi.decompress(*bi.compress(J)).toarray(), J)
        True
        """
        p = self.pattern
        b, c = np.asarray(forward), np.asarray(reverse)
        wb, wc = (p.shape[0], self.num_column_colors), (self.num_row_colors, p.shape[1])
        if b.shape != wb or c.shape != wc:
            raise ShapeError(f"compressed products have shapes {b.shape} and {c.shape}, "
                             f"expected {wb} and {wc}; pass J @ S and W.T @ J")
        data = np.concatenate([b.reshape(-1), c.reshape(-1)])[self._flat]
        return sp.csr_array((data, p.indices, p.indptr), shape=p.shape)


def _split(p: sp.csr_array, rev: np.ndarray, order: OrderChoice,
           iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rev`` by reverse mode, the others by forward mode; colors (-1 = unused)."""
    m, n = p.shape
    rcol = np.full(m, -1, dtype=np.int64)
    if rev.any():
        rcol[rev] = _color_columns(sp.csr_array(p[rev].T), order, iterations)[0]
    fwd = sp.csr_array(p[~rev])
    ccol = np.zeros(n, dtype=np.int64)
    if fwd.shape[0]:
        ccol = _color_columns(fwd, order, iterations)[0]
    ccol[np.diff(sp.csc_array(fwd).indptr) == 0] = -1
    ccol = relabel(ccol)
    return ccol, relabel(rcol)


def _candidates(nnz: np.ndarray, limit: int = 8) -> list[np.ndarray]:
    """Sets of dense lines to split off: for each of the top distinct counts, those above it."""
    vals = np.unique(nnz)[::-1][:limit]
    return [nnz >= v for v in vals[:-1] if v > 1] if len(vals) > 1 else []


def bicoloring(pattern: Any, order: OrderChoice = "best", *, iterations: int = 20) -> Bicoloring:
    """Forward and reverse coloring together, for patterns with dense rows and dense columns.

    Tries splitting off the densest rows (computed by reverse mode, the rest by column
    coloring) or the densest columns (forward mode, the rest by row coloring), including the
    pure column and pure row colorings, and keeps the fewest total passes. ``order`` and
    ``iterations`` are passed to each column or row coloring.

    >>> import numpy as np
    >>> J = np.eye(6); J[0, :] = 1; J[:, 0] = 1  # arrowhead
    >>> bicoloring(J).num_colors
    3
    """
    _check_order(order, iterations)
    p = as_pattern(pattern)
    m, n = p.shape
    best: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
    row_nnz, col_nnz = np.diff(p.indptr), np.bincount(p.indices, minlength=n)
    trials = [("rows", np.zeros(m, dtype=bool)), ("cols", np.zeros(n, dtype=bool))]
    trials += [("rows", r) for r in _candidates(row_nnz)]
    trials += [("cols", c) for c in _candidates(col_nnz)]
    pt = sp.csr_array(p.T)
    rows = np.repeat(np.arange(m), np.diff(p.indptr))
    cols = p.indices
    def bound(kind: str, sel: np.ndarray) -> int:  # colors of each side cannot be fewer
        q = p if kind == "rows" else pt
        fwd, rev = np.diff(q.indptr)[~sel], np.diff(sp.csc_array(q[sel]).indptr)
        return int(fwd.max(initial=0)) + int(rev.max(initial=0))

    for kind, sel in sorted(trials, key=lambda t: bound(*t)):
        if best is not None and bound(kind, sel) >= best[0]:
            break
        if kind == "rows":  # rows in sel by reverse mode, the rest forward
            ccol, rcol = _split(p, sel, order, iterations)
            from_rev = sel[rows]
        else:  # columns in sel by forward mode, the rest reverse
            rcol, ccol = _split(pt, sel, order, iterations)
            from_rev = ~sel[cols]
        total = count(ccol) + count(rcol)
        if best is None or total < best[0]:
            best = (total, ccol, rcol, from_rev)
    assert best is not None
    _, ccol, rcol, from_rev = best
    kc, kr = count(ccol), count(rcol)
    flat = np.where(from_rev, m * kc + rcol[rows] * n + cols, rows * kc + ccol[cols])
    return Bicoloring(ccol, rcol, kc, kr, p, flat)


def star_coloring(pattern: Any, order: OrderChoice = "best") -> Coloring:
    """Star coloring of a symmetric (Hessian) pattern, with symmetric decompression from H @ S.

    A distance-1 coloring of the adjacency graph in which every path on 4 vertices uses at
    least 3 colors; then each off-diagonal entry is alone in its color in its row or its
    column. The pattern is symmetrised (``P | P.T``) first.

    >>> import numpy as np
    >>> H = np.eye(6) + np.eye(6, k=1) + np.eye(6, k=-1)  # tridiagonal
    >>> st = star_coloring(H)
    >>> st.num_colors, column_coloring(H).num_colors
    (3, 3)
    >>> np.allclose(st.decompress(st.compress(H)).toarray(), H)
    True
    """
    _check_order(order)
    p = as_pattern(pattern)
    if p.shape[0] != p.shape[1]:
        raise ShapeError(f"star coloring needs a square symmetric pattern, got shape {p.shape}; "
                         "use column_coloring for a Jacobian")
    n = p.shape[0]
    p = as_pattern(p + p.T)
    g = sp.csr_array(p, dtype=np.int8, copy=True)
    g.setdiag(0)
    g.eliminate_zeros()
    g.sort_indices()
    best: tuple[np.ndarray, Order] | None = None
    lb = 2 if g.nnz else min(n, 1)  # any edge needs two colors
    for o in ORDERS if order == "best" else FAST_ORDERS if order == "fast" else (order,):
        if order == "best" and o in _PYTHON_ORDERS and g.nnz > BEST_EDGE_LIMIT:
            continue
        colors = star_greedy(g.indptr, g.indices, vertex_order(g.indptr, g.indices, o))
        if best is None or count(colors) < count(best[0]):
            best = (colors, o)
        if count(best[0]) <= lb:
            break
    assert best is not None
    colors, used = best
    c = count(colors)
    rows = np.repeat(np.arange(n), np.diff(p.indptr))
    cols = p.indices
    onehot = sp.csr_array((np.ones(n), (np.arange(n), colors)), shape=(n, c))
    counts = (g @ onehot).toarray() if n else np.zeros((0, c))
    alone = (rows == cols) | (counts[rows, colors[cols]] == 1)
    flat = np.where(alone, rows * c + colors[cols], cols * c + colors[rows])
    return Coloring(colors, c, used, "star", p, flat)


def _greedy_columns(a: sp.csr_array, seq: np.ndarray) -> np.ndarray:
    """Greedy distance-2 coloring of the columns of ``a`` in the order ``seq``."""
    return ColumnKernel(a).greedy(seq)
