"""Sparse linear algebra for the engine's step rules (one problem, ``J`` a SciPy sparse matrix).

A sparse Jacobian is never densified. The reflective step (:mod:`.steps.reflective`) solves
its trust-region subproblem in the two-dimensional subspace spanned by the scaled gradient and
an LSMR solution of the regularised Gauss–Newton system ``[Ĵ; diag(√(ĉ + r))] p ≈ [−f̃; 0]``
(as SciPy's ``tr_solver="lsmr"`` does; ``r`` is the regulariser SciPy uses, from the model's
decrease along the gradient), then minimises the 2-D model exactly. Vectors stay torch tensors
with a batch dimension of one; only the products with ``J`` go through NumPy.

>>> import numpy as np, scipy.sparse as sp, torch
>>> J = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 1.0]]))
>>> sparse_col_norms(J).tolist()
[[2.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["lsmr_newton", "lsmr_subspace", "matvec", "sp_diags", "sparse_col_norms",
           "subspace_step"]

_T = torch.float64


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", _T).numpy()


def sp_diags(d: torch.Tensor) -> Any:
    """``diag(d)`` as a SciPy sparse matrix (``d`` a 1-D tensor)."""
    import scipy.sparse as sp  # a sparse J: SciPy is loaded already

    return sp.diags(_np(d))


def matvec(J: Any, s: torch.Tensor) -> torch.Tensor:
    """``J s`` as ``(1, m)`` for a SciPy sparse ``J`` and ``s`` of shape ``(1, n)``."""
    return torch.as_tensor(np.asarray(J @ _np(s[0])).ravel(), dtype=s.dtype)[None]


def sparse_col_norms(J: Any) -> torch.Tensor:
    """(1, n) column norms of a SciPy sparse ``J``, each column divided by its largest entry
    first when a square could overflow or underflow.

    >>> import scipy.sparse as sp
    >>> sparse_col_norms(sp.csr_matrix(np.array([[3e-200, 1.0], [4e-200, 0.0]]))).tolist()
    [[5e-200, 1.0]]
    """
    big = np.asarray(abs(J).max(axis=0).todense()).ravel()
    if np.all(big < 2.0 ** 500) and np.all((big == 0) | (big > 2.0 ** -500)):
        out = np.sqrt(np.asarray(J.multiply(J).sum(axis=0)).ravel())
    else:
        safe = np.where(big > 0, big, 1.0)
        Js = J.multiply(1.0 / safe[None, :]).tocsr()
        out = big * np.sqrt(np.asarray(Js.multiply(Js).sum(axis=0)).ravel())
    return torch.as_tensor(out, dtype=_T)[None]


def lsmr_subspace(Jh: Any, f: torch.Tensor, g_h: torch.Tensor, diag_h: torch.Tensor,
                  delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An orthonormal basis ``S`` (n, 2) of span{ĝ, regularised Gauss–Newton step by LSMR},
    the 2-D model matrix ``Sᵀ (ĴᵀĴ + diag(ĉ)) S`` and gradient ``Sᵀ ĝ``."""
    from scipy.sparse.linalg import LinearOperator, lsmr  # SciPy loads with a sparse J

    m, n = Jh.shape
    g, c, fv, dl = _np(g_h[0]), _np(diag_h[0]), _np(f[0]), float(delta[0])
    Jg = Jh @ g
    gg = float(g @ g)
    a = 0.5 * (float(Jg @ Jg) + float(np.dot(g * c, g)))
    hi = dl / max(np.sqrt(gg), 1e-300)
    t = hi if a <= 0 else min(hi, 0.5 * gg / a)
    reg = -(a * t * t - gg * t) / (dl * dl) if dl > 0 else 0.0
    dg = np.sqrt(np.maximum(c + reg, 0.0))

    JhT = Jh.T.tocsr()  # once: a transpose per product costs more than the product

    def mv(u: np.ndarray) -> np.ndarray:
        return np.concatenate([Jh @ u, dg * u])

    def rmv(w: np.ndarray) -> np.ndarray:
        return np.asarray(JhT @ w[:m]).ravel() + dg * w[m:]

    op = LinearOperator((m + n, n), matvec=mv, rmatvec=rmv, dtype=float)
    gn = lsmr(op, np.concatenate([-fv, np.zeros(n)]), atol=1e-12, btol=1e-12,
              maxiter=10 * n + 20)[0]
    S, _ = np.linalg.qr(np.stack([g, gn], axis=1))
    JS = np.asarray(Jh @ S)
    BS = JS.T @ JS + (S.T * c) @ S
    return (torch.as_tensor(S, dtype=_T), torch.as_tensor(BS, dtype=_T),
            torch.as_tensor(S.T @ g, dtype=_T))


def subspace_step(S: torch.Tensor, BS: torch.Tensor, gS: torch.Tensor,
                  delta: torch.Tensor) -> torch.Tensor:
    """``S p`` (1, n) for ``p = argmin ½ pᵀ BS p + gSᵀ p`` subject to ``‖p‖ <= delta`` (2-D:
    eigen-decomposition, then bisection on the shift)."""
    dl = float(delta[0])
    w, Q = torch.linalg.eigh(BS)
    gq = Q.mT @ gS
    if float(w[0]) > 0:
        p = -gq / w
        if float(torch.linalg.vector_norm(p)) <= dl:
            return (S @ (Q @ p))[None]
    lo = max(0.0, -float(w[0])) + 1e-300
    hi = lo + float(torch.linalg.vector_norm(gS)) / max(dl, 1e-300) + float(w.abs().max()) + 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(torch.linalg.vector_norm(gq / (w + mid))) > dl:
            lo = mid
        else:
            hi = mid
    return (S @ (Q @ (-gq / (w + hi))))[None]


def lsmr_newton(J: Any, f: torch.Tensor, scale: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """``(1, n)``: the Gauss–Newton step ``argmin ‖J s + f‖`` over the free variables (``0`` on
    the others) by LSMR in the variables scaled by ``scale`` (``s = scale ∘ u``), as SciPy's
    ``"dogbox"`` computes it for ``tr_solver="lsmr"``."""
    from scipy.sparse.linalg import LinearOperator, lsmr  # SciPy loads with a sparse J

    m, n = J.shape
    d = _np(scale[0]) * _np(free[0].to(_T))

    JT = J.T.tocsr()

    def mv(u: np.ndarray) -> np.ndarray:
        return np.asarray(J @ (d * u.ravel())).ravel()

    def rmv(w: np.ndarray) -> np.ndarray:
        return d * np.asarray(JT @ w.ravel()).ravel()

    op = LinearOperator((m, n), matvec=mv, rmatvec=rmv, dtype=float)
    u = lsmr(op, _np(f[0]), atol=1e-12, btol=1e-12, maxiter=10 * n + 20)[0]
    return torch.as_tensor(-d * u, dtype=_T)[None]
