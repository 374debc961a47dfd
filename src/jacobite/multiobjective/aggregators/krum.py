"""Krum / Multi-Krum: the gradients closest to their neighbours (Byzantine-robust)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ... import _validate
from ...errors import ShapeError
from ._base import GramianWeightedAggregator, Option

__all__ = ["Krum"]


class Krum(GramianWeightedAggregator):
    r"""Krum (Blanchard et al. 2017) for ``f = n_byzantine`` adversarial rows: the score of row
    ``i`` is the sum of its ``m − f − 2`` smallest distances ``‖gᵢ − gⱼ‖`` (``j ≠ i``, from
    ``Gᵢᵢ + Gⱼⱼ − 2Gᵢⱼ``); the update is the mean of the ``n_selected`` rows of lowest score.

    Properties: linear under scaling, weighted (uniform on the selected rows); not
    non-conflicting. Needs ``m ≥ n_byzantine + 3`` and ``m ≥ n_selected``.

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [1.1, 0.0], [0.9, 0.1], [-50.0, 9.0]])
    >>> Krum(n_byzantine=1)(J)
    tensor([1., 0.])
    """

    n_byzantine = Option(_validate.nonnegative_int)
    n_selected = Option(_validate.positive_int)

    def __init__(self, n_byzantine: int, n_selected: int = 1) -> None:
        self.n_byzantine = n_byzantine
        self.n_selected = n_selected

    def __str__(self) -> str:
        return f"Krum{self.n_byzantine}-{self.n_selected}"

    def _params(self) -> dict[str, Any]:
        return {"n_byzantine": self.n_byzantine, "n_selected": self.n_selected}

    def _weights(self, G: Tensor) -> Tensor:
        m = G.shape[0]
        if m < self.n_byzantine + 3 or m < self.n_selected:
            raise ShapeError(f"Krum(n_byzantine={self.n_byzantine}, n_selected="
                             f"{self.n_selected}) needs at least "
                             f"{max(self.n_byzantine + 3, self.n_selected)} rows, got {m}; "
                             "lower n_byzantine / n_selected or pass more objectives")
        sq = G.diagonal()
        dist = (sq[:, None] + sq[None, :] - 2 * G).clamp_min(0.0).sqrt()
        k = m - self.n_byzantine - 2
        nearest = torch.topk(dist, k + 1, dim=1, largest=False).values[:, 1:]  # drop self (0)
        chosen = torch.topk(nearest.sum(1), self.n_selected, largest=False).indices
        w = torch.zeros(m, dtype=G.dtype, device=G.device)
        w[chosen] = 1.0 / self.n_selected
        return w
