"""Symmetric Lanczos behind :func:`jacobite.analysis.eigenvalues` and
:func:`jacobite.analysis.spectral_density`.

* :class:`SymProducts` — ``A v`` and ``A V`` of a symmetric operator or matrix on float64
  vectors (the products run in the operator's dtype), counting the products it makes.
  :func:`symmetric_products` builds it and refuses what is not known to be symmetric.
* :func:`thick_restart` — Lanczos with full reorthogonalisation (Gram–Schmidt with a second
  pass where the first cancelled much of the vector) and thick
  restart: a basis of at most ``basis`` vectors, restarted from the Ritz vectors nearest the
  wanted end of the spectrum; stops as soon as the wanted Ritz pairs' residuals fall below the
  tolerance (checked after every product).

All Krylov bookkeeping is float64 whatever the operator's dtype. The kernel keeps the relation
``A V_j = V_j H_j + v_j h_jᵀ`` with ``H_j`` the Gram–Schmidt coefficients (symmetric up to
rounding), so a Ritz pair's residual ``‖A x − θ x‖`` is read from ``H`` without a product.

>>> import torch
>>> A = torch.diag(torch.tensor([4.0, 1.0, -2.0, 3.0], dtype=torch.float64))
>>> r = thick_restart(symmetric_products(A, False), k=2, which="largest", tol=1e-12,
...                   max_matvecs=20, basis=4, gen=torch.Generator().manual_seed(0))
>>> [round(float(t), 12) for t in r.values], r.converged
([4.0, 3.0], True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    NonFiniteInputError,
    NotSquareError,
    UnsupportedOperationError,
)
from ..operators import DenseOperator, JacobianOperator
from ._lanczos import F64, draw
from ._scale import exponent_of

__all__ = ["Ritz", "SymProducts", "Which", "order", "symmetric_products", "thick_restart"]

#: Which end of the spectrum: the algebraically largest, the smallest, the largest in absolute
#: value, or both ends (half from each).
Which = Literal["largest", "smallest", "magnitude", "both_ends"]


@dataclass
class SymProducts:
    """``A v`` / ``A V`` of a symmetric ``(n, n)`` ``A`` on float64 vectors, scaled by
    ``2^-shift`` (a power of two fixed by the first product, so that float64 neither
    overflows nor underflows), and the number of products made."""

    n: int
    mv: Callable[[torch.Tensor], torch.Tensor]
    mm: Callable[[torch.Tensor], torch.Tensor]
    dtype: torch.dtype
    device: torch.device
    used: int = 0
    shift: int = 0

    def product(self, v: torch.Tensor) -> torch.Tensor:
        self.used += 1
        return self.mv(v)

    def products(self, V: torch.Tensor) -> torch.Tensor:
        self.used += V.shape[1]
        return self.mm(V)


def _not_symmetric(what: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"{what} is not known to be symmetric, and symmetric Lanczos would give wrong values "
        f"for a non-symmetric matrix; tag the operator (e.g. FunctionOperator(..., "
        f"tags=('symmetric',))), pass assume_symmetric=True if it is symmetric, or use "
        f"top_singular for the singular values of a non-symmetric one")


def _held_symmetric(M: torch.Tensor) -> bool:
    """Whether a held matrix equals its transpose up to a few ulps of its largest entry."""
    scale = float(M.abs().max()) if M.numel() else 0.0
    eps = torch.finfo(M.dtype).eps
    return bool(((M - M.mT).abs() <= 8 * eps * scale).all())


def symmetric_products(obj: Any, assume_symmetric: bool) -> SymProducts:
    """The products of a symmetric operator or 2-D tensor; a typed error for anything else.

    An operator tagged ``symmetric`` (``ggn``, ``hessian``, ``fisher`` …) is taken as it is; a
    held matrix (a tensor or an untagged ``DenseOperator``) is checked entry by entry; any other
    operator needs ``assume_symmetric=True``.
    """
    if isinstance(obj, torch.Tensor):
        if _validate.under_vmap(obj):
            raise UnsupportedOperationError(
                "eigenvalues cannot run under torch.func.vmap (Lanczos reads values into "
                "Python); loop over the batch, or use torch.linalg.eigvalsh on the matrices")
        if obj.ndim != 2 or obj.shape[0] != obj.shape[1]:
            raise NotSquareError(f"the matrix must be square (n, n), got shape "
                                 f"{tuple(obj.shape)}; for a rectangular one use top_singular")
        if obj.is_complex() or not obj.is_floating_point():
            raise DtypeError(f"the matrix must be real floating point, got {obj.dtype}; "
                             f"convert it with .to(torch.float64)")
        if not _validate.all_finite(obj):
            raise NonFiniteInputError("the matrix contains NaN or Inf; clean it first (e.g. "
                                      "torch.nan_to_num)")
        A = obj.detach()
        if not assume_symmetric and not _held_symmetric(A):
            raise _not_symmetric("the matrix")
        return SymProducts(A.shape[0], lambda v: A @ v.to(A.dtype),
                           lambda V: A @ V.to(A.dtype), A.dtype, A.device)
    if not isinstance(obj, JacobianOperator):
        raise ArgumentTypeError(f"operator must be a JacobianOperator (e.g. from "
                                f"jacobite.curvature.ggn) or a square 2-D tensor, got "
                                f"{type(obj).__name__}")
    m, n = obj.shape
    if m != n:
        raise NotSquareError(f"the operator must be square, got shape ({m}, {n}); for a "
                             f"rectangular one use top_singular")
    if obj.dtype.is_complex:
        raise DtypeError(f"the operator must be real, got {obj.dtype}; symmetric Lanczos runs "
                         f"in real float64")
    if not (obj.is_symmetric() or assume_symmetric):
        if isinstance(obj, DenseOperator) and _held_symmetric(obj.matrix.detach()):
            pass
        else:
            raise _not_symmetric(f"the operator ({type(obj).__name__}, tags "
                                 f"{sorted(obj.tags)})")
    dt = obj.dtype

    def mv(v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return obj.mv(v.to(dt))

    def mm(V: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return obj.mm(V.to(dt))

    return SymProducts(n, mv, mm, dt, obj.device)


def scale_of(P: SymProducts, p: torch.Tensor) -> float:
    """Fix ``P.shift`` from a first float64 product ``p`` and return the factor ``2^-shift``
    that brings ``p`` (and every later product) to size about 1."""
    P.shift = exponent_of(p)
    return float(2.0 ** -P.shift)


def orthogonalize(w: torch.Tensor, Q: torch.Tensor, local: int = 2
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` minus its projection on the orthonormal rows of ``Q`` and the coefficients
    removed. The last ``local`` rows first (Lanczos' three-term step, which removes nearly all
    of ``A v_j``'s projection), then classical Gram–Schmidt against every row (rows, so that a
    pass reads ``Q`` contiguously), repeated once where a pass removed more than half of
    ``‖w‖²`` (the Daniel–Gragg–Kaufman–Stewart test: otherwise ``w`` is orthogonal to working
    precision)."""
    h = torch.zeros(Q.shape[0], dtype=w.dtype, device=w.device)
    if 0 < local < Q.shape[0]:
        g = Q[-local:] @ w
        w = torch.addmv(w, Q[-local:].T, g, alpha=-1)
        h[-local:] += g
    for _ in range(2):
        before = float(w.norm())
        g = Q @ w
        w = torch.addmv(w, Q.T, g, alpha=-1)
        h += g
        if float(w.norm()) >= _DGKS * before:
            break
    return w, h


