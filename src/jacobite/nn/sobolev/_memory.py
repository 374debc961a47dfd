"""How many Jacobian products fit in one batched pass under the memory budget.

All products of a loss are batched into one pass (``m`` cotangents in one batched backward,
or the batch repeated once per direction in one forward pass) unless that pass would hold more
than the memory budget (:func:`jacobite.config.get_memory_budget`); then they run in chunks.
The bytes a product needs are estimated from the tensors the model's forward pass saves for
backward, measured on one sample and cached per module and input signature. The chunk size
changes the speed and the peak memory, never the value.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ... import config
from ...dense._saved import saved_bytes


def row_bytes(model: Callable[..., torch.Tensor], x: torch.Tensor,
              run: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Bytes the forward pass of one sample of the batch ``x`` saves for backward."""
    return saved_bytes(model, x[:1], run)


def chunk(passes: int, per_pass: int) -> int:
    """Products per batched pass: all ``passes`` when they fit the budget, else as many as do
    (at least one)."""
    if passes <= 1:
        return max(passes, 1)
    return max(1, min(passes, config.get_memory_budget() // max(per_pass, 1)))
