"""The matrix families TorchJD's aggregation tests run on, generated here from their definitions
(in float64, then cast to the dtype under test):

* ``normal(m, n, r)``: a random m × n matrix of rank r;
* ``strong(m, n, r)``: strongly stationary — some ``v > 0`` has ``vᵀA = 0``;
* ``strictly_weak(m, n, r)``: some ``v ≥ 0, v ≠ 0`` has ``vᵀA = 0``, but no ``v > 0`` does;
* ``non_weak(m, n, r)``: no ``v ≥ 0, v ≠ 0`` has ``vᵀA = 0``;
* zero matrices, and every normal matrix scaled by 0, 1e-10, 1e3, 1e5, 1e10 and 1e15.
"""

from __future__ import annotations

import torch

F64 = torch.float64


def _orthonormal_completion(Q: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random m × (m − k) matrix whose columns complete the k orthonormal columns of Q."""
    m, k = Q.shape
    A = torch.randn(m, m - k, generator=g, dtype=F64)
    A -= Q @ (Q.T @ A)
    return torch.linalg.qr(A).Q


def _orthonormal(d: int, g: torch.Generator) -> torch.Tensor:
    return _orthonormal_completion(torch.zeros(d, 0, dtype=F64), g)


def _with_left_vectors(U: torch.Tensor, n: int, r: int, g: torch.Generator) -> torch.Tensor:
    """``U[:, :r] diag(s) V[:r]`` with random positive singular values s."""
    s = torch.randn(r, generator=g, dtype=F64).abs()
    return U[:, :r] @ torch.diag(s) @ _orthonormal(n, g)[:r]


def normal(m: int, n: int, r: int, g: torch.Generator) -> torch.Tensor:
    return _with_left_vectors(_orthonormal(m, g), n, r, g)


def strong(m: int, n: int, r: int, g: torch.Generator) -> torch.Tensor:
    """Columns orthogonal to a positive vector v: vᵀA = 0 with v > 0."""
    v = torch.randn(m, generator=g, dtype=F64).abs()
    U = _orthonormal_completion((v / v.norm())[:, None], g)
    return _with_left_vectors(U, n, r, g)


def strictly_weak(m: int, n: int, r: int, g: torch.Generator) -> torch.Tensor:
    """Orthogonal to v ≥ 0 (so weakly stationary), with a non-negative left singular vector v'
    of positive singular value, disjoint from v (so no positive w has wᵀA = 0)."""
    u = torch.randn(m, generator=g, dtype=F64).abs()
    cut = int(torch.randint(1, m, (), generator=g))
    order = torch.randperm(m, generator=g)
    v = torch.zeros(m, dtype=F64)
    v_prime = torch.zeros(m, dtype=F64)
    v[order[:cut]] = u[order[:cut]] / u[order[:cut]].norm()
    v_prime[order[cut:]] = u[order[cut:]] / u[order[cut:]].norm()
    first = torch.stack([v, v_prime], dim=1)
    U = torch.cat([first, _orthonormal_completion(first, g)], dim=1)
    return _with_left_vectors(U[:, 1:], n, r, g)


def non_weak(m: int, n: int, r: int, g: torch.Generator) -> torch.Tensor:
    """A positive left singular vector with a positive singular value."""
    u = torch.randn(m, generator=g, dtype=F64).abs()
    first = (u / u.norm())[:, None]
    U = torch.cat([first, _orthonormal_completion(first, g)], dim=1)
    return _with_left_vectors(U, n, r, g)


NORMAL_DIMS = [(1, 1, 1), (4, 3, 1), (4, 3, 2), (4, 3, 3), (9, 11, 5), (9, 11, 9)]
ZERO_DIMS = [(1, 1), (4, 3), (9, 11)]
STATIONARITY_DIMS = [(20, 10, 10), (20, 10, 5), (20, 10, 1), (20, 100, 1), (20, 100, 19)]
SCALES = [0.0, 1e-10, 1e3, 1e5, 1e10, 1e15]
NASH_DIMS = [(3, 1, 1), (4, 3, 1), (4, 3, 2), (4, 3, 3), (9, 11, 5), (9, 11, 9)]


def _build() -> dict[str, list[tuple[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    normals = [(f"normal{m}x{n}r{r}", normal(m, n, r, g)) for m, n, r in NORMAL_DIMS]
    zeros = [(f"zero{m}x{n}", torch.zeros(m, n, dtype=F64)) for m, n in ZERO_DIMS]
    strongs = [(f"strong{m}x{n}r{r}", strong(m, n, r, g)) for m, n, r in STATIONARITY_DIMS]
    weak = [(f"strictlyweak{m}x{n}r{r}", strictly_weak(m, n, r, g))
            for m, n, r in STATIONARITY_DIMS]
    nonweak = [(f"nonweak{m}x{n}r{r}", non_weak(m, n, r, g)) for m, n, r in STATIONARITY_DIMS]
    scaled = [(f"{name}*{c:g}", c * J) for c in SCALES for name, J in normals]
    nash = [(f"nash{m}x{n}r{r}", normal(m, n, r, g)) for m, n, r in NASH_DIMS]
    return {"normal": normals, "zero": zeros, "strong": strongs, "non_strong": weak + nonweak,
            "scaled": scaled, "typical": zeros + normals + strongs + weak + nonweak,
            "nash": nash}


FAMILIES = _build()


def family(name: str, *, min_rows: int = 1) -> list[tuple[str, torch.Tensor]]:
    return [(k, J) for k, J in FAMILIES[name] if J.shape[0] >= min_rows]
