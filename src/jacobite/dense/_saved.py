"""The bytes one sample's forward pass saves for backward: the unit in which per-sample
products (batched JVPs / VJPs over a whole batch) are sized under the memory budget.

Measured once by running the function on one sample under ``saved_tensors_hooks``, and cached
per module and input signature (a plain function may be a fresh closure on every call, so it is
measured each time). An estimate: it sets chunk sizes, never results.

>>> import torch
>>> net = torch.nn.Linear(4, 3).double()
>>> saved_bytes(net, torch.zeros(1, 4, dtype=torch.float64), net) >= 4 * 8
True
>>> chunk(4, 10)  # four products of 10 bytes fit the default budget together
4
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import config

__all__ = ["chunk", "saved_bytes"]

_CACHE: dict[tuple[object, ...], int] = {}
_CACHE_SIZE = 64


def saved_bytes(owner: object, one: torch.Tensor,
                run: Callable[[torch.Tensor], object]) -> int:
    """Bytes ``run(one)`` saves for backward (at least ``one``'s own), for the input ``one``
    (one sample, shaped as ``run`` expects it); cached when ``owner`` is an ``nn.Module``."""
    key = (id(owner), tuple(one.shape), one.dtype, one.device) \
        if isinstance(owner, torch.nn.Module) else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    leaf = one.detach().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(leaf)
    size = max(total, leaf.numel() * leaf.element_size())
    if key is not None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = size
    return size


def chunk(count: int, per_item: int, budget: int | None = None) -> int:
    """Products per batched pass: all ``count`` when they fit ``budget`` bytes (default
    :func:`jacobite.config.get_memory_budget`), else as many as do (at least one)."""
    if count <= 1:
        return max(count, 1)
    if budget is None:
        budget = config.get_memory_budget()
    return max(1, min(count, budget // max(per_item, 1)))
