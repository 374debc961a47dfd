"""A walk over the autograd graph recorded for a tensor, each node once.

>>> import torch
>>> w = torch.ones(2, requires_grad=True)
>>> sorted(type(n).__name__ for n in nodes((2 * w).sum()))
['AccumulateGrad', 'MulBackward0', 'SumBackward0']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["nodes"]


def nodes(out: torch.Tensor) -> Iterator[Any]:
    """Every node of ``out``'s recorded graph (from ``out.grad_fn`` back to the leaves'
    ``AccumulateGrad``), depth first, each once; nothing for a tensor without a graph. Lazy, so
    a search stops at its first hit."""
    seen: set[object] = set()
    todo = [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        yield node
        todo.extend(nxt for nxt, _ in node.next_functions)
