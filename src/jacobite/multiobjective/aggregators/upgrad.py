"""UPGrad: the mean of the rows projected onto the dual cone of all rows."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator, check_nonnegative, check_vector, pref_weights
from ._qp import check_solver, project_dual_cone

__all__ = ["UPGrad", "normalize_regularize"]


def normalize_regularize(G: Tensor, norm_eps: float, reg_eps: float) -> Tensor:
    """``G / tr(G) + reg_eps·I`` (``0 + reg_eps·I`` when ``tr(G) < norm_eps``), in float64.

    Dividing by the trace (‖J‖²_F) makes the projections scale-free; the ridge makes ``G``
    positive definite so that every projection has a unique solution.
    """
    G = G.to(torch.float64)
    trace = G.diagonal().sum()
    Gn = G / trace if float(trace) >= norm_eps else torch.zeros_like(G)
    Gn.diagonal().add_(reg_eps)
    return Gn


class UPGrad(GramianWeightedAggregator):
    r"""Unconflicting Projection of Gradients (Quinton & Rey, 2024).

    Each row ``gᵢ`` (scaled by its preference ``pᵢ``, default ``1/m``) is projected onto the dual
    cone ``C = {d : J d ≥ 0}`` of the rows, and the projections are summed::

        d = Σᵢ π_C(pᵢ gᵢ),   π_C(Jᵀu) = Jᵀv  with  v = argmin_{v ≥ u} vᵀ Ĝ v,

    where ``Ĝ = G / tr(G) + reg_eps·I`` (``G = JJᵀ``; as in TorchJD 0.18.0). The ``m``
    projections are solved together, exactly, by the block-pivoting solver of :mod:`._qp`:
    ``solver="auto"`` (NumPy/LAPACK for CPU tensors, batched torch on other devices),
    ``"torch"`` (batched torch on G's device) or ``"quadprog"`` (one qpsolvers/quadprog call
    per row, as TorchJD does; extra ``jacobite[quadprog]``).

    Properties: non-conflicting (``J d ≥ 0`` up to the ridge ``reg_eps``), linear under
    scaling (``A(cJ) = c A(J)`` for ``c > 0``, because ``Ĝ`` is scale-free), weighted
    (``d = Jᵀw`` with ``w = Σᵢ vᵢ ≥ p``).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    >>> d = UPGrad()(J)
    >>> bool((J @ d >= 0).all())
    True
    >>> UPGrad(pref_vector=torch.tensor([0.5, 0.5]))
    UPGrad(pref_vector=tensor([0.5000, 0.5000]), norm_eps=0.0001, reg_eps=0.0001, solver='auto')
    """

    def __init__(self, pref_vector: Tensor | None = None, *, norm_eps: float = 1e-4,
                 reg_eps: float = 1e-4, solver: str = "auto") -> None:
        self.pref_vector = check_vector(pref_vector, "pref_vector")
        self.norm_eps = check_nonnegative(norm_eps, "norm_eps")
        self.reg_eps = check_nonnegative(reg_eps, "reg_eps")
        self.solver = check_solver(solver)

    def _params(self) -> dict[str, Any]:
        return {"pref_vector": self.pref_vector, "norm_eps": self.norm_eps,
                "reg_eps": self.reg_eps, "solver": self.solver}

    def _weights(self, G: Tensor) -> Tensor:
        Gn = normalize_regularize(G, self.norm_eps, self.reg_eps)
        U = torch.diag(pref_weights(self.pref_vector, Gn, None))
        V = project_dual_cone(Gn, U, self.solver)
        return V.sum(0).to(G.dtype)
