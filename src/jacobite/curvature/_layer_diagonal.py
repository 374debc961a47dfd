"""Shortcuts to the Gauss–Newton diagonal for layers whose per-sample gradient has a known
form, from the layer's input ``x`` and its output gradient ``g`` for each loss-Hessian column:

- ``nn.Linear`` on ``(n, d)``: ``g xᵀ`` per sample, so ``Σ_k (g_k xᵀ)² = (Σ_k g_k²)ᵀ (x²)``;
- ``nn.Conv2d`` (one group, zero padding): ``g U`` per sample with ``U`` the unfolded input
  patches, formed per column (``(n, C_out, C_in k k)``) and squared;
- ``nn.LayerNorm`` (affine): ``Σ (g ⊙ x̂)`` over the positions of a sample, ``x̂`` the
  normalised input, and ``Σ g`` for the bias.

The output gradients come from backward passes that need no parameter gradient, only input
gradients. :class:`InputGradientConv` computes a stride-1 convolution's input gradient as a
forward convolution with the flipped kernel, which torch's CPU backward takes about twice as
long for.

>>> sorted(RULES)
['Conv2d', 'LayerNorm', 'Linear']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["RULES", "InputGradientConv", "LayerRule", "rule_for"]


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


def unfold(x: torch.Tensor, mod: nn.Conv2d) -> torch.Tensor:
    """``F.unfold(x, ...)`` of ``mod``'s patches, ``(n, C_in k k, L)``, as one copy of a
    strided view of the padded input (``F.unfold`` is several times slower on CPU; so is a
    copy into the ``(n, L, C_in k k)`` layout, which reads the input out of order).

    >>> conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2)
    >>> x = torch.randn(4, 2, 7, 7)
    >>> torch.equal(unfold(x, conv), F.unfold(x, 3, 2, 1, 2))
    True
    """
    (kh, kw), (sh, sw), (dh, dw) = mod.kernel_size, mod.stride, mod.dilation
    ph, pw = _pair(mod.padding) or (0, 0)  # numeric: accepts() refuses strings
    xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
    n, c, H, W = xp.shape
    oh, ow = (H - dh * (kh - 1) - 1) // sh + 1, (W - dw * (kw - 1) - 1) // sw + 1
    s = xp.stride()
    view = xp.as_strided((n, c, kh, kw, oh, ow),
                         (s[0], s[1], dh * s[2], dw * s[3], sh * s[2], sw * s[3]))
    return view.reshape(n, c * kh * kw, oh * ow)


class _Conv2d(LayerRule):
    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        size = x.shape[0] * mod.weight.numel() * x.element_size() if x.ndim == 4 else budget
        return (x.ndim == 4 and mod.groups == 1 and mod.padding_mode == "zeros"
                and not isinstance(mod.padding, str) and 3 * size < budget)

    def add(self, g: torch.Tensor) -> None:
        if not hasattr(self, "U"):
            self.U = unfold(self.x, self.mod)  # (n, C_in k k, L)
        gs = g.flatten(2)  # (n, C_out, L)
        per = torch.bmm(gs, self.U.transpose(1, 2))  # per-sample gradients, (n, C_out, C_in k k)
        b = gs.sum(dim=2)
        self._acc((per * per).sum(dim=0).view(self.mod.weight.shape), (b * b).sum(dim=0))


class _LayerNorm(LayerRule):
    g2: torch.Tensor | None = None  # Σ_k g_k² where a sample has one position

    @staticmethod
    def accepts(mod: Any, x: torch.Tensor, out: torch.Tensor, budget: int) -> bool:
        return mod.elementwise_affine and x.ndim > len(mod.normalized_shape)

    def add(self, g: torch.Tensor) -> None:
        m = self.mod
        inner = tuple(range(1, g.ndim - len(m.normalized_shape)))  # positions of a sample
        if not inner:  # one position: Σ_k (g_k ⊙ x̂)² = (Σ_k g_k²) ⊙ x̂², one product at the end
            self.g2 = g * g if self.g2 is None else self.g2.addcmul_(g, g)
            return
        gw = (g * self._xhat()).sum(dim=inner)
        gb = g.sum(dim=inner)
        self._acc((gw * gw).sum(dim=0), (gb * gb).sum(dim=0))

    def _xhat(self) -> torch.Tensor:
        if not hasattr(self, "xhat"):
            m = self.mod
            self.xhat = F.layer_norm(self.x, m.normalized_shape, None, None, m.eps)
        return self.xhat

    def finish(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.g2 is not None:
            xhat = self._xhat()
            self._acc((self.g2 * (xhat * xhat)).sum(dim=0), self.g2.sum(dim=0))
        return self.w, self.b


RULES: dict[str, type[LayerRule]] = {"Linear": _Linear, "Conv2d": _Conv2d,
                                     "LayerNorm": _LayerNorm}
_TYPES = {nn.Linear: "Linear", nn.Conv2d: "Conv2d", nn.LayerNorm: "LayerNorm"}


def rule_for(mod: nn.Module) -> type[LayerRule] | None:
    name = _TYPES.get(type(mod))
    return None if name is None else RULES[name]


class _FlippedBackward(torch.autograd.Function):
    """A stride-1, one-group ``conv2d`` whose backward gives the input gradient alone, as a
    forward convolution of the output gradient with the flipped, transposed kernel."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
        return F.conv2d(x, w, b, 1, padding, dilation)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        _, w, _, padding, dilation = inputs
        ctx.w, ctx.padding, ctx.dilation = w, padding, dilation

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        w = ctx.w
        (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
        back = (dh * (w.shape[2] - 1) - ph, dw * (w.shape[3] - 1) - pw)
        gx = F.conv2d(g, w.transpose(0, 1).flip(2, 3), None, 1, back, ctx.dilation)
        return gx, None, None, None, None


def _pair(v: Any) -> tuple[int, int] | None:
    if isinstance(v, int):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return int(v[0]), int(v[1])
    return None


class InputGradientConv(torch.overrides.TorchFunctionMode):
    """While active, a ``conv2d`` of an input that requires grad with a kernel (and bias) that
    does not, stride 1, one group and numeric padding at most ``dilation · (k − 1)``, records a
    backward that computes the input gradient as a forward convolution (same values)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.conv2d and not kwargs and len(args) >= 2:
            x, w = args[0], args[1]
            b = args[2] if len(args) > 2 else None
            opts = list(args[3:7])
            stride, padding, dilation, groups = opts + [1, 0, 1, 1][len(opts):]
            st, pad, dil = _pair(stride), _pair(padding), _pair(dilation)
            if (st == (1, 1) and pad is not None and dil is not None and groups == 1
                    and x.requires_grad and not w.requires_grad
                    and (b is None or not b.requires_grad) and w.ndim == 4
                    and all(p <= d * (k - 1)
                            for p, d, k in zip(pad, dil, w.shape[2:], strict=True))):
                return _FlippedBackward.apply(x, w, b, pad, dil)
        return func(*args, **kwargs)
