"""Dependency rules for scatters and accumulating writes (``scatter_add``, ``index_add``,
``index_put``, ``scatter`` with ``reduce=``, overwriting ``scatter``/``index_copy``).

Every source written to a target counts, duplicate targets included: autograd sends a target's
gradient to all of them, and an accumulating write adds them all.

>>> import torch
>>> from jacobite.sparse.detect import detect
>>> idx = torch.tensor([0, 0, 2])
>>> detect(lambda v: torch.zeros(3).scatter_add(0, idx, v), torch.ones(3)).to_scipy().toarray()
array([[ True,  True, False],
       [False, False, False],
       [False, False,  True]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._registry import Call, rule
from ._rules import (
    Deps,
    Lookup,
    _broadcast_index,
    bind,
    gather_rows,
    index_trick,
    is_float,
    union,
)

aten = torch.ops.aten

SCATTER_ADD_OPS = {
    getattr(aten, name)
    for name in ("scatter_add", "scatter_add_", "scatter_reduce", "scatter_reduce_",
                 "index_add", "index_add_", "index_reduce", "index_reduce_")
    if hasattr(aten, name)
}


# overwriting scatters: autograd sends the gradient to every duplicate source, so all sources
# of a target are added to the index trick's winner
OVERWRITE_SCATTERS = {aten.scatter.src, aten.scatter_.src, aten.index_copy.default,
                      aten.index_copy_.default}
#: ``self[indices] = values`` (or ``+=``): :func:`index_put`
ACCUMULATE_OPS = {aten.index_put.default, aten.index_put_.default}
if hasattr(aten, "_unsafe_index_put"):
    ACCUMULATE_OPS.add(aten._unsafe_index_put.default)


def scatter_add(func: Any, args: tuple, kwargs: dict, out: torch.Tensor, deps: Lookup,
                include_self: bool = True) -> Deps:
    """Accumulating scatters: ``self`` keeps its deps; each target also gets its sources'."""
    b = bind(func, args, kwargs)
    self_t, dim, index = b["self"], b["dim"], b["index"]
    src = b.get("src", b.get("source"))
    ndim = max(self_t.dim(), 1)
    dim = dim % ndim
    parts = [deps(self_t) if include_self else None]
    if isinstance(src, torch.Tensor) and (ds := deps(src)) is not None:
        shape = tuple(self_t.shape) or (1,)
        idx = index.reshape(-1).cpu().numpy() if index.dim() <= 1 else index.cpu().numpy()
        if func.overloadpacket in (aten.index_add, aten.index_add_, aten.index_reduce,
                                   aten.index_reduce_, aten.index_copy, aten.index_copy_):
            sshape = tuple(src.shape) or (1,)
            coords = list(np.indices(sshape).reshape(len(sshape), -1))
            coords[dim] = idx.reshape(-1)[coords[dim]]
            src_flat = np.arange(int(np.prod(sshape)))
        else:  # scatter: index has its own shape; src element at the same coordinates
            ishape = tuple(index.shape) or (1,)
            coords = list(np.indices(ishape).reshape(len(ishape), -1))
            src_flat = np.ravel_multi_index(tuple(coords), tuple(src.shape) or (1,))
            coords[dim] = idx.reshape(-1)
        target = np.ravel_multi_index(tuple(coords), shape)
        sel = sp.csr_matrix((np.ones(target.size, bool), (target, src_flat)),
                            shape=(out.numel(), src.numel()))
        parts.append((sel @ ds).tocsr())
    return union(parts)


def index_put(func: Any, args: tuple, kwargs: dict, out: torch.Tensor, deps: Lookup) -> Deps:
    """``self[indices] = values`` (or ``+=`` with ``accumulate``): every source of a target
    counts, duplicates included (autograd feeds them all); untouched elements keep theirs."""
    b = bind(func, args, kwargs)
    self_t, values = b["self"], b["values"]
    pos = torch.from_numpy(np.arange(self_t.numel(), dtype=np.int64)).reshape(self_t.shape)
    target = pos[tuple(i.cpu() if isinstance(i, torch.Tensor) else i for i in b["indices"])]
    tgt = target.reshape(-1).numpy()
    parts: list[Deps] = []
    if (d := deps(self_t)) is not None:
        if b.get("accumulate"):
            parts.append(d)
        else:
            keep = np.arange(self_t.numel())
            keep[tgt] = -1
            parts.append(gather_rows(d, keep))
    if is_float(values) and (dv := deps(values)) is not None:
        src = _broadcast_index(values.shape, target.shape)
        sel = sp.csr_matrix((np.ones(tgt.size, bool), (tgt, src)),
                            shape=(out.numel(), values.numel()))
        parts.append((sel @ dv).tocsr())
    return union(parts)


@rule(*SCATTER_ADD_OPS)
def scatter_add_rule(c: Call) -> list[Deps] | None:
    """Accumulating scatters with one output: see :func:`scatter_add` (``include_self=False``
    of ``scatter_reduce`` is ignored: a superset)."""
    if len(c.outs) != 1:
        return None
    return [scatter_add(c.func, c.args, c.kwargs, c.outs[0], c.deps)]


#: ``scatter(..., reduce=...)``: the target combines ``self`` with its sources
REDUCING_SCATTERS = [getattr(p, o) for p in (aten.scatter, aten.scatter_)
                     for o in ("reduce", "value_reduce") if hasattr(p, o)]


@rule(*REDUCING_SCATTERS)
def scatter_reduce_rule(c: Call) -> list[Deps]:
    """``scatter(..., reduce="add" | "multiply")``: a target combines ``self`` with its
    sources, so it keeps ``self``'s dependencies and gains the sources' (the index trick would
    add or multiply positions)."""
    return [scatter_add(c.func, c.args, c.kwargs, c.outs[0], c.deps)]


@rule(*OVERWRITE_SCATTERS)
def overwrite_rule(c: Call) -> list[Deps]:
    """Overwriting scatters: the index trick's winner plus every other source of its target."""
    res = index_trick(c.func, c.args, c.kwargs, c.outs, c.deps, c.n)
    extra = scatter_add(c.func, c.args, c.kwargs, c.outs[0], c.deps, include_self=False)
    return [union([res[0], extra])]


@rule(*ACCUMULATE_OPS)
def index_put_rule(c: Call) -> list[Deps]:
    """``index_put`` (accumulating or with duplicate targets): see :func:`index_put`."""
    return [index_put(c.func, c.args, c.kwargs, c.outs[0], c.deps)]
