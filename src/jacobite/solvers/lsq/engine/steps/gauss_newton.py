"""Gauss–Newton steps: the minimum-norm least-squares solution of ``J̃ p ≈ −f̃``, batched.

The direction comes from one SVD of ``J̃`` per Jacobian (singular values below
``max(m, n)·eps·s₀`` dropped, so a rank-deficient ``J̃`` still gives the minimum-norm step and
``J̃ᵀJ̃`` is never formed). A direction that is not downhill (``g·p >= 0``, possible only through
rounding) is replaced by the steepest descent ``−g``. With a robust loss the model is
iteratively reweighted least squares (``J̃ = √ρ' J``, ``f̃ = √ρ' f``): the gradient is exact and
the model positive semi-definite, so the step is always downhill. Pair it with
:class:`~..line_search.Armijo`. A SciPy sparse Jacobian (one problem) takes its direction from
LSMR instead of the SVD and is never densified.

>>> import torch
>>> J = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
>>> min_norm_solve(J, torch.tensor([[2.0, 3.0]], dtype=torch.float64)).tolist()
[[-2.0, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..loop import merge_rows
from ..protocols import Problem, Trial
from ..sparse import sparse_col_norms
from ..state import LossFn, State
from ..status import EPS64, Tolerances, gradient_test
from .lm import col_norms

__all__ = ["GaussNewton", "irls_model", "min_norm_solve", "sparse_col_norms"]


def min_norm_solve(J: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The minimum-norm ``p`` (B, n) minimising ``‖J p + f‖`` for ``J`` (B, m, n), ``f`` (B, m),
    by the SVD with singular values below ``max(m, n)·eps·s₀`` dropped (LAPACK ``gelsd``'s
    default cut-off)."""
    U, s, Vh = torch.linalg.svd(J, full_matrices=False)
    uf = (U.mT @ f[..., None])[..., 0]
    keep = s > s[:, :1] * EPS64 * max(J.shape[-2], J.shape[-1])
    inv = torch.where(keep, uf / torch.where(keep, s, 1.0), 0.0)
    return -(Vh.mT @ inv[..., None])[..., 0]


def irls_model(J: Any, f: torch.Tensor, loss: LossFn | None) -> tuple[Any, torch.Tensor]:
    """``(√ρ' J, √ρ' f)``: iteratively reweighted least squares (the inputs without a loss);
    ``J`` (B, m, n) or, for one problem, a SciPy sparse matrix."""
    if loss is None:
        return J, f
    w = torch.sqrt(loss(f)[1])
    if isinstance(J, torch.Tensor):
        return w[..., None] * J, w * f
    import scipy.sparse as sp  # a sparse J: SciPy is loaded already

    return sp.diags(w[0].numpy()) @ J, w * f


def _sparse_direction(J: Any, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSMR's least-squares solution of ``J p ≈ −f`` (one problem) and ``J p``."""
    from scipy.sparse.linalg import lsmr

    p = lsmr(J, -f[0].numpy(), atol=1e-12, btol=1e-12, maxiter=10 * min(J.shape) + 20)[0]
    return torch.from_numpy(p)[None], torch.from_numpy(np.asarray(J @ p).ravel())[None]


class GaussNewton:
    """The Gauss–Newton step rule (see the module doc)."""

    rowwise = True  #: per-problem data live in the state: the loop may split a batch by rows

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        Jt, ft = irls_model(state.J, state.f, state.loss)
        if isinstance(Jt, torch.Tensor):
            g, cn = (Jt.mT @ ft[..., None])[..., 0], col_norms(Jt)
        else:
            g = torch.from_numpy(np.asarray(Jt.T @ ft[0].numpy()).ravel())[None]
            cn = sparse_col_norms(Jt)
        ok = gradient_test(ft, g, cn, tol.gtol, tol.eps)
        old = state.extra.get("gn_model")
        new = (Jt, ft)
        state.extra["gn_model"] = new if old is None else tuple(
            merge_rows(fresh, a, b) for a, b in zip(new, old, strict=True))
        state.g = merge_rows(fresh, g, state.g)
        return ok

    def propose(self, state: State, problem: Problem) -> Trial:
        del problem  # the direction needs no evaluation
        Jt, ft = state.extra["gn_model"]
        if isinstance(Jt, torch.Tensor):
            p = min_norm_solve(Jt, ft)
            Jp = (Jt @ p[..., None])[..., 0]
        else:
            p, Jp = _sparse_direction(Jt, ft)
        g = state.g
        slope = (g * p).sum(-1)
        down = slope < 0
        p = torch.where(down[:, None], p, -g)
        slope = torch.where(down, slope, -(g * g).sum(-1))
        predicted = torch.where(down, 0.5 * (Jp * Jp).sum(-1), -slope)
        zero = torch.zeros_like(slope)
        return Trial(p=p, pnorm=torch.linalg.vector_norm(p, dim=-1), predicted=predicted,
                     slope=slope, lam=zero)
