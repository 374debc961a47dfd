"""Sparse linear algebra of :func:`jacobite.newton_minimize`: steps and curvature checks on SciPy
sparse matrices, never densified above :data:`DENSE_CHECK_MAX_N` unknowns.

* :func:`newton_direction` solves ``(H + τI) p = −g`` with the smallest tried ``τ >= 0`` that
  makes ``H + τI`` positive definite, as the dense path does with Cholesky. Positive
  definiteness is read off a SuperLU factorisation with diagonal pivots in a symmetric order:
  then ``H + τI = L D Lᵀ`` with ``D`` the diagonal of ``U``, and by Sylvester's law of inertia
  it is positive definite exactly when every pivot is positive. A factorisation that pivoted
  off the diagonal (row and column orders differ) proves nothing and counts as "raise ``τ``".
* :func:`gauss_newton_step` is the least-squares step ``min ‖J p + r‖``: the normal equations
  by sparse LU, or LSMR where ``JᵀJ`` is singular.
* :func:`derivatives` is one Newton (or Gauss–Newton) evaluation with a sparse plan.
* :func:`directions` gives the unit directions of no positive curvature the stationarity
  probe needs: by the dense routines up to ``DENSE_CHECK_MAX_N`` unknowns, above by a few
  eigenpairs at the low end of the spectrum (ARPACK; none where it does not converge).

>>> import numpy as np, scipy.sparse as sp
>>> p, tau = newton_direction(sp.csr_matrix(np.diag([2.0, 4.0])), np.array([2.0, 4.0]))
>>> p.tolist(), tau
([-1.0, -1.0], 0.0)
>>> newton_direction(sp.csr_matrix(np.diag([1.0, -1.0])), np.array([1.0, 1.0]))[1] > 1
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch.func import grad_and_value

from ._certify import MAX_DIRECTIONS, blind_directions, curvature_directions

__all__ = ["DENSE_CHECK_MAX_N", "derivatives", "directions", "gauss_newton_step",
           "newton_direction"]

#: Up to this many unknowns the curvature check densifies (an eigendecomposition of n × n).
DENSE_CHECK_MAX_N = 1500


def _ldl_pivots(A: sp.csc_matrix) -> tuple[spla.SuperLU, np.ndarray] | None:
    """SuperLU of the symmetric ``A`` with diagonal pivots, and its pivots; ``None`` where it
    is singular or pivoted off the diagonal."""
    try:
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
    except RuntimeError:  # exactly singular
        return None
    if not np.array_equal(lu.perm_r, lu.perm_c):
        return None
    return lu, lu.U.diagonal()


def newton_direction(H: sp.spmatrix, g: np.ndarray) -> tuple[np.ndarray, float]:
    """``(p, τ)``: ``(H + τI) p = −g`` for the smallest tried ``τ`` making ``H + τI`` positive
    definite (``τ = 0`` first where the diagonal is positive, then doubling from
    ``β = 1e-3 max(1, max|H|)``)."""
    n = H.shape[0]
    Hs = sp.csc_matrix(H, dtype=np.float64)
    eye = sp.identity(n, format="csc")
    beta = 1e-3 * max(1.0, float(abs(Hs).max()) if Hs.nnz else 0.0)
    dmin = float(Hs.diagonal().min())
    tau = 0.0 if dmin > 0 else beta - dmin
    for _ in range(100):
        out = _ldl_pivots(sp.csc_matrix(Hs + tau * eye))
        if out is not None and bool(np.all(out[1] > 0)):
            return out[0].solve(-g), tau
        tau = max(2.0 * tau, beta)
    return -g, float("inf")  # pragma: no cover - H + τI is PD for τ > ‖H‖


def gauss_newton_step(J: sp.spmatrix, r: np.ndarray) -> np.ndarray:
    """``argmin ‖J p + r‖``: ``JᵀJ p = −Jᵀr`` by sparse LU, or LSMR where ``JᵀJ`` is
    singular (the minimum-norm solution from ``p = 0``)."""
    Jc = sp.csr_matrix(J, dtype=np.float64)
    try:
        p = spla.splu(sp.csc_matrix(Jc.T @ Jc)).solve(-(Jc.T @ r))
        if np.all(np.isfinite(p)):
            return np.asarray(p)
    except RuntimeError:
        pass
    return np.asarray(spla.lsmr(Jc, -r, atol=1e-14, btol=1e-14, maxiter=10 * Jc.shape[1])[0])


def directions(C: sp.spmatrix, *, gauss_newton: bool, first: bool) -> np.ndarray:
    """Unit directions (rows) of no positive curvature of the Hessian ``C`` (or of ``JᵀJ``
    for Gauss–Newton, ``C`` being ``J``); see :mod:`jacobite.solvers._certify`."""
    n = C.shape[1]
    if n <= DENSE_CHECK_MAX_N:
        dense = sp.csr_matrix(C).toarray()
        return blind_directions(dense, first=first) if gauss_newton else \
            curvature_directions(dense, first=first)
    A = sp.csr_matrix(C.T @ C if gauss_newton else C, dtype=np.float64)
    if A.nnz == 0:
        return np.eye(n)[:MAX_DIRECTIONS]
    k = min(MAX_DIRECTIONS, n - 2)
    try:
        top = float(abs(spla.eigsh(A, k=1, which="LM", return_eigenvectors=False)[0]))
        lam, vec = spla.eigsh(A, k=k, which="SA")
    except (spla.ArpackNoConvergence, spla.ArpackError):
        return np.zeros((0, n))
    order = np.argsort(lam)
    keep = [i for i in order if lam[i] <= 1e-8 * top]
    if first and not keep:
        keep = [int(order[0])]
    return vec[:, keep].T.copy()


def derivatives(plan: Any, v: torch.Tensor, res: Callable[[torch.Tensor], torch.Tensor] | None,
                scalar: Callable[[torch.Tensor], torch.Tensor]
                ) -> tuple[float, torch.Tensor, torch.Tensor, sp.csr_matrix, float]:
    """``(f, ∇f, p, C, τ)`` at ``v`` with the sparse ``plan``: for Gauss–Newton (``res``
    given) ``C = J`` and ``p`` the least-squares step; else ``C = H`` (symmetrised) and ``p``
    the step of :func:`newton_direction`. ``p`` is NaN where ``f``'s derivatives are not
    finite."""

    def tens(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=v.dtype, device=v.device)

    nan = torch.full_like(v, float("nan"))
    if res is not None:
        with torch.no_grad():
            r = res(v).to(torch.float64).cpu().numpy()
        J = plan.jacobian(v, check_finite=False).to_scipy().tocsr()
        g, fx = np.asarray(J.T @ r), float(0.5 * r @ r)
        if not (np.all(np.isfinite(r)) and np.all(np.isfinite(J.data))):
            return fx, tens(g), nan, J, 0.0
        return fx, tens(g), tens(gauss_newton_step(J, r)), J, 0.0
    gt, fv = grad_and_value(scalar)(v)
    H = plan.jacobian(v, check_finite=False).to_scipy().tocsr()
    H = sp.csr_matrix((H + H.T) * 0.5)
    if not (bool(torch.isfinite(gt).all()) and np.all(np.isfinite(H.data))):
        return float(fv), gt, nan, H, 0.0
    p, tau = newton_direction(H, gt.detach().cpu().double().numpy())
    return float(fv), gt, tens(p), H, tau
