"""Sparsity patterns of the issues' named problems, shared by the tests and the benchmarks.

The one place these live: ``tests/sparse`` checks colorings on them and
``benchmarks/bench_coloring.py`` times them (it imports this module).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def banded(n: int, half_bandwidth: int) -> sp.csr_array:
    """An n×n band of width 2·half_bandwidth + 1 (half_bandwidth = 1: the 1-D Bratu pattern)."""
    offsets = list(range(-half_bandwidth, half_bandwidth + 1))
    return sp.csr_array(sp.diags_array([1.0] * len(offsets), offsets=offsets, shape=(n, n)))


def tridiagonal(n: int) -> sp.csr_array:
    return banded(n, 1)


def laplacian_periodic(N: int) -> sp.csr_array:
    """5-point stencil on a periodic N×N grid."""
    idx = np.arange(N * N).reshape(N, N)
    rows, cols = [], []
    for dx, dy in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]:
        rows.append(idx.ravel())
        cols.append(np.roll(np.roll(idx, dx, 0), dy, 1).ravel())
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_array((np.ones(len(r), dtype=bool), (r, c)), shape=(N * N, N * N))


def brusselator(N: int) -> sp.csr_array:
    """F_u, F_v depend on u, v at the same point and (their own species) at the 4 neighbours."""
    lap = laplacian_periodic(N)
    eye = sp.eye_array(N * N, dtype=bool)
    return sp.csr_array(sp.block_array([[lap, eye], [eye, lap]]).astype(bool))
