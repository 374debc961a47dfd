"""Random: a random convex combination of the gradients at every call."""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator

__all__ = ["Random"]


class Random(GramianWeightedAggregator):
    r"""Random loss weighting (Lin et al. 2021, Algorithm 2): ``d = Jᵀ softmax(z)`` with a fresh
    ``z ~ N(0, I_m)`` drawn at every call from torch's global generator (seed it with
    ``torch.manual_seed`` for reproducibility; draws match TorchJD's ``Random`` for the same
    seed, dtype and device).

    Properties: weighted (positive weights summing to 1), linear under scaling in distribution;
    not non-conflicting.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> w = Random().weights(torch.eye(3))
    >>> bool((w > 0).all()), round(float(w.sum()), 6)
    (True, 1.0)
    """

    def _weights(self, G: Tensor) -> Tensor:
        z = torch.randn(G.shape[0], device=G.device, dtype=G.dtype)
        return torch.softmax(z, dim=-1)
