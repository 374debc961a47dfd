"""The statistics of K-FAC: for every ``nn.Linear`` or ``nn.Conv2d`` layer whose weight or bias
is differentiated, its inputs ``ã`` (with a 1 appended for the bias; a convolution's unfolded
patches) from forward hooks and the gradients ``g`` of each sample's loss in its output from one
backward pass per drawn label. A layer applied at ``T`` positions per sample (a Linear layer on
``(n, ..., d)``, a convolution's output pixels) counts each position as a row:
``A = (1/(N T)) Σ_{n,t} ã ãᵀ`` and ``G = c Σ_{n,t} g gᵀ``.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(),
...                             torch.nn.Linear(8, 2))
>>> ps = Params.of(model, None)
>>> [(L.name, L.d_out, L.d_in) for L in layers_of(model, ps)]
[('0', 2, 9), ('2', 2, 8)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..distributed import Group, guarded_all_reduce
from ..errors import ShapeError, UnsupportedOperationError
from ._loss import LossCurvature
from ._setup import Data, Params, hooked_forward
from ._sharded import draw_key, global_count
from .fisher import _residuals, _sample_scale

__all__ = ["Layer", "Residuals", "Sums", "collect", "drawn", "layers_of"]

_FIX = "leave its parameters out with params="


@dataclass(frozen=True)
class Layer:
    """A layer's place in the parameter vector: slices of its weight (row-major, as
    ``(d_out, d_in)``) and bias, ``None`` where that parameter is not differentiated."""

    name: str
    module: nn.Linear | nn.Conv2d
    d_out: int
    d_in: int
    w: slice | None
    b: slice | None


def _conv_ok(name: str, mod: nn.Conv2d) -> None:
    why = ("groups > 1" if mod.groups != 1 else
           f"padding_mode={mod.padding_mode!r}" if mod.padding_mode != "zeros" else
           f"padding={mod.padding!r}" if isinstance(mod.padding, str) and mod.padding != "valid"
           else None)
    if why:
        raise UnsupportedOperationError(
            f"K-FAC covers Conv2d layers with one group, zero padding given as numbers; layer "
            f"{name!r} has {why}: {_FIX}")


def layers_of(model: nn.Module, ps: Params) -> list[Layer]:
    offsets: dict[str, slice] = {}
    start = 0
    for k, v in zip(ps.names, ps.values, strict=True):
        offsets[k] = slice(start, start + v.numel())
        start += v.numel()
    layers, covered = [], set()
    for name, mod in model.named_modules():
        if type(mod) not in (nn.Linear, nn.Conv2d):
            continue
        prefix = f"{name}." if name else ""
        w, b = offsets.get(prefix + "weight"), offsets.get(prefix + "bias")
        if w is None and b is None:
            continue
        covered |= {prefix + "weight", prefix + "bias"}
        if isinstance(mod, nn.Conv2d):
            _conv_ok(name, mod)
            d_out, d_in = mod.out_channels, mod.weight[0].numel()
        else:
            d_out, d_in = mod.out_features, mod.in_features
        layers.append(Layer(name, mod, d_out, d_in, w, b))
    other = [k for k in ps.names if k not in covered]
    if other:
        raise UnsupportedOperationError(
            f"K-FAC covers nn.Linear and nn.Conv2d layers, but the parameters {other} belong to "
            "other layers; pass params= naming only their weights and biases (e.g. "
            "params=['0.weight', '0.bias'])")
    return layers


def _rows(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as ``(n, T, d_in)``: one row per position."""
    mod = layer.module
    if isinstance(mod, nn.Conv2d):
        padding: int | tuple[int, ...] = 0 if isinstance(mod.padding, str) else mod.padding
        patches = F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=padding,
                           stride=mod.stride)  # (n, d_in, T)
        return patches.transpose(1, 2)
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _out_rows(layer: Layer, g: torch.Tensor) -> torch.Tensor:
    """The output gradient as ``(n, T, d_out)``."""
    if isinstance(layer.module, nn.Conv2d):
        return g.flatten(2).transpose(1, 2)
    return g.reshape(g.shape[0], -1, g.shape[-1])


def _augmented(a: torch.Tensor, layer: Layer) -> torch.Tensor:
    parts = [a] if layer.w is not None else []
    if layer.b is not None:
        parts.append(a.new_ones(a.shape[0], 1))
    return torch.cat(parts, dim=1)


def _counts(lc: LossCurvature, out: torch.Tensor, y: Any
            ) -> tuple[torch.Tensor | None, float, float]:
    """A batch's samples that count (a boolean ``(n,)`` mask, ``None`` for all), its weight in
    the mean's denominator and the factor of its per-sample gradients' outer products.
    Cross-entropy with ``ignore_index``: a sample counts in ``A`` unless all its targets are
    ignored, and a mean runs over the counted targets of all batches, as torch's mean over the
    data as one batch."""
    counted = lc.counted(y)
    keep = None if counted is None else counted.reshape(counted.shape[0], -1).any(dim=1)
    return keep, lc.weight(out, y), _sample_scale(lc, out, y)


