"""Custom ``torch.autograd.Function``s shared by the dense and analysis tests: ``t²`` with its
own derivative rules, with or without a vmap rule, counting how often those rules run; ``z³`` and
``z + z³/3`` with a backward only, whose pullback vmap can or cannot batch."""

from __future__ import annotations

from typing import Any

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


class PlusCube(torch.autograd.Function):
    """``z ↦ z + z³ / 3`` (Jacobian ``diag(1 + z²)``, log-determinant ``Σ log1p(z²)``) with a
    backward but no forward-mode rule and no vmap rule."""

    @staticmethod
    def forward(z: torch.Tensor) -> torch.Tensor:
        return z + z ** 3 / 3

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return g * (1 + z * z)


def _read(g: torch.Tensor) -> None:
    """Read a value of ``g`` into Python, which vmap cannot batch."""
    if bool(torch.isnan(g).any()):
        raise ValueError("NaN cotangent")


class ReadingPlusCube(PlusCube):
    """``PlusCube`` whose backward reads a value: vmap over its pullback fails."""

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        _read(g)
        return PlusCube.backward(ctx, g)


class ReadingCube(torch.autograd.Function):
    """``z ↦ z³`` (Jacobian ``diag(3z²)``) whose backward reads a value: vmap over its pullback
    fails."""

    @staticmethod
    def forward(z: torch.Tensor) -> torch.Tensor:
        return z ** 3

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        _read(g)
        return 3 * g * z * z
