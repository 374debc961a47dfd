"""Sum: the sum of the gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator

__all__ = ["Sum"]


class Sum(GramianWeightedAggregator):
    r"""The sum of the rows: ``d = Σᵢ gᵢ = Jᵀ (1, …, 1)`` (the gradient of the summed losses).

    Properties: linear under scaling, weighted; not non-conflicting.

    >>> import torch
    >>> Sum()(torch.tensor([[2.0, 0.0], [0.0, 4.0]]))
    tensor([2., 4.])
    """

    def _weights(self, G: Tensor) -> Tensor:
        return torch.ones(G.shape[0], dtype=G.dtype, device=G.device)
