"""IMTL-G: impartial multi-task learning (gradient part), generalised to dependent rows."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator

__all__ = ["IMTLG"]


class IMTLG(GramianWeightedAggregator):
    r"""IMTL-G (Liu et al. 2021), in the form of Quinton & Rey (2024) that allows linearly
    dependent rows: with ``nᵢ = ‖gᵢ‖ = √Gᵢᵢ``::

        v = G⁺ n,   w = v / Σᵢ vᵢ   (w = 0 when |Σᵢ vᵢ| ≤ 1e-12 Σᵢ |vᵢ|),   d = Jᵀ w,

    so that ``d`` has equal projections ``gᵢ·d / ‖gᵢ‖`` on every unit gradient. ``G⁺`` is formed
    in float64, eigenvalues below ``m·eps`` of G's dtype (relative) counting as zero.

    Properties: linear under scaling, weighted (weights sum to 1); not non-conflicting in
    general (weights may be negative).

    >>> import torch
    >>> IMTLG()(torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64))
    tensor([0.6667, 0.6667], dtype=torch.float64)
    """

    def _weights(self, G: Tensor) -> Tensor:
        # in float64, with eigenvalues below G's own precision (m·eps of its dtype) taken as zero
        rtol = G.shape[0] * torch.finfo(G.dtype).eps
        G64 = G.to(torch.float64)
        norms = G64.diagonal().clamp_min(0.0).sqrt()
        v = torch.linalg.pinv(G64, rtol=rtol, hermitian=True) @ norms
        total = v.sum()
        # "the sum vanishes" relative to v's own size: v scales as 1/c when J is scaled by c, so
        # an absolute cut-off zeroed every update of rows longer than about 1e12
        vanishes = float(total.detach().abs()) <= 1e-12 * float(v.detach().abs().sum())
        w = torch.zeros_like(v) if vanishes else v / total
        return w.to(G.dtype)