#: ``(batch index, the model's output detached, targets) -> (K, *out.shape)``: the vectors in
#: the output space whose gradients in each layer's output ``g`` build ``G`` (one backward pass
#: each): K-FAC's residuals of drawn labels, or the columns of the loss Hessian's square root.
Residuals = Callable[[int, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class Sums:
    """How :func:`collect` sums a batch's residual vectors into ``G`` and what its refusals
    name. ``average``: ``G`` gains the mean of ``g gᵀ`` over the ``K`` vectors (drawn labels)
    rather than their sum (a square root's columns). ``unused_ok``: a layer output that the
    vectors do not reach adds nothing (otherwise autograd refuses it). ``one_call`` and
    ``all_called``: the fixes named when a layer is called twice or not at all in a forward
    pass; ``none_counted``: the end of the refusal when every target is ignored.

    >>> Sums().average, Sums(average=False).one_call.startswith("K-FAC")
    (True, True)
    """

    average: bool = True
    unused_ok: bool = False
    one_call: str = f"K-FAC needs one call per layer: {_FIX}"
    all_called: str = "leave their parameters out with params="
    none_counted: str = ("K-FAC counts no sample; pass data with at least one target that is "
                         "not ignore_index")


def drawn(lc: LossCurvature, kind: str, samples: int, seed: int, group: Group | None
          ) -> Residuals:
    """K-FAC's residuals: the loss gradients of the data's labels (``kind="empirical"``) or of
    ``samples`` labels drawn from the predictive (``"mc"``), the same draws on every rank
    count as one process's."""
    return lambda i, out, y: _residuals(lc, kind, out, y, samples, seed, draw_key(i, group))


def collect(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data,
            residuals: Residuals, group: Group | None = None, sums: Sums = Sums()
            ) -> list[tuple[Layer, torch.Tensor, torch.Tensor]]:
    """``(layer, A, G)`` per layer over all batches, and over the ranks of ``group`` (see
    :mod:`jacobite.curvature.kfac`; call it inside ``count_guard(group)``), with ``G`` from
    the vectors ``residuals`` gives per batch, summed as ``sums`` says."""
    layers = layers_of(model, ps)
    A: dict[str, torch.Tensor | None] = {L.name: None for L in layers}
    G: dict[str, torch.Tensor] = {
        L.name: torch.zeros(L.d_out, L.d_out, dtype=ps.dtype, device=ps.device) for L in layers}
    rows = {L.name: 0 for L in layers}
    weight_total: float = 0
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(name: str) -> Callable[[Any, torch.Tensor], None]:
        def hook(args: Any, out: torch.Tensor) -> None:
            if name in seen:
                raise UnsupportedOperationError(
                    f"the layer {name!r} is called more than once per forward pass; "
                    f"{sums.one_call}")
            seen[name] = (args[0].detach(), out)
        return hook

    hooks: dict[nn.Module, Callable[[Any, torch.Tensor], None]] = {
        L.module: record(L.name) for L in layers}
    for i, (X, y) in enumerate(batches):
        seen.clear()
        out = hooked_forward(model, ps, X, hooks)
        if i == 0:
            lc.check(out.detach(), y)
        unused = [L.name for L in layers if L.name not in seen]
        if unused:
            raise UnsupportedOperationError(
                f"the layer(s) {unused} are not called by the forward pass; {sums.all_called}")
        R = residuals(i, out.detach(), y)
        keep, weight, c = _counts(lc, out, y)
        if sums.average:
            c /= R.shape[0]
        outs = [seen[L.name][1] for L in layers]
        for s in range(R.shape[0]):
            grads = torch.autograd.grad(out, outs, R[s], retain_graph=s + 1 < R.shape[0],
                                        allow_unused=sums.unused_ok)
            for L, g in zip(layers, grads, strict=True):
                if g is not None:
                    g2 = _out_rows(L, g).reshape(-1, L.d_out)
                    G[L.name] = G[L.name] + c * (g2.T @ g2)
        for L in layers:
            x = _rows(L, seen[L.name][0])
            a = _augmented((x if keep is None else x[keep]).reshape(-1, L.d_in), L)
            aa, prev = a.T @ a, A[L.name]
            A[L.name] = aa if prev is None else prev + aa
            rows[L.name] += a.shape[0]
        weight_total += weight
    if group is not None:  # the sums over every rank's shard: one all-reduce of all factors
        flat = torch.cat(
            [t.reshape(-1) for L in layers for t in (A[L.name], G[L.name]) if t is not None]
            + [torch.tensor([float(rows[L.name]) for L in layers] + [float(weight_total)],
                            dtype=ps.dtype, device=ps.device)])
        global_count(0.0, flat.numel(), group, what="K-FAC factor entries")
        reduced = guarded_all_reduce(flat, group)
        parts = iter(torch.split(reduced, [t.numel() for L in layers
                                           for t in (A[L.name], G[L.name]) if t is not None]
                                 + [len(layers) + 1]))
        for L in layers:
            A[L.name], G[L.name] = (next(parts).view(t.shape)
                                    for t in (A[L.name], G[L.name]) if t is not None)
        counts = next(parts).tolist()
        rows = {L.name: int(c) for L, c in zip(layers, counts, strict=False)}
        weight_total = counts[-1]
    if any(r == 0 for r in rows.values()):
        raise ShapeError(
            f"every target is the loss's ignore_index ({getattr(lc.fn, 'ignore_index', -100)}), "
            f"so {sums.none_counted}")
    scale = 1.0 / weight_total if lc.mean else 1.0
    out_: list[tuple[Layer, torch.Tensor, torch.Tensor]] = []
    for L in layers:
        a_sum, g_sum = A[L.name], G[L.name]
        assert a_sum is not None
        # exactly symmetric: rounding in XᵀX may differ between (i, j) and (j, i)
        out_.append((L, (a_sum + a_sum.T) / (2 * rows[L.name]), (g_sum + g_sum.T) * (scale / 2)))
    return out_