_DGKS = 2 ** -0.5


def order(theta: np.ndarray, which: Which) -> np.ndarray:
    """Indices of ``theta`` from the most wanted to the least: for ``"both_ends"`` the largest
    and smallest alternately."""
    if which == "largest":
        return np.argsort(-theta, kind="stable")
    if which == "smallest":
        return np.argsort(theta, kind="stable")
    if which == "magnitude":
        return np.argsort(-np.abs(theta), kind="stable")
    asc = np.argsort(theta, kind="stable")
    out: list[int] = []
    lo, hi = 0, len(asc) - 1
    while lo <= hi:
        out.append(int(asc[hi]))
        hi -= 1
        if lo <= hi:
            out.append(int(asc[lo]))
            lo += 1
    return np.asarray(out, dtype=np.int64)


@dataclass
class Ritz:
    """The wanted Ritz pairs (``values`` in ``which``'s order, unscaled), their residual norms,
    the largest ``|θ|`` of the final projection (the scale of "relative"), products used."""

    values: np.ndarray
    vectors: torch.Tensor
    residuals: np.ndarray
    scale: float
    matvecs: int
    restarts: int
    converged: bool


def _ritz(H: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ritz values, vectors and residual norms of the ``j``-vector basis."""
    Hj = H[:j, :j]
    S = 0.5 * (Hj + Hj.T)
    theta, Y = np.linalg.eigh(S)
    inner = np.linalg.norm((Hj - S) @ Y, axis=0)
    outer = H[j, :j] @ Y
    return theta, Y, np.sqrt(inner ** 2 + outer ** 2)


def thick_restart(P: SymProducts, *, k: int, which: Which, tol: float, max_matvecs: int,
                  basis: int, gen: torch.Generator | None) -> Ritz:
    """The ``k`` wanted eigenpairs of ``P`` by thick-restart Lanczos (see the module doc).

    A pair is converged when ``‖A x − θ x‖ ≤ max(tol, 50 eps) · max|θ|`` (``eps`` of the
    products' dtype). ``basis`` (≥ ``k + 2``) bounds the vectors held; at a restart the
    ``k + (basis − k) // 2`` Ritz vectors nearest the wanted end are kept. Where the basis spans
    an invariant subspace before the pairs converge, Lanczos goes on from a random vector
    orthogonal to it; once that has happened, the wanted pairs are only accepted when a further
    closure of the Krylov space leaves them unchanged, so an exactly repeated eigenvalue is
    found as often as it occurs among the wanted ones.
    """
    n, dev = P.n, P.device
    m = min(basis, n)
    floor = max(tol, 50 * torch.finfo(P.dtype).eps)
    V = torch.empty(m + 1, n, dtype=F64, device=dev)  # the Lanczos vectors as rows
    H = np.zeros((m + 1, m))
    v = draw(n, gen).to(dev)
    V[0] = v / v.norm()
    j, restarts, c, big = 0, 0, 1.0, 0.0
    closed: np.ndarray | None = None  # the wanted values at the last closure, once one came
    while True:
        w = P.product(V[j]).to(F64)
        if P.used == 1:
            c = scale_of(P, w)
        w = w * c
        big = max(big, float(w.norm()))
        w, h = orthogonalize(w, V[: j + 1])
        H[: j + 1, j] = h.cpu().numpy()
        beta = float(w.norm())
        # an invariant subspace (β at rounding level): its Ritz pairs are exact
        breakdown = beta <= 1e3 * np.finfo(np.float64).eps * big
        H[j + 1, j] = 0.0 if breakdown else beta
        j += 1
        theta, Y, res = _ritz(H, j)
        scale = max(float(np.abs(theta).max()), np.finfo(np.float64).tiny)
        want = order(theta, which)[: min(k, j)]
        done = j >= k and bool(np.all(res[want] <= floor * scale))
        if done and closed is not None and breakdown:
            # a closure after an earlier one: accept once it added no copy of a wanted value
            same = closed.shape == want.shape and np.allclose(closed, theta[want], rtol=0,
                                                              atol=floor * scale)
            closed = None if same else theta[want]
        if (done and closed is None) or j >= n or P.used >= max_matvecs:
            X = (torch.as_tensor(Y[:, want].T.copy(), device=dev) @ V[:j]).T.contiguous()
            unscale = float(2.0 ** P.shift)
            return Ritz(theta[want] * unscale, X, res[want] * unscale, scale * unscale,
                        P.used, restarts, done or j >= n)
        if breakdown:  # go on from a random vector orthogonal to the subspace
            closed = np.empty(0) if closed is None else closed
            q, _ = orthogonalize(draw(n, gen).to(dev), V[:j])
            V[j] = q / q.norm()
        else:
            V[j] = w / beta
        if j == m:  # the basis is full: keep the Ritz vectors nearest the wanted end
            p = min(m - 1, k + (m - k) // 2)
            Ys = Y[:, order(theta, which)[:p]]
            V[:p] = torch.as_tensor(Ys.T.copy(), device=dev) @ V[:m]
            V[p] = V[m]
            Hn = np.zeros_like(H)
            Hn[:p, :p] = Ys.T @ H[:m, :m] @ Ys
            Hn[p, :p] = H[m, :m] @ Ys
            H, j = Hn, p
            restarts += 1
