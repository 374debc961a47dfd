"""Dependency rule for 1-D and 2-D convolutions, exploiting the zeros of a constant kernel.

Output ``(b, co, l)`` depends on the input elements of its receptive field in the channels of
its group, restricted to the kernel taps that are nonzero when the kernel is a constant (im2col
on an index tensor gives the field).

>>> import torch
>>> from jacobite.sparse.detect import detect
>>> k = torch.tensor([[[1.0, 0.0, 1.0]]])
>>> detect(lambda v: torch.nn.functional.conv1d(v.reshape(1, 1, 5), k), torch.ones(5)).nnz
6
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from jacobite.sparse._registry import Call, rule
from jacobite.sparse._rules import (
    Deps,
    Lookup,
    _broadcast_index,
    bind,
    gather_rows,
    group_matrix,
    union,
)

aten = torch.ops.aten


def convolution(func: Any, args: tuple, kwargs: dict, out: torch.Tensor, deps: Lookup,
                tainted: Callable[[Any], bool]) -> tuple[bool, Deps]:
    """``aten.convolution``; returns ``(handled, deps)`` (not handled: transposed, 3-D, ...)."""
    b = bind(func, args, kwargs)
    inp, w, bias = b["input"], b["weight"], b["bias"]
    stride, padding, dilation = list(b["stride"]), list(b["padding"]), list(b["dilation"])
    if b["transposed"] or inp.dim() not in (3, 4) or not all(
            isinstance(v, int) for v in stride + padding + dilation):
        return False, None
    if inp.dim() == 3:
        inp4_shape = (inp.shape[0], inp.shape[1], 1, inp.shape[2])
        w4 = w.unsqueeze(2)
        stride, padding, dilation = [1, *stride], [0, *padding], [1, *dilation]
    else:
        inp4_shape, w4 = tuple(inp.shape), w
    bsz = inp4_shape[0]
    c_out, cpg, kh, kw = w4.shape
    groups = int(b["groups"])
    copg = c_out // groups
    n_l = out.numel() // (bsz * c_out)
    parts: list[Deps] = []
    if (d := deps(inp)) is not None:
        idx = torch.arange(1, inp.numel() + 1, dtype=torch.float64).reshape(inp4_shape)
        patches = F.unfold(idx, (kh, kw), dilation=tuple(dilation), padding=tuple(padding),
                           stride=tuple(stride))
        patches = np.rint(patches.numpy()).astype(np.int64)  # (B, C*kh*kw, L)
        assert patches.shape[-1] == n_l
        taps = kh * kw
        if tainted(w):
            wmask = np.ones((c_out, cpg * taps), bool)
        else:
            wmask = w4.detach().reshape(c_out, -1).ne(0).cpu().numpy()
        co_j, cc_j = np.nonzero(wmask)
        col = (co_j // copg) * cpg * taps + cc_j
        bb = np.arange(bsz)[:, None, None]
        ll = np.arange(n_l)[None, None, :]
        rows = (bb * c_out + co_j[None, :, None]) * n_l + ll
        cols = patches[:, col, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        keep = cols > 0
        sel = sp.csr_matrix((np.ones(int(keep.sum()), bool), (rows[keep], cols[keep] - 1)),
                            shape=(out.numel(), inp.numel()))
        parts.append((sel @ d).tocsr())
    if (dw := deps(w)) is not None:
        per = w.numel() // c_out
        rows = np.repeat(np.arange(out.numel()), per)
        co = (np.arange(out.numel()) // n_l) % c_out
        cols = (co[:, None] * per + np.arange(per)[None, :]).reshape(-1)
        sel = sp.csr_matrix((np.ones(rows.size, bool), (rows, cols)),
                            shape=(out.numel(), w.numel()))
        parts.append((sel @ dw).tocsr())
    if isinstance(bias, torch.Tensor) and (db := deps(bias)) is not None:
        bshape = [1] * out.dim()
        bshape[1] = bias.numel()
        parts.append(gather_rows(db, _broadcast_index(bshape, out.shape)))
    return True, union(parts)


POOL_OPS = {aten.avg_pool2d.default, aten.max_pool2d_with_indices.default}
if hasattr(aten, "avg_pool1d"):
    POOL_OPS.add(aten.avg_pool1d.default)


def pool(func: Any, args: tuple, kwargs: dict, outs: list[Any],
         deps: Lookup) -> list[Deps] | None:
    """Average / max pooling: each output depends on its window (per channel); ``None`` for
    ``ceil_mode`` and unexpected output shapes (no rule)."""
    b = bind(func, args, kwargs)
    x = b["self"]
    d = deps(x)
    if b.get("ceil_mode"):
        return None  # partial windows at the edge: no rule (the tracker's dense fallback)
    one_d = func.overloadpacket is getattr(aten, "avg_pool1d", None)

    def pair(v: Any, default: Any) -> list[int]:
        v = list(v) if isinstance(v, (list, tuple)) and len(v) else default
        v = [v] if isinstance(v, int) else list(v)
        return (v * 2 if len(v) == 1 else v) if not one_d else [1, v[0]]

    kernel = pair(b["kernel_size"], None)
    stride = pair(b.get("stride"), b["kernel_size"])
    padding = pair(b.get("padding", 0), [0])
    dilation = pair(b.get("dilation", 1), [1])
    spatial = tuple(x.shape[-1:]) if one_d else tuple(x.shape[-2:])
    planes = x.numel() // int(np.prod(spatial))
    shape4 = (planes, 1, *((1, *spatial) if one_d else spatial))
    idx = torch.arange(1, x.numel() + 1, dtype=torch.float64).reshape(shape4)
    patches = F.unfold(idx, tuple(kernel), dilation=tuple(dilation), padding=tuple(padding),
                       stride=tuple(stride))
    patches = np.rint(patches.numpy()).astype(np.int64)  # (planes, K, L)
    n_l = patches.shape[-1]
    out = outs[0]
    if out.numel() != planes * n_l:
        return None
    rows = np.broadcast_to((np.arange(planes)[:, None, None] * n_l
                            + np.arange(n_l)[None, None, :]), patches.shape)
    keep = patches > 0
    sel = sp.csr_matrix((np.ones(int(keep.sum()), bool), (rows[keep], patches[keep] - 1)),
                        shape=(out.numel(), x.numel()))
    res = (sel @ d).tocsr() if d is not None else None
    return [res] + [None] * (len(outs) - 1)


def layer_norm(func: Any, args: tuple, kwargs: dict, outs: list[Any], deps: Lookup) -> list[Deps]:
    """``native_layer_norm``: each output sees its normalised slice, plus weight and bias."""
    b = bind(func, args, kwargs)
    x, shape = b["input"], list(b["normalized_shape"])
    dims = list(range(x.dim() - len(shape), x.dim()))
    g = group_matrix(tuple(x.shape), dims)
    parts: list[Deps] = []
    if (d := deps(x)) is not None:
        parts.append((g.T @ (g @ d)).tocsr())
    for name in ("weight", "bias"):
        t = b.get(name)
        if isinstance(t, torch.Tensor) and (dt := deps(t)) is not None:
            parts.append(gather_rows(dt, _broadcast_index(t.shape, x.shape)))
    red = (g @ d).tocsr() if d is not None else None
    result: list[Deps] = [union(parts)]
    for o in outs[1:]:
        result.append(red if red is not None and o.numel() == red.shape[0] else None)
    return result


@rule(aten.convolution)
def convolution_rule(c: Call) -> list[Deps] | None:
    """1-D and 2-D convolutions (not transposed): see :func:`convolution`."""
    handled, d = convolution(c.func, c.args, c.kwargs, c.outs[0], c.deps, c.tainted)
    return [d] if handled else None


@rule(*POOL_OPS)
def pool_rule(c: Call) -> list[Deps] | None:
    """Average and max pooling: see :func:`pool`."""
    return pool(c.func, c.args, c.kwargs, c.outs, c.deps)


@rule(aten.native_layer_norm.default)
def layer_norm_rule(c: Call) -> list[Deps]:
    """``native_layer_norm``: see :func:`layer_norm`."""
    return layer_norm(c.func, c.args, c.kwargs, c.outs, c.deps)
