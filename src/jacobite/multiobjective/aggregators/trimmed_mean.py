"""TrimmedMean: the coordinate-wise trimmed mean of the gradients (Byzantine-robust)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ... import _validate
from ...errors import ShapeError
from ._base import Aggregator, Option

__all__ = ["TrimmedMean"]


class TrimmedMean(Aggregator):
    r"""Coordinate-wise trimmed mean (Yin et al. 2018): in each column of ``J`` drop the
    ``trim_number`` largest and smallest entries and average the ``m − 2·trim_number`` left.

    Needs ``J`` itself (not Gramian-weighted). Properties: positively homogeneous
    (``A(cJ) = c A(J)`` for ``c > 0``); neither weighted nor non-conflicting.

    >>> import torch
    >>> TrimmedMean(trim_number=1)(torch.tensor([[1.0], [2.0], [100.0]]))
    tensor([2.])
    """

    trim_number = Option(_validate.nonnegative_int)

    def __init__(self, trim_number: int) -> None:
        self.trim_number = trim_number

    def __str__(self) -> str:
        return f"TM{self.trim_number}"

    def _params(self) -> dict[str, Any]:
        return {"trim_number": self.trim_number}

    def forward(self, J: Tensor) -> Tensor:
        m = J.shape[0]
        keep = m - 2 * self.trim_number
        if keep < 1:
            raise ShapeError(f"TrimmedMean(trim_number={self.trim_number}) needs at least "
                             f"{2 * self.trim_number + 1} rows, got {m}; lower trim_number")
        return torch.sort(J, dim=0).values[self.trim_number:self.trim_number + keep].mean(0)
