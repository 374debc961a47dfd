"""Per-example Gramians of dense layers from two backward passes, whatever the batch size.

With one objective per example, example b's loss reaches a dense layer only through the rows of
its input that b owns (``r`` consecutive rows: 1 for a vector input, the tokens of a sequence),
so one backward pass of ``Σ_b ℓ_b`` already holds every example's output gradient: ``G_b`` is the
sum's gradient ``Ĝ`` restricted to b's rows. With ``X̃ = [X, 1]`` the layer's share of the
Gramian is then::

    G_layer[a, b] = Σ_{s ∈ a, t ∈ b} ⟨X̃_s, X̃_t⟩ ⟨Ĝ_s, Ĝ_t⟩

— ``(K ⊙ S)`` summed over row blocks, ``K = X̃X̃ᵀ``, ``S = ĜĜᵀ`` (R² (d_in + d_out)
multiply-adds; the per-example weight gradients, ``R d_in d_out`` + ``B² d_in d_out``, where
that is cheaper). This is the "ghost norm" trick of per-example gradient clipping, extended to
inner products.

Which rows an example owns is not read off the graph; it is *checked*: a second backward pass of
``Σ_b c_b ℓ_b`` with random weights ``c`` must give ``c_b Ĝ_s`` on every row s of example b
(backpropagation is linear), which fails by far more than round-off wherever a row mixes
examples or the layout differs. Then, and where the pieces would not fit the memory budget,
the caller falls back to one backward pass per example.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge

from .. import config
from ._layers import DenseLayer
from ._params import gram

__all__ = ["GhostPiece", "ghost_pieces"]


def _ghost_cheaper(B: int, R: int, d_in: int, d_out: int) -> bool:
    """Multiply-adds of ``K ⊙ S`` against the per-example weight gradients and their Gram."""
    return R * R * (d_in + d_out) <= R * d_in * d_out + B * B * d_in * d_out


class GhostPiece:
    """One dense layer's B × B share of the per-example Gramian and, given weights, its update."""

    def __init__(self, layer: DenseLayer, Gsum: Tensor, B: int) -> None:
        self.layer = layer
        R, d_out = Gsum.shape
        r = R // B
        X = layer.x.to(Gsum.dtype)
        if layer.bias is not None:
            X = torch.cat([X, X.new_ones(R, 1)], dim=1)
        d_in = X.shape[1]
        if _ghost_cheaper(B, R, d_in, d_out):
            KS = (X @ X.T) * (Gsum @ Gsum.T)
            G = KS.view(B, r, B, r).sum((1, 3)) if r > 1 else KS
        else:  # the per-example gradients, (B, d_in·d_out)
            P = torch.einsum("bti,bto->bio", X.view(B, r, d_in), Gsum.view(B, r, d_out))
            G = gram(P.reshape(B, -1))
        self.gramian = (G + G.T) / 2
        self.Gsum, self.X, self.r = Gsum, X, r

    def update(self, w: Tensor) -> list[Tensor]:
        rows = w.to(self.Gsum.dtype).repeat_interleave(self.r)[:, None] * self.Gsum
        if self.layer.bias is None:
            return [self.layer.weight_grad(self.X, rows)]
        full = rows.T @ self.X  # (d_out, d_in + 1)
        return [full[:, :-1].T if self.layer.transposed else full[:, :-1], full[:, -1]]


def _owned(Gsum: Tensor, Gc: Tensor, c: Tensor, B: int) -> Tensor:
    """Whether every row s of ``Gc`` is ``c_b`` times the same row of ``Gsum`` (b = s // r), as a
    0-d bool tensor (no wait for the device: the layers' answers are read together)."""
    R = Gsum.shape[0]
    if R % B or R == 0:
        return torch.tensor(R == 0, device=Gsum.device)
    tol = torch.finfo(Gsum.dtype).eps ** 0.5
    expect = c.to(Gsum.dtype).repeat_interleave(R // B)[:, None] * Gsum
    err = (Gc - expect).norm(dim=1)
    scale = Gc.norm(dim=1) + expect.norm(dim=1)
    floor = torch.finfo(Gsum.dtype).eps * scale.max()
    return (err <= tol * scale + floor).all()


def ghost_pieces(losses: Tensor, layers: list[DenseLayer]) -> list[GhostPiece] | None:
    """The per-example pieces of ``layers`` for the B per-example ``losses`` (graph kept), or
    None when a layer's rows are not owned example by example or the pieces exceed the budget."""
    B = losses.shape[0]
    budget = config.get_memory_budget()
    need = 0
    for ly in layers:
        R, d_in = ly.x.shape
        d_out = ly.d_out
        need += 2 * min(R * R, B * d_in * d_out) + R * d_out
    if need * losses.element_size() > budget:
        return None
    edges: list[Any] = [GradientEdge(ly.node, 0) for ly in layers]
    gen = torch.Generator().manual_seed(0)
    c = (0.5 + torch.rand(B, generator=gen, dtype=torch.float64)).to(losses.device, losses.dtype)
    sums = torch.autograd.grad(losses, edges, torch.ones_like(losses), retain_graph=True)
    probes = torch.autograd.grad(losses, edges, c, retain_graph=True)
    owned = [_owned(s, p, c, B) for s, p in zip(sums, probes, strict=True)]
    if not bool(torch.stack(owned).all()):
        return None
    return [GhostPiece(ly, s, B) for ly, s in zip(layers, sums, strict=True)]
