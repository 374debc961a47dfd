"""Custom ``torch.autograd.Function``s shared by the dense tests: ``t²`` with its own derivative
rules, with or without a vmap rule, counting how often those rules run."""

from __future__ import annotations

import torch


class Square(torch.autograd.Function):
    """``t²`` with a backward and a jvp, and a generated vmap rule; ``calls`` counts how often
    the derivative rules run (once per call, batched or not)."""

    generate_vmap_rule = True
    calls = 0

    @staticmethod
    def forward(t):
        return t * t

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        Square.calls += 1
        return 2 * ctx.saved_tensors[0] * g

    @staticmethod
    def jvp(ctx, t):
        Square.calls += 1
        return 2 * ctx.saved_tensors[0] * t


class NoVmapSquare(Square):
    """The same rules without a vmap rule: vmap over it fails."""

    generate_vmap_rule = False
