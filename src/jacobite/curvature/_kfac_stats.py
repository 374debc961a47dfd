"""The statistics of K-FAC: for every ``nn.Linear`` layer whose weight or bias is differentiated,
its inputs ``ã`` (with a 1 appended for the bias) from forward hooks and the gradients ``g`` of
each sample's loss in its output from one backward pass per drawn label.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 2))
>>> ps = Params.of(model, None)
>>> [(L.name, L.d_out, L.d_in) for L in linear_layers(model, ps)]
[('0', 2, 3)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedOperationError
from ._loss import LossCurvature
from ._setup import Data, Params, forward
from .fisher import _residuals, _sample_scale

__all__ = ["LinearLayer", "collect", "linear_layers"]


@dataclass(frozen=True)
class LinearLayer:
    """A Linear layer's place in the parameter vector: slices of its weight (row-major) and
    bias, ``None`` where that parameter is not differentiated."""

    name: str
    module: nn.Linear
    d_out: int
    d_in: int
    w: slice | None
    b: slice | None


def linear_layers(model: nn.Module, ps: Params) -> list[LinearLayer]:
    offsets: dict[str, slice] = {}
    start = 0
    for k, v in zip(ps.names, ps.values, strict=True):
        offsets[k] = slice(start, start + v.numel())
        start += v.numel()
    layers, covered = [], set()
    for name, mod in model.named_modules():
        if type(mod) is not nn.Linear:
            continue
        prefix = f"{name}." if name else ""
        w, b = offsets.get(prefix + "weight"), offsets.get(prefix + "bias")
        if w is None and b is None:
            continue
        covered |= {prefix + "weight", prefix + "bias"}
        layers.append(LinearLayer(name, mod, mod.out_features, mod.in_features, w, b))
    other = [k for k in ps.names if k not in covered]
    if other:
        raise UnsupportedOperationError(
            f"K-FAC covers nn.Linear layers, but the parameters {other} belong to other layers; "
            "pass params= naming only Linear weights and biases (e.g. params=['0.weight', "
            "'0.bias'])")
    return layers


def _augmented(x: torch.Tensor, layer: LinearLayer) -> torch.Tensor:
    parts = [x] if layer.w is not None else []
    if layer.b is not None:
        parts.append(x.new_ones(x.shape[0], 1))
    return torch.cat(parts, dim=1)


def collect(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data, kind: str,
            samples: int, seed: int) -> list[tuple[LinearLayer, torch.Tensor, torch.Tensor]]:
    """``(layer, A, G)`` per layer over all batches (see :mod:`jacobite.curvature.kfac`)."""
    layers = linear_layers(model, ps)
    A = {L.name: torch.zeros(0) for L in layers}
    G = {L.name: torch.zeros(0) for L in layers}
    n_total, weight_total = 0, 0
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(mod: nn.Module, args: Any, out: torch.Tensor, name: str) -> None:
        if name in seen:
            raise UnsupportedOperationError(
                f"the Linear layer {name!r} is called more than once per forward pass; "
                "K-FAC needs one call per layer: leave its parameters out with params=")
        if args[0].ndim != 2:
            raise UnsupportedOperationError(
                f"the Linear layer {name!r} gets inputs of shape {tuple(args[0].shape)}; "
                "K-FAC here needs inputs (n, d): leave its parameters out with params=")
        seen[name] = (args[0].detach(), out)

    for i, (X, y) in enumerate(batches):
        seen.clear()
        handles = [L.module.register_forward_hook(
            lambda m, a, o, name=L.name: hook(m, a, o, name)) for L in layers]
        try:
            with torch.enable_grad():
                leaves = {k: t.detach().requires_grad_() for k, t in ps.primals().items()}
                out = forward(model, ps, leaves, X)
        finally:
            for h in handles:
                h.remove()
        if i == 0:
            lc.check(out.detach(), y)
        unused = [L.name for L in layers if L.name not in seen]
        if unused:
            raise UnsupportedOperationError(
                f"the Linear layer(s) {unused} are not called by the forward pass; leave their "
                "parameters out with params=")
        R = _residuals(lc, kind, out.detach(), y, samples, seed, i)
        c = _sample_scale(lc, out) / R.shape[0]
        outs = [seen[L.name][1] for L in layers]
        for s in range(R.shape[0]):
            grads = torch.autograd.grad(out, outs, R[s], retain_graph=s + 1 < R.shape[0])
            for L, g in zip(layers, grads, strict=True):
                gg = c * (g.T @ g)
                G[L.name] = gg if G[L.name].numel() == 0 else G[L.name] + gg
        for L in layers:
            a = _augmented(seen[L.name][0], L)
            aa = a.T @ a
            A[L.name] = aa if A[L.name].numel() == 0 else A[L.name] + aa
        n_total += int(out.shape[0])
        weight_total += lc.weight(out)
    scale = 1.0 / weight_total if lc.mean else 1.0
    return [(L, A[L.name] / n_total, G[L.name] * scale) for L in layers]
