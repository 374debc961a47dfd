"""Battery cases bound to their point: ``fn(x)`` of the differentiated input alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tests.battery import CASES, Case, diff_inputs

from ._harness import Tree, to

BY_NAME: dict[str, Case] = {c.name: c for c in CASES}


def bind(case: Case, device: str = "cpu", seed: int = 0
         ) -> tuple[Callable[..., Any], Callable[[Tree], tuple[Any, ...]], Tree]:
    """``(case.fn, args_at, x)``: ``args_at(x)`` rebuilds the argument tuple around ``x``."""
    args = to(case.args(seed), device)
    x = diff_inputs(case, args)

    def args_at(new: Tree) -> tuple[Any, ...]:
        full = list(args)
        if isinstance(case.argnums, tuple):
            for i, sub in zip(case.argnums, new, strict=True):
                full[i] = sub
        else:
            full[case.argnums] = new
        return tuple(full)

    return case.fn, args_at, x


class _LoopOnlySin(torch.autograd.Function):
    """``sin`` whose derivative rules read a Python number off the incoming vector: correct
    for one JVP or VJP at a time, refused by ``vmap`` (``.item()`` on a batched tensor)."""

    @staticmethod
    def forward(x):
        return torch.sin(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.cos(x) * (1.0 if float(g.abs().sum()) >= 0 else 0.0)

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return t * torch.cos(x) * (1.0 if float(t.abs().sum()) >= 0 else 0.0)


def loop_only(x: torch.Tensor) -> torch.Tensor:
    return _LoopOnlySin.apply(x) * 2.0
