"""Shortcuts to the Gauss–Newton diagonal for layers whose per-sample gradient has a known
form, from the layer's input ``x`` and its output gradient ``g`` for each loss-Hessian column:

- ``nn.Linear`` on ``(n, d)``: ``g xᵀ`` per sample, so ``Σ_k (g_k xᵀ)² = (Σ_k g_k²)ᵀ (x²)``;
- ``nn.Conv2d`` (one group, zero padding): ``g U`` per sample with ``U`` the unfolded input
  patches, formed per column (``(n, C_out, C_in k k)``) and squared;
- ``nn.LayerNorm`` (affine): ``Σ (g ⊙ x̂)`` over the positions of a sample, ``x̂`` the
  normalised input, and ``Σ g`` for the bias.

>>> sorted(RULES)
['Conv2d', 'LayerNorm', 'Linear']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["RULES", "LayerRule"]


class LayerRule:
    """Accumulates one layer's diagonal over the loss-Hessian columns of a batch."""

    def __init__(self, mod: Any, x: torch.Tensor, out: torch.Tensor) -> None:
        self.mod, self.x, self.out = mod, x.detach(), out
        self.w: torch.Tensor | None = None
        self.b: torch.Tensor | None = None

    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        raise NotImplementedError

    def add(self, g: torch.Tensor) -> None:
        raise NotImplementedError

    def _acc(self, w: torch.Tensor, b: torch.Tensor | None) -> None:
        self.w = w if self.w is None else self.w + w
        if b is not None:
            self.b = b if self.b is None else self.b + b

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.w, self.b


class _Linear(LayerRule):
    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        return x.ndim == 2

    def add(self, g: torch.Tensor) -> None:  # Σ_k g_k², one product at the end
        self.w = g * g if self.w is None else self.w.addcmul_(g, g)

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.w is None:
            return None, None
        return self.w.T @ (self.x ** 2), self.w.sum(dim=0)


class _Conv2d(LayerRule):
    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        size = x.shape[0] * mod.weight.numel() * x.element_size() if x.ndim == 4 else budget
        return (x.ndim == 4 and mod.groups == 1 and mod.padding_mode == "zeros"
                and not isinstance(mod.padding, str) and 3 * size < budget)

    def add(self, g: torch.Tensor) -> None:
        m = self.mod
        if not hasattr(self, "U"):
            self.U = F.unfold(self.x, m.kernel_size, m.dilation, m.padding, m.stride)
        gs = g.flatten(2)  # (n, C_out, L)
        per = torch.bmm(gs, self.U.transpose(1, 2))  # (n, C_out, C_in k k)
        self._acc((per * per).sum(dim=0).view(m.weight.shape), (gs.sum(dim=2) ** 2).sum(dim=0))


class _LayerNorm(LayerRule):
    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        return mod.elementwise_affine and x.ndim > len(mod.normalized_shape)

    def add(self, g: torch.Tensor) -> None:
        m = self.mod
        if not hasattr(self, "xhat"):
            self.xhat = F.layer_norm(self.x, m.normalized_shape, None, None, m.eps)
        inner = tuple(range(1, g.ndim - len(m.normalized_shape)))  # positions of a sample
        gw, gb = g * self.xhat, g
        if inner:
            gw, gb = gw.sum(dim=inner), gb.sum(dim=inner)
        self._acc((gw * gw).sum(dim=0), (gb * gb).sum(dim=0))


RULES: dict[str, type[LayerRule]] = {"Linear": _Linear, "Conv2d": _Conv2d,
                                     "LayerNorm": _LayerNorm}
_TYPES = {nn.Linear: "Linear", nn.Conv2d: "Conv2d", nn.LayerNorm: "LayerNorm"}


def rule_for(mod: nn.Module) -> type[LayerRule] | None:
    name = _TYPES.get(type(mod))
    return None if name is None else RULES[name]
