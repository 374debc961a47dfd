"""Batched exact solver for the dual-cone projections of UPGrad / DualProj and for MGDA.

Every problem here is a linear complementarity problem with one symmetric positive definite
matrix ``M`` (m × m) shared by a batch of right-hand sides ``q`` (one per row of ``Q``)::

    find x ≥ 0  with  w = M x + q ≥ 0  and  xᵢ wᵢ = 0 for every i.

It is the optimality system of ``min ½ xᵀMx + qᵀx`` subject to ``x ≥ 0``. The projection of
``Jᵀu`` onto the dual cone of the rows of ``J`` (``min vᵀGv`` s.t. ``v ≥ u``) is ``v = u + x``
with ``M = G`` and ``q = G u``; MGDA's min-norm point of the convex hull is ``x / Σx`` with
``q = −1``.

The solver is *block principal pivoting* (Júdice & Pires 1994; Kim & Park 2011 for NNLS), run on
all problems of the batch at once in float64 on the tensors' device: each iteration solves, for
every unfinished problem, the system on its current free set ``F`` (``M_FF x_F = −q_F``, by
one batched Cholesky factorisation of the free blocks gathered and padded to the largest free
set), then exchanges every variable that violates ``x ≥ 0`` or ``w ≥ 0``. When the number of
violations stops falling for three iterations a problem falls back to Murty's single exchange,
which terminates finitely. The start ``F = {i : qᵢ < 0}`` is the first full exchange from
``x = 0``; for gradients that conflict little it is often already optimal. The answer is exact
up to the round-off of the final solves (~1e-12 relative on well-conditioned problems).

>>> import torch
>>> M = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64)
>>> solve_lcp(M, torch.tensor([[-1.0, 1.0]], dtype=torch.float64))
tensor([[0.5000, 0.0000]], dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConvergenceError, InvalidOptionError, require

__all__ = ["project_dual_cone", "solve_lcp"]

_SOLVERS = ("auto", "torch", "quadprog")
_BACKUP = 3  # full exchanges allowed without progress before Murty's single exchange


def check_solver(solver: str) -> str:
    if solver not in _SOLVERS:
        raise InvalidOptionError(f"solver must be one of {_SOLVERS}, got {solver!r}")
    return solver


def _solve_free(M1: Tensor, q: Tensor, free: Tensor) -> Tensor:
    """x with ``x_F = −M_FF⁻¹ q_F`` and ``x_A = 0`` for each row (batched, padded free blocks).

    ``M1`` is ``[[M, 0], [0, I_m]]``: padding position ``j`` points at index ``m + j``, so the
    gathered blocks are ``[[M_FF, 0], [0, I]]`` without masking.
    """
    m = q.shape[1]
    n_free = free.sum(1)
    k = int(n_free.max())
    x = torch.zeros_like(q)
    if k == 0:
        return x
    order = torch.argsort((~free).to(torch.int8), dim=1, stable=True)[:, :k]  # free first
    valid = torch.arange(k, device=q.device)[None, :] < n_free[:, None]  # (B, k)
    order = torch.where(valid, order, m + torch.arange(k, device=q.device)[None, :])
    A = M1.view(-1)[order[:, :, None] * (2 * m) + order[:, None, :]]
    q1 = torch.cat([q, torch.zeros_like(q)], 1)
    rhs = -q1.gather(1, order).unsqueeze(-1)
    L, info = torch.linalg.cholesky_ex(A)
    if bool((info != 0).any()):  # numerically semi-definite block: fall back to least squares
        sol = torch.linalg.lstsq(A, rhs).solution
    else:
        y = torch.linalg.solve_triangular(L, rhs, upper=False)
        sol = torch.linalg.solve_triangular(L.mT, y, upper=True)
    x1 = torch.zeros_like(q1)
    x1.scatter_(1, order, sol.squeeze(-1))
    return x1[:, :m]


def solve_lcp(M: Tensor, Q: Tensor, *, tol: float = 1e-12, max_iter: int | None = None) -> Tensor:
    """Solve ``x ≥ 0, Mx + q ≥ 0, x ⊙ (Mx + q) = 0`` for every row ``q`` of ``Q`` (B, m).

    ``M`` must be symmetric positive definite (m, m). Computed in float64; returns ``X`` of
    ``Q``'s shape in ``Q``'s dtype. Violations below ``tol · max|q|`` count as satisfied.
    """
    out_dtype = Q.dtype
    M = M.to(torch.float64)
    Q = Q.to(torch.float64)
    B, m = Q.shape
    X = torch.zeros_like(Q)
    if B == 0:
        return X.to(out_dtype)
    scale = Q.abs().amax(1).clamp_min(torch.finfo(torch.float64).tiny)
    tols = tol * scale
    free = Q < 0
    best = torch.full((B,), m + 1, dtype=torch.long, device=Q.device)
    backup = torch.full((B,), _BACKUP, dtype=torch.long, device=Q.device)
    todo = torch.arange(B, device=Q.device)
    cols = torch.arange(m, device=Q.device)
    limit = max_iter if max_iter is not None else 20 * m + 50
    M1 = torch.zeros(2 * m, 2 * m, dtype=M.dtype, device=M.device)
    M1[:m, :m] = M
    M1[m:, m:].diagonal().fill_(1.0)
    q, t = Q, tols
    for _ in range(limit):
        x = _solve_free(M1, q, free)
        w = x @ M + q
        bad = (free & (x < -t[:, None])) | (~free & (w < -t[:, None]))
        n_bad = bad.sum(1)
        done = n_bad == 0
        if bool(done.any()):
            X[todo[done]] = x[done].clamp_min(0.0)
            keep = ~done
            if not bool(keep.any()):
                return X.to(out_dtype)
            todo, q, t, free = todo[keep], q[keep], t[keep], free[keep]
            bad, n_bad, best, backup = bad[keep], n_bad[keep], best[keep], backup[keep]
        progress = n_bad < best
        best = torch.where(progress, n_bad, best)
        backup = torch.where(progress, _BACKUP, backup - 1)
        single = backup < 0  # Murty: exchange only the violating variable of largest index
        last = torch.where(bad, cols, -1).amax(1, keepdim=True)
        flip = torch.where(single[:, None], cols[None, :] == last, bad)
        free = free ^ flip
    raise ConvergenceError(f"the batched dual-cone solver did not converge in {limit} "
                           "iterations (is the Gramian positive semi-definite?); use "
                           "solver='quadprog' or raise reg_eps")


def _quadprog(G: Tensor, U: Tensor) -> Tensor:
    """One qpsolvers/quadprog call per row: ``min vᵀGv`` s.t. ``v ≥ u`` (the reference path)."""
    qpsolvers = require("qpsolvers", "quadprog")
    require("quadprog", "quadprog")
    import numpy as np

    G_ = G.detach().cpu().to(torch.float64).numpy()
    m = G_.shape[0]
    out = []
    for u in U.detach().cpu().to(torch.float64).numpy():
        v = qpsolvers.solve_qp(G_, np.zeros(m), -np.eye(m), -u, solver="quadprog")
        if v is None:
            raise ConvergenceError("quadprog failed on a dual-cone projection; the Gramian may "
                                   "be badly scaled: raise reg_eps or use solver='torch'")
        out.append(v)
    return torch.as_tensor(np.stack(out), dtype=U.dtype, device=U.device)


def project_dual_cone(G: Tensor, U: Tensor, solver: str = "auto") -> Tensor:
    """For each row ``u`` of ``U`` (B, m): the ``v`` minimising ``vᵀGv`` subject to ``v ≥ u``.

    ``Jᵀv`` is then the projection of ``Jᵀu`` onto the dual cone ``{d : J d ≥ 0}`` of the rows
    of ``J`` (``G = JJᵀ`` positive definite). ``solver``: ``"auto"`` / ``"torch"`` (batched
    :func:`solve_lcp` on G's device) or ``"quadprog"`` (qpsolvers, one problem at a time).
    """
    if check_solver(solver) == "quadprog":
        return _quadprog(G, U)
    G64 = G.to(torch.float64)
    U64 = U.to(torch.float64)
    return (U64 + solve_lcp(G64, U64 @ G64)).to(U.dtype)
