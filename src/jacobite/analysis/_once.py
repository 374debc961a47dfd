"""Differentiable once: exact first derivatives, a typed error instead of a partial second one.

A singular value recomputed as ``σ = uᵀ J v`` from constant vectors has the exact first
derivative ``uᵀ dJ v``, but differentiating that again misses the vectors' own derivatives — a
silently partial second derivative. :func:`once` adds to ``s`` a term that is zero in value and
in first derivative, and whose derivative carries a node that raises
:class:`~jacobite.errors.UnsupportedOperationError` as soon as anything differentiates through
it: a second derivative by autograd (``create_graph=True``) or by nested ``torch.func``
transforms (``hessian``, ``jacrev(jacrev)``, ``jacfwd(jacrev)``, ``jacrev(jacfwd)``, and
``jacfwd(jacfwd)``, which torch would otherwise let through as zero).

>>> import torch
>>> x = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
>>> y = once(x ** 3, "no second derivative here")
>>> (g,) = torch.autograd.grad(y, x, create_graph=True)
>>> g.item()
12.0
>>> try:
...     torch.autograd.grad(g, x)
... except Exception as exc:
...     print(type(exc).__name__)
UnsupportedOperationError
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import UnsupportedOperationError

__all__ = ["once"]


class _Refuse(torch.autograd.Function):
    """The identity, whose derivative (either mode) raises the stored message."""

    generate_vmap_rule = True

    @staticmethod
    def forward(t: torch.Tensor, msg: str) -> torch.Tensor:
        return t.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.msg = inputs[1]

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        raise UnsupportedOperationError(ctx.msg)

    @staticmethod
    def jvp(ctx: Any, t: torch.Tensor, _msg: Any) -> torch.Tensor:
        raise UnsupportedOperationError(ctx.msg)


class _Guard(torch.autograd.Function):
    """``0 · s`` whose derivative ``Refuse(0 · s) · ds`` is zero and refuses differentiation."""

    generate_vmap_rule = True

    @staticmethod
    def forward(s: torch.Tensor, msg: str) -> torch.Tensor:
        return torch.zeros_like(s)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.msg = inputs[1]
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        (s,) = ctx.saved_tensors
        return _Refuse.apply(s * 0, ctx.msg) * g, None

    @staticmethod
    def jvp(ctx: Any, t: torch.Tensor, _msg: Any) -> torch.Tensor:
        if _validate.transform_levels("jvp") > 1:  # torch would drop the outer
            raise UnsupportedOperationError(ctx.msg)
        (s,) = ctx.saved_tensors
        return _Refuse.apply(s * 0, ctx.msg) * t


def once(s: torch.Tensor, msg: str) -> torch.Tensor:
    """``s`` itself, differentiable once; a second derivative raises ``msg`` (typed)."""
    return s + _Guard.apply(s, msg)
