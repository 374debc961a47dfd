"""The issues' named sparse problems (residuals in torch and their patterns), shared by the
tests and the benchmarks.

The one place these live: ``tests/sparse`` checks detection, colorings and evaluation on them;
``benchmarks/bench_coloring.py`` and ``benchmarks/bench_sparse.py`` time them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

_F = torch.nn.functional

#: the issue's Brusselator constants
BRUSSELATOR_A, BRUSSELATOR_B, BRUSSELATOR_ALPHA = 3.4, 1.0, 10.0


def bratu1d(u: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """F_i = (u_{i-1} - 2u_i + u_{i+1})(n + 1)² + λ e^{u_i}, with u_0 = u_{n+1} = 0."""
    n = u.shape[-1]
    up = _F.pad(u, (1, 1))
    return (up[:-2] - 2 * u + up[2:]) * (n + 1) ** 2 + lam * torch.exp(u)


def _laplacian2d(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Δu, u)`` on the unit square's N×N interior grid (zero boundary, h = 1/(N + 1)),
    5-point stencil, both N×N; ``u`` holds the N² unknowns row by row."""
    N = round(u.numel() ** 0.5)
    h = 1.0 / (N + 1)
    z = _F.pad(u.reshape(N, N), (1, 1, 1, 1))
    lap = (z[2:, 1:-1] + z[:-2, 1:-1] + z[1:-1, 2:] + z[1:-1, :-2] - 4 * z[1:-1, 1:-1]) / h**2
    return lap, z[1:-1, 1:-1]


def bratu2d(u: torch.Tensor, lam: float = 6.0) -> torch.Tensor:
    """−Δu − λ e^u on the unit square's N×N interior grid (zero boundary), row by row."""
    lap, grid = _laplacian2d(u)
    return (-lap - lam * torch.exp(grid)).reshape(-1)


def cubic_poisson2d(u: torch.Tensor, source: float = 10.0) -> torch.Tensor:
    """−Δu + u³ − source on the unit square's N×N interior grid (zero boundary), row by row."""
    lap, grid = _laplacian2d(u)
    return (-lap + grid**3 - source).reshape(-1)


def laplacian_5pt(N: int) -> sp.csr_array:
    """The 5-point stencil on an N×N grid with zero (Dirichlet) boundary: the 2-D Bratu
    pattern."""
    T = sp.diags_array([1.0, 1.0, 1.0], offsets=[-1, 0, 1], shape=(N, N))
    eye = sp.eye_array(N)
    return sp.csr_array((sp.kron(T, eye) + sp.kron(eye, T)).astype(bool))


def brusselator2d(w: torch.Tensor) -> torch.Tensor:
    """The 2-D Brusselator on a periodic N×N grid; ``w`` holds u then v (2N² values)."""
    N = round((w.numel() // 2) ** 0.5)
    u, v = w.reshape(2, N, N)
    a, b, alpha = BRUSSELATOR_A, BRUSSELATOR_B, BRUSSELATOR_ALPHA

    def lap(z: torch.Tensor) -> torch.Tensor:
        return (z.roll(1, 0) + z.roll(-1, 0) + z.roll(1, 1) + z.roll(-1, 1) - 4 * z) * N**2

    uuv = u * u * v
    fu = b + uuv - (a + 1) * u + alpha * lap(u)
    fv = a * u - uuv + alpha * lap(v)
    return torch.cat([fu.reshape(-1), fv.reshape(-1)])


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


# ---- the sparsity fuzzer's vocabulary: programs of supported ops on a 4×3 register ----------
# (run under float64 as the default dtype: the constants below are built when called)
def _inplace_shift(a: torch.Tensor) -> torch.Tensor:
    b = a.clone()
    b[1:3] = b[0:2] * 2
    b.t()[1].mul_(a[3, 0])
    return b


def _inplace_columns(a: torch.Tensor) -> torch.Tensor:
    b = torch.zeros(4, 3)
    b[:, 0] = a[:, 2]
    b[2].add_(a[0])
    b[1:, 1:].copy_(a[:3, :2].exp())
    return b


_W = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 3.0, 0.0], [1.0, 0.0, 1.0]],
                  dtype=torch.float64)
