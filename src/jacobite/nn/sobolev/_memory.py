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

from ...dense._saved import chunk as chunk  # products per batched pass under the budget
from ...dense._saved import saved_bytes


def row_bytes(model: Callable[..., torch.Tensor], x: torch.Tensor,
              run: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Bytes the forward pass of one sample of the batch ``x`` saves for backward."""
    return saved_bytes(model, x[:1], run)
