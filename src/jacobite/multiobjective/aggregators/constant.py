"""Constant: a fixed linear combination of the gradients."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ...errors import ShapeError
from ._base import GramianWeightedAggregator, Option, check_vector

__all__ = ["Constant"]


def _weights_vector(value: Tensor, name: str) -> Tensor:
    if value is None:
        raise ShapeError("Constant needs a 1-D tensor of weights, one per objective")
    return check_vector(value, "weights")


class Constant(GramianWeightedAggregator):
    r"""``d = Jᵀ w`` with weights ``w`` fixed at construction (one per objective).

    Properties: linear under scaling, weighted; non-conflicting only by luck.

    >>> import torch
    >>> Constant(torch.tensor([1.0, 2.0]))(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([1., 2.])
    """

    weights_ = Option(_weights_vector)
    _str_option = "weights_"

    def __init__(self, weights: Tensor) -> None:
        self.weights_ = weights

    def _params(self) -> dict[str, Any]:
        return {"weights": self.weights_}

    def _weights(self, G: Tensor) -> Tensor:
        check_vector(self.weights_, "weights", G.shape[0])
        return self.weights_.to(dtype=G.dtype, device=G.device)
