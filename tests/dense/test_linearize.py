"""linearize: the double-VJP J v is checked against a fresh JVP, never silently wrong."""

from __future__ import annotations

import torch

import jacobite


class _Cube(torch.autograd.Function):
    """``x³`` whose backward has no double backward (once_differentiable), with a JVP."""

    @staticmethod
    def forward(x):
        return x ** 3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * t


def test_once_differentiable_backward_never_gives_a_wrong_mv() -> None:
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    op = jacobite.linearize(_Cube.apply, x)
    ones = torch.ones(3, dtype=torch.float64)
    torch.testing.assert_close(op.mv(ones), 3 * x ** 2)
    torch.testing.assert_close(op.rmv(ones), 3 * x ** 2)
