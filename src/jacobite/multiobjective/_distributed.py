"""Jacobian descent over a process group: each rank holds its shard of the data, the update is
that of the Jacobian averaged over the ranks (as DDP averages gradients).

With ``J = (1/N) Σ_r J_r`` (``J_r``: rank r's m × P Jacobian), the Gramian
``G = J Jᵀ = (1/N²) Σ_{r,s} J_r J_sᵀ`` has cross-rank terms, so it is *not* the sum of the
ranks' own Gramians: no exchange of m × m matrices alone can give it. The exchange used here:

* **Gramian-weighted aggregators** (UPGrad, MGDA, ...): a reduce-scatter of the local Jacobians
  leaves rank r with the averaged columns of its parameter block; it forms that block's m × m
  Gramian, one all-reduce of m² numbers sums the blocks to ``G``, rank 0's weights ``w`` are
  broadcast (m numbers: a random aggregator gives the same ``w`` everywhere), each rank forms
  ``wᵀJ`` on its block and an all-gather assembles the update. Payload per rank: ``m·P`` +
  ``m²`` + ``m`` + ``P/N`` numbers; on a ring that moves about ``(N−1)/N · (m + 1) · P`` numbers
  per rank, against ``2 (N−1)/N · P`` for DDP's gradient all-reduce.
* **Other aggregators** (they need J itself): one all-reduce of the m × P Jacobian, the update
  computed on rank 0 and broadcast (so randomised aggregators agree).

Before either, one small all-reduce checks that every rank has the same m, P and parameter
shapes and carries the failure flag of :func:`jacobite.distributed.guarded`: a rank whose losses
or backward pass raise makes the others raise :class:`~jacobite.errors.RankFailedError`.

>>> import torch
>>> from jacobite.multiobjective._distributed import blocks
>>> [tuple(b.shape) for b in blocks(torch.arange(10.0).reshape(2, 5), 2)]
[(6,), (6,)]
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from .. import config
from .._validate import ChunkSize
from ..distributed import Group, guarded, guarded_all_reduce, guarded_broadcast
from ..distributed._traffic import record
from ..errors import JacobianTooLarge, ShapeError, UnsupportedOperationError
from ._params import accumulate, batched_grads, gram

__all__ = ["Local", "blocks", "descend", "local_rows"]

#: parameter classes whose tensor on a rank is a shard of the parameter (FSDP2, FSDP1)
_SHARDED = frozenset(("DTensor", "FlatParameter"))


@dataclass
class Local:
    """One rank's share of a Jacobian-descent step: the rows of its m × P Jacobian over
    ``params`` and, for ``mtl_backward``, the plain gradients of the task heads."""

    rows: Tensor  # (m, P)
    params: list[Tensor]
    heads: list[Tensor] = field(default_factory=list)
    head_grads: list[Tensor] = field(default_factory=list)


def local_rows(outputs: Sequence[Tensor], cotangents: Sequence[Tensor], params: list[Tensor], *,
               retain_graph: bool, chunk_size: ChunkSize) -> Tensor:
    """This rank's m × P Jacobian (rows ``Jᵀ c_k`` over ``params``, flattened and joined); a
    typed error where it exceeds the memory budget."""
    sharded = [type(p).__name__ for p in params if type(p).__name__ in _SHARDED]
    if sharded:
        raise UnsupportedOperationError(
            f"the parameters are sharded across the ranks ({sharded[0]}, as FSDP holds them); "
            "Jacobian descent over a process group needs every rank to hold the whole "
            "parameters: wrap the model in DistributedDataParallel instead of FSDP")
    m = cotangents[0].shape[0]
    n = sum(p.numel() for p in params)
    dtype = params[0].dtype
    for p in params[1:]:
        dtype = torch.promote_types(dtype, p.dtype)
    need = m * n * torch.empty((), dtype=dtype).element_size()
    if need > config.get_memory_budget():
        raise JacobianTooLarge(
            f"Jacobian descent over a process group exchanges the {m} × {n} Jacobian, which "
            f"needs {config.format_bytes(need)}, more than the memory budget "
            f"({config.format_bytes(config.get_memory_budget())}); raise the budget "
            "(jacobite.config.set_memory_budget) or run it on fewer parameters")
    rows = batched_grads(outputs, cotangents, params, retain_graph=retain_graph,
                         chunk_size=chunk_size)
    return torch.cat([r.reshape(m, -1).to(dtype) for r in rows], dim=1)


def blocks(J: Tensor, size: int) -> list[Tensor]:
    """The ``size`` column blocks of ``J`` (m × P), zero-padded to equal width, each flattened
    (the reduce-scatter's inputs: block r goes to rank r)."""
    m, P = J.shape
    width = -(-P // size)
    padded = torch.nn.functional.pad(J, (0, size * width - P))
    return list(padded.reshape(m, size, width).transpose(0, 1).reshape(size, -1).unbind(0))


def _signature(local: Local) -> Tensor:
    """m, P, the number of head entries and a checksum of the shapes; with their negatives,
    so one max-reduction tells whether every rank agrees."""
    shapes = repr([tuple(p.shape) for p in local.params] + [tuple(p.shape) for p in local.heads])
    s = [local.rows.shape[0], local.rows.shape[1], sum(h.numel() for h in local.heads),
         zlib.crc32(shapes.encode()) & 0x3FFFFFFF]
    return torch.tensor(s + [-v for v in s], dtype=torch.int64)


def descend(group: Group, work: Callable[[], Local], aggregator: Any) -> Tensor | None:
    """Run ``work`` (this rank's validation and backward pass), exchange as the module doc
    says, add the averaged update to ``.grad`` on every rank; the weights for a
    Gramian-weighted aggregator, else None."""
    with guarded(group, like=torch.zeros(8, dtype=torch.int64), op="max"):
        local = work()
        sig = guarded_all_reduce(_signature(local), group, op="max")
    if bool((sig[:4] != -sig[4:]).any()):
        raise ShapeError(
            "the ranks disagree on the number of losses, of parameters or on their shapes; "
            "every rank must pass the same m losses of the same model (its own shard of the "
            "data) and the same params in the same order")
    heads = torch.cat([g.reshape(-1) for g in local.head_grads]) if local.heads else None
    if callable(getattr(aggregator, "weights", None)):
        w = _gramian_route(group, local, aggregator, heads)
    else:
        w = None
        _jacobian_route(group, local, aggregator, heads)
    if heads is not None:
        accumulate(local.heads, heads.split([h.numel() for h in local.heads]))
    return w


def _reduce_scatter(group: Group, J: Tensor) -> Tensor:
    """This rank's averaged column block of the ranks' Jacobians (m × width)."""
    m = J.shape[0]
    parts = [b.to(group.device) for b in blocks(J, group.size)]
    mine = torch.empty_like(parts[0])
    record(sum(p.numel() * p.element_size() for p in parts))
    dist.reduce_scatter(mine, parts, group=group.pg)
    return (mine / group.size).reshape(m, -1)


def _all_gather(group: Group, u: Tensor, P: int) -> Tensor:
    out = [torch.empty_like(u) for _ in range(group.size)]
    record(u.numel() * u.element_size())
    dist.all_gather(out, u.contiguous(), group=group.pg)
    return torch.cat(out)[:P]


def _gramian_route(group: Group, local: Local, aggregator: Any,
                   heads: Tensor | None) -> Tensor:
    J = local.rows
    m, P = J.shape
    mine = _reduce_scatter(group, J)
    del J
    G = gram(mine)
    payload = G.reshape(-1) if heads is None else torch.cat([G.reshape(-1),
                                                             heads.to(G.dtype)])
    total = guarded_all_reduce(payload, group)
    G = total[:m * m].reshape(m, m)
    if heads is not None:
        heads.copy_(total[m * m:] / group.size)
    w = G.new_zeros(m)
    with guarded(group, like=w):
        if group.rank == 0:
            w = aggregator.weights(G).detach().to(G.dtype)
        w = guarded_broadcast(w, group, src=0)
    u = w.to(mine.dtype) @ mine
    update = _all_gather(group, u.to(group.device), P).to(mine.device)
    accumulate(local.params, update.split([p.numel() for p in local.params]))
    return w


def _jacobian_route(group: Group, local: Local, aggregator: Any, heads: Tensor | None) -> None:
    J = local.rows
    m, P = J.shape
    payload = J.reshape(-1) if heads is None else torch.cat([J.reshape(-1), heads.to(J.dtype)])
    total = guarded_all_reduce(payload, group) / group.size
    J = total[:m * P].reshape(m, P)
    if heads is not None:
        heads.copy_(total[m * P:])
    update = J.new_zeros(P)
    with guarded(group, like=update):
        if group.rank == 0:
            update = aggregator(J).detach()
            if update.shape != (P,):
                raise ShapeError(f"{type(aggregator).__name__} returned shape "
                                 f"{tuple(update.shape)}; an aggregator must map an (m, n) "
                                 f"Jacobian to an (n,) update (n = {P})")
        update = guarded_broadcast(update.to(J.dtype), group, src=0)
    accumulate(local.params, update.split([p.numel() for p in local.params]))
