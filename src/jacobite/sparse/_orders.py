"""Vertex orders and greedy coloring kernels.

A graph is given by ``indptr``/``indices`` (symmetric, no self loops). Static orders are
NumPy sorts; the dynamic ones (smallest-last, incidence-degree, dynamic largest-first) use a
lazy binary heap, O(E log V). Column coloring runs through :class:`ColumnKernel` (compiled CPR
grouping, vectorised column permutation) and :func:`refine` (iterated greedy); the Python-list
kernels (:func:`greedy`, :func:`star_greedy`) are the fallback and the star coloring.
"""

from __future__ import annotations

import heapq
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from ._inputs import as_matrix

#: A greedy coloring's vertex order.
Order = Literal["natural", "largest_first", "smallest_last", "incidence_degree",
                "dynamic_largest_first"]
ORDERS: tuple[Order, ...] = ("natural", "largest_first", "smallest_last", "incidence_degree",
                             "dynamic_largest_first")


def as_pattern(pattern: Any) -> sp.csr_array:
    """The pattern as a canonical boolean CSR array (sorted indices, no duplicates); a sparse
    matrix's stored entries are its structural nonzeros."""
    mat = as_matrix(pattern)
    if sp.issparse(mat):
        a = sp.csr_array(mat, copy=True)
        a.data = np.ones(len(a.data), dtype=bool)
        a.sum_duplicates()
        a.sort_indices()
        return sp.csr_array(a, dtype=bool)
    return sp.csr_array(mat != 0)


def degrees(indptr: np.ndarray) -> np.ndarray:
    return np.diff(indptr)


def vertex_order(indptr: np.ndarray, indices: np.ndarray, order: Order) -> np.ndarray:
    """The vertex sequence for ``order`` (one of :data:`ORDERS`); ties go to the lower index.

    >>> import numpy as np
    >>> ip, ix = np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1])  # path 0 - 1 - 2
    >>> vertex_order(ip, ix, "largest_first").tolist()
    [1, 0, 2]
    """
    n = len(indptr) - 1
    deg = degrees(indptr)
    if order == "natural":
        return np.arange(n)
    if order == "largest_first":
        return np.argsort(-deg, kind="stable")
    ip, ix = indptr.tolist(), indices.tolist()
    if order == "smallest_last":
        return _smallest_last(ip, ix, deg.tolist())
    if order == "incidence_degree":
        return _dynamic(ip, ix, [0] * n, +1)
    if order == "dynamic_largest_first":
        return _dynamic(ip, ix, deg.tolist(), -1)
    raise ValueError(order)  # pragma: no cover - callers validate


def _smallest_last(ip: list[int], ix: list[int], deg: list[int]) -> np.ndarray:
    """Repeatedly remove a vertex of smallest remaining degree; color in reverse removal order."""
    n = len(deg)
    heap = [(d, v) for v, d in enumerate(deg)]
    heapq.heapify(heap)
    removed = [False] * n
    out: list[int] = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, v = pop(heap)
        if removed[v] or d != deg[v]:
            continue
        removed[v] = True
        out.append(v)
        for u in ix[ip[v]:ip[v + 1]]:
            if not removed[u]:
                deg[u] -= 1
                push(heap, (deg[u], u))
    out.reverse()
    return np.asarray(out, dtype=np.int64)


def _dynamic(ip: list[int], ix: list[int], key: list[int], step: int) -> np.ndarray:
    """Pick the vertex of largest ``key`` next; each pick adds ``step`` to its neighbours' keys.

    ``step=+1`` from zero keys is incidence-degree (most already-ordered neighbours);
    ``step=-1`` from the degrees is dynamic largest-first (most not-yet-ordered neighbours).
    """
    n = len(key)
    heap = [(-k, v) for v, k in enumerate(key)]
    heapq.heapify(heap)
    done = [False] * n
    out: list[int] = []
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        k, v = pop(heap)
        if done[v] or -k != key[v]:
            continue
        done[v] = True
        out.append(v)
        for u in ix[ip[v]:ip[v + 1]]:
            if not done[u]:
                key[u] += step
                push(heap, (-key[u], u))
    return np.asarray(out, dtype=np.int64)