UNARY = [
    torch.sin, torch.exp, torch.tanh, torch.sigmoid, lambda a: a * a, lambda a: -a,
    lambda a: torch.roll(a, 1, 0), lambda a: torch.flip(a, [1]), lambda a: a.t().reshape(a.shape),
    lambda a: torch.softmax(a, 1), lambda a: torch.cumsum(a, 0),
    lambda a: a.sum(1, keepdim=True) * a, lambda a: a * torch.tensor([0.0, 1.0, 0.0]),
    lambda a: a[torch.tensor([2, 0, 1, 3])], lambda a: a @ torch.eye(3)[[0, 2, 1]],
    lambda a: torch.cat([a[1:], a[:1] * 0.5]), lambda a: a.amax(0, keepdim=True) + a,
    lambda a: torch.where(a > 0.3, a, a.cos()), lambda a: a.clamp(-0.2, 0.8),
    lambda a: _F.pad(a[:, 1:], (1, 0)), lambda a: a.reshape(3, 4).t(),
    lambda a: torch.log_softmax(a, 0), lambda a: _W @ a[:3, :3],
    lambda a: torch.gather(a, 1, torch.tensor([[0, 0, 2]] * 4)), lambda a: a.prod(0) + a,
    lambda a: _F.conv1d(a.unsqueeze(1), torch.tensor([[[1.0, 0.0, -1.0]]]),
                                         padding=1),
    lambda a: _F.conv2d(a.reshape(1, 1, 4, 3), torch.ones(2, 1, 2, 2)),
    lambda a: torch.sort(a, 1)[0], lambda a: torch.topk(a, 2, 0)[0],
    lambda a: torch.zeros(4, 3).scatter_add(0, torch.tensor([[0, 1, 1], [0, 0, 3]]), a[:2]),
    lambda a: torch.zeros(3, 3).index_put((torch.tensor([2, 0, 2]),), a[1:]),
    lambda a: a.index_put((torch.tensor([1, 1]), torch.tensor([0, 2])), a[0, :2], accumulate=True),
    lambda a: _F.pad(a.unsqueeze(0), (1, 1), mode="reflect"),
    lambda a: a.reshape(2, 6).logsumexp(1, keepdim=True) - a.reshape(2, 6),
    lambda a: torch.maximum(a, a.flip(0)), lambda a: a.t() @ a, lambda a: a.reshape(-1)[3:9],
    lambda a: torch.linalg.vector_norm(a, dim=0, keepdim=True) + a.var(1, keepdim=True),
    lambda a: _F.avg_pool1d(a.t().unsqueeze(0), 2, 1), lambda a: _F.max_pool1d(a.unsqueeze(0), 2),
    lambda a: _F.layer_norm(a, (3,)), _inplace_shift, _inplace_columns,
]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a / (1 + b * b),
          lambda a, b: torch.stack([a, b]).sum(0), lambda a, b: a @ b[:3, :3],
          lambda a, b: torch.where(b > 0.5, a, b)]


def _shape_fix(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1)
    if flat.numel() >= 12:
        return flat[:12].reshape(4, 3)
    return flat.repeat(12 // flat.numel() + 1)[:12].reshape(4, 3)




def program_function(program: list[tuple[int, int, bool, int]]):
    """A function of a 12-vector: each step applies UNARY[u] to register ``src`` (or
    BINARY[b] to it and the last register) and appends the result, cut/tiled to 4×3."""

    def f(v: torch.Tensor) -> torch.Tensor:
        regs = [v.reshape(4, 3)]
        for u, b, use_bin, src in program:
            a = regs[src % len(regs)]
            r = BINARY[b](a, regs[-1]) if use_bin else UNARY[u](a)
            regs.append(_shape_fix(r))
        return regs[-1]

    return f


def programs():
    """The hypothesis strategy of fuzzer programs (1–4 steps)."""
    from hypothesis import strategies as st

    step = st.tuples(st.integers(0, len(UNARY) - 1), st.integers(0, len(BINARY) - 1),
                     st.booleans(), st.integers(0, 3))
    return st.lists(step, min_size=1, max_size=4)
