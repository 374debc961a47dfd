"""Mean: the average gradient."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator

__all__ = ["Mean"]


class Mean(GramianWeightedAggregator):
    r"""The average of the rows: ``d = (1/m) Σᵢ gᵢ = Jᵀ (1/m, …, 1/m)``.

    Properties: linear under scaling (``A(cJ) = c A(J)``), weighted (``d = Jᵀ w``); *not*
    non-conflicting — one large gradient can make ``gⱼ · d < 0`` for another row.

    >>> import torch
    >>> Mean()(torch.tensor([[2.0, 0.0], [0.0, 4.0]]))
    tensor([1., 2.])
    """

    def _weights(self, G: Tensor) -> Tensor:
        m = G.shape[0]
        return torch.full((m,), 1.0 / m, dtype=G.dtype, device=G.device)