def greedy(indptr: np.ndarray, indices: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Give each vertex of ``seq`` in turn the smallest color none of its neighbours has.

    >>> import numpy as np
    >>> greedy(np.array([0, 1, 3, 4]), np.array([1, 0, 2, 1]), np.arange(3)).tolist()
    [0, 1, 0]
    """
    ip, ix = indptr.tolist(), indices.tolist()
    colors = [-1] * (len(ip) - 1)
    for v in seq.tolist():
        forbidden = {colors[u] for u in ix[ip[v]:ip[v + 1]]}
        c = 0
        while c in forbidden:
            c += 1
        colors[v] = c
    return np.asarray(colors, dtype=np.int64)


def count(colors: np.ndarray) -> int:
    return int(colors.max()) + 1 if colors.size else 0


def seeds(colors: np.ndarray, c: int) -> sp.csr_array:
    """The 0/1 seed matrix with a one at (j, colors[j]); vertices colored -1 get none."""
    keep = colors >= 0
    rows = np.flatnonzero(keep)
    return sp.csr_array((np.ones(len(rows)), (rows, colors[keep])), shape=(len(colors), c))


def relabel(colors: np.ndarray) -> np.ndarray:
    """Renumber used colors 0..k-1 (dropping colors only unused vertices had)."""
    out = np.full_like(colors, -1)
    keep = colors >= 0
    out[keep] = np.unique(colors[keep], return_inverse=True)[1]
    return out


def conflict_graph(a: sp.csr_array) -> sp.csr_array:
    """Column intersection graph of ``a``: columns joined when they share a row."""
    ai = sp.csr_array(a, dtype=np.int32, copy=True)
    g = sp.csr_array(ai.T @ ai)
    g.setdiag(0)
    g.eliminate_zeros()
    g.sort_indices()
    return g


class ColumnKernel:
    """The pattern's columns (CSC, int32) ready for repeated greedy colorings in new orders."""

    def __init__(self, a: sp.csr_array) -> None:
        self.a = a
        c = sp.csc_array(a)
        c.sort_indices()
        self.m, self.n = a.shape
        self.indptr = c.indptr.astype(np.int64)
        self.indices = c.indices.astype(np.int32)
        self.lens = np.diff(self.indptr)

    def greedy(self, seq: np.ndarray) -> np.ndarray:
        """Greedy distance-2 coloring of the columns in the sequence ``seq``.

        The greedy first-fit coloring equals CPR grouping in the same order (group k takes
        every remaining column, in order, that fits), which SciPy runs compiled; the
        pure-Python kernel on the conflict graph is the fallback should that helper move.
        """
        try:
            from scipy.optimize._group_columns import group_sparse
        except ImportError:  # pragma: no cover - depends on the SciPy version
            g = conflict_graph(self.a)
            return greedy(g.indptr, g.indices, seq)
        lens = self.lens[seq]
        ptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(lens, out=ptr[1:])
        src = np.repeat(self.indptr[:-1][seq] - ptr[:-1], lens) + np.arange(ptr[-1])
        groups = group_sparse(self.m, self.n, self.indices[src], ptr.astype(np.int32))
        out = np.empty(self.n, dtype=np.int64)
        out[seq] = groups
        return out


def refine(cols: ColumnKernel, colors: np.ndarray, iterations: int, lb: int) -> np.ndarray:
    """Iterated greedy (Culberson): recolor with the color classes kept together, reordered.

    Greedy in any order that lists each class contiguously never uses more colors, so each
    round can only help; the rounds cycle through reversed classes, largest class first, and
    a seeded shuffle of the classes, stopping after ``iterations`` rounds, 5 without gain, or
    at the lower bound ``lb``.
    """
    if colors.size == 0 or iterations <= 0 or count(colors) <= lb:
        return colors
    rng = np.random.default_rng(0)
    best, stall = colors, 0
    for k in range(iterations):
        c = count(colors)
        if k % 3 == 0:
            key = -colors
        elif k % 3 == 1:
            key = -np.bincount(colors)[colors] * (c + 1) + colors
        else:
            key = rng.permutation(c)[colors]
        colors = cols.greedy(np.argsort(key, kind="stable"))
        if count(colors) < count(best):
            best, stall = colors, 0
            if count(best) <= lb:
                break
        else:
            stall += 1
            if stall >= 5:
                break
    return best


def star_greedy(indptr: np.ndarray, indices: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Greedy star coloring: a distance-1 coloring with no two-colored path on 4 vertices.

    For each vertex v (in ``seq``) the forbidden colors are those of its colored neighbours,
    and those that would close a two-colored path: v-w-x-y with color(y) = color(w) (v at an
    end: color(x) is forbidden) or w-v-x-y with color(w) = color(x) (v inside: color(y) is
    forbidden). ``cnt[x][c]`` counts x's colored neighbours of color c, and ``ends[w]`` holds
    the colors of the colored x next to w that have another neighbour of w's color, kept up to
    date as vertices are colored, so a vertex costs O(degree × colors), not O(degree²).

    >>> import numpy as np
    >>> ip, ix = np.array([0, 1, 3, 5, 6]), np.array([1, 0, 2, 1, 3, 2])  # path 0-1-2-3
    >>> star_greedy(ip, ix, np.arange(4)).tolist()
    [0, 1, 0, 2]
    """
    ip, ix = indptr.tolist(), indices.tolist()
    n = len(ip) - 1
    colors = [-1] * n
    cnt: list[dict[int, int]] = [{} for _ in range(n)]
    ends: list[set[int]] = [set() for _ in range(n)]
    for v in seq.tolist():
        nbrs = ix[ip[v]:ip[v + 1]]
        nb = [w for w in nbrs if colors[w] >= 0]
        forbidden = {colors[w] for w in nb}
        seen: dict[int, int] = {}
        for w in nb:
            forbidden |= ends[w]  # v at an end: v - w - x - y
            seen[colors[w]] = seen.get(colors[w], 0) + 1
        for x in nb:  # v inside: w - v - x - y with color(w) = color(x)
            if seen[colors[x]] > 1:
                forbidden.update(cnt[x])
        c = 0
        while c in forbidden:
            c += 1
        colors[v] = c
        for u in nbrs:
            k = cnt[u].get(c, 0) + 1
            cnt[u][c] = k
            if k == 2 and colors[u] >= 0:  # u now has two neighbours of color c
                for w in ix[ip[u]:ip[u + 1]]:
                    if colors[w] == c:
                        ends[w].add(colors[u])
        ends[v].update(colors[x] for x in nb if cnt[x][c] > 1)
        for w in nb:
            if cnt[v].get(colors[w], 0) > 1:
                ends[w].add(c)
    return np.asarray(colors, dtype=np.int64)
