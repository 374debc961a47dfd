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

_CACHE: dict[tuple[object, ...], int] = {}
_CACHE_SIZE = 64


def _key(model: Callable[..., torch.Tensor], x: torch.Tensor) -> tuple[object, ...] | None:
    if not isinstance(model, torch.nn.Module):
        return None  # a function may be a fresh closure on every call: measured each time
    return (id(model), tuple(x.shape[1:]), x.dtype, x.device)


def row_bytes(model: Callable[..., torch.Tensor], x: torch.Tensor,
              run: Callable[[torch.Tensor], torch.Tensor]) -> int:
    """Bytes the forward pass of one sample saves for backward (at least its input's)."""
    key = _key(model, x)
    if key is not None and key in _CACHE:
        return _CACHE[key]
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    one = x[:1].detach().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(one)
    size = max(total, one.numel() * one.element_size())
    if key is not None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = size
    return size


def chunk(passes: int, per_pass: int) -> int:
    """Products per batched pass: all ``passes`` when they fit the budget, else as many as do
    (at least one)."""
    if passes <= 1:
        return max(passes, 1)
    return max(1, min(passes, config.get_memory_budget() // max(per_pass, 1)))
