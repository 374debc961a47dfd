"""Many vector–Jacobian products from one forward pass: the pullback of ``f`` at a batch,
applied to stacks of cotangents in chunks, batched by ``vmap`` where the backward pass allows
(else one at a time). Shared by the exact log-det and the exact / estimated divergence.

>>> import torch
>>> x = torch.ones(2, 3, dtype=torch.float64)
>>> _, back = torch.func.vjp(lambda v: 2 * v, x)
>>> U = torch.eye(3, dtype=torch.float64)[:, None, :].expand(3, 2, 3)
>>> many_vjps(lambda u: back(u)[0], x, 2)(U)[:, 0].tolist()
[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["many_vjps"]


def many_vjps(back: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V (k, *x.shape) ↦ (vᵢᵀ J)ᵢ`` for the pullback ``back: u ↦ uᵀ J`` at ``x``, ``size``
    cotangents per batched pass."""
    batched = torch.func.vmap(back)

    def many(U: torch.Tensor) -> torch.Tensor:
        try:
            return batched(U)
        except RuntimeError as exc:  # a backward pass that vmap cannot batch: one at a time
            if "vmap" not in str(exc) and "atching rule" not in str(exc):
                raise
            return torch.stack([back(u) for u in U])

    def apply(V: torch.Tensor) -> torch.Tensor:
        parts = [many(Vc.reshape(Vc.shape[0], *x.shape).to(x.dtype)) if Vc.shape[0] > 1
                 else back(Vc.reshape(x.shape).to(x.dtype)).unsqueeze(0)
                 for Vc in V.split(size)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return out.reshape(V.shape)

    return apply
