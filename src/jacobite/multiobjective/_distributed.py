"""Jacobian descent over a process group: each rank holds its shard of the data, the update is
that of the Jacobian averaged over the ranks (as DDP averages gradients).

With ``J = (1/N) Σ_r J_r`` (``J_r``: rank r's m × P Jacobian), the Gramian
``G = J Jᵀ = (1/N²) Σ_{r,s} J_r J_sᵀ`` has cross-rank terms, so it is *not* the sum of the
ranks' own Gramians: no exchange of m × m matrices alone can give it. The exchange used here:

* **Gramian-weighted aggregators** (UPGrad, MGDA, ...): a reduce-scatter of the local Jacobians
  leaves rank r with the averaged columns of its parameter block (row chunk by row chunk, as
  the memory budget allows: a rank holds its m × P/N block and one chunk of its own rows, never
  its whole m × P Jacobian); it forms that block's m × m
  Gramian, one all-reduce of m² numbers sums the blocks to ``G``, rank 0's weights ``w`` are
  broadcast (m numbers: a random aggregator gives the same ``w`` everywhere), each rank forms
  ``wᵀJ`` on its block and an all-gather assembles the update. Payload per rank: ``m·P`` +
  ``m²`` + ``m`` + ``P/N`` numbers; on a ring that moves about ``(N−1)/N · (m + 1) · P`` numbers
  per rank, against ``2 (N−1)/N · P`` for DDP's gradient all-reduce.
* **Other aggregators** (they need J itself): one all-reduce of the m × P Jacobian, the update
  computed on rank 0 and broadcast (so randomised aggregators agree).
* **FSDP2 models** (parameters are ``DTensor`` shards on dim 0): the shards already are the
  column blocks, so FSDP's own reduce-scatter of each row's gradient replaces the one above
  (see :mod:`jacobite.multiobjective._fsdp`); Gramian-weighted aggregators only.

Before either, one small all-reduce checks that every rank has the same m, P and parameter
shapes (and agrees on the row chunk) and carries the failure flag of
:func:`jacobite.distributed.guarded`; each chunk's reduce-scatter carries a flag too, so a rank
whose losses or backward pass raise makes the others raise
:class:`~jacobite.errors.RankFailedError` instead of waiting.

>>> import torch
>>> from jacobite.multiobjective._distributed import fill_blocks
>>> buf = torch.zeros(2, 2 * 3 + 1)          # 2 ranks, 2 rows of 5 columns: blocks of width 3
>>> fill_blocks(buf, torch.arange(10.0).reshape(2, 5), 3)
>>> buf                                        # rank r's block of every row, then its flag
tensor([[0., 1., 2., 5., 6., 7., 0.],
        [3., 4., 0., 8., 9., 0., 0.]])
"""

from __future__ import annotations

import functools
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
from ..distributed.internal import failure_text, record
from ..distributed.internal import raise_failures as _raise_failures
from ..errors import JacobianTooLarge, ShapeError
from ._fsdp import check_fsdp, check_not_freed, fsdp_descend, is_sharded, rank0_weights
from ._params import accumulate, batched_grads, gram, row_chunk

__all__ = ["Local", "descend", "fill_blocks"]

@dataclass
class Local:
    """One rank's share of a Jacobian-descent step: the graph's outputs and the m stacked
    cotangents whose VJPs are the Jacobian's rows over ``params``, and, for ``mtl_backward``,
    the task heads with their plain gradients."""

    outputs: Sequence[Tensor]
    cotangents: Sequence[Tensor]
    params: list[Tensor]
    retain_graph: bool
    chunk_size: ChunkSize
    heads: list[Tensor] = field(default_factory=list)
    head_grads: list[Tensor] = field(default_factory=list)

    @property
    def m(self) -> int:
        return int(self.cotangents[0].shape[0])

    @property
    def P(self) -> int:
        return sum(p.numel() for p in self.params)

    @property
    def dtype(self) -> torch.dtype:
        return functools.reduce(torch.promote_types, (p.dtype for p in self.params))

    def rows(self, start: int, stop: int, last: bool) -> Tensor:
        """Rows ``start:stop`` of this rank's m × P Jacobian, flattened and joined."""
        cots = [c[start:stop] for c in self.cotangents]
        got = batched_grads(self.outputs, cots, self.params,
                            retain_graph=self.retain_graph or not last,
                            chunk_size=self.chunk_size)
        return torch.cat([r.reshape(stop - start, -1).to(self.dtype) for r in got], dim=1)


def _too_large(what: str, need: int) -> JacobianTooLarge:
    return JacobianTooLarge(
        f"Jacobian descent over a process group holds {what}, {config.format_bytes(need)}, "
        f"more than the memory budget ({config.format_bytes(config.get_memory_budget())}); "
        "raise the budget (jacobite.config.set_memory_budget), use more ranks, or run it on "
        "fewer parameters")


def _chunk(local: Local, size: int) -> int:
    """Rows per reduce-scatter on this rank: the rank's m × ⌈P/N⌉ block stays, and a chunk
    costs about three c × P buffers (the rows, their padded blocks, the VJPs' work)."""
    m, P = local.m, local.P
    b = torch.empty((), dtype=local.dtype).element_size()
    keep = m * -(-P // size) * b
    free = config.get_memory_budget() - keep
    if free < 3 * P * b:
        raise _too_large(f"its {m} × {-(-P // size)} block of the Jacobian and one row", keep
                         + 3 * P * b)
    if local.chunk_size is None:
        return m
    return min(row_chunk(m, P * b, local.chunk_size), max(1, free // (3 * P * b)))


def _signature(local: Local, chunk: int) -> Tensor:
    """m, P, the number of head entries, a checksum of the shapes and dtypes and this rank's
    row chunk; with their negatives, so one max-reduction tells whether every rank agrees (and
    gives the smallest chunk)."""
    shapes = repr([(tuple(p.shape), p.dtype) for p in [*local.params, *local.heads]])
    s = [local.m, local.P, sum(h.numel() for h in local.heads),
         zlib.crc32(shapes.encode()) & 0x3FFFFFFF, chunk]
    return torch.tensor(s + [-v for v in s], dtype=torch.int64)


def descend(group: Group, work: Callable[[], Local], aggregator: Any) -> Tensor | None:
    """Run ``work`` (this rank's validation and per-task passes), exchange as the module doc
    says, add the averaged update to ``.grad`` on every rank; the weights for a
    Gramian-weighted aggregator, else None."""
    gramian = callable(getattr(aggregator, "weights", None))
    J: Tensor | None = None
    with guarded(group, like=torch.zeros(10, dtype=torch.int64), op="max"):
        local = work()
        fsdp = is_sharded(local.params)
        if fsdp:
            check_fsdp(local.outputs, local.params, bool(local.heads), aggregator)
        else:
            check_not_freed(local.params)
        if gramian:
            chunk = _chunk(local, group.size)
        else:  # the whole m × P Jacobian is all-reduced
            need = local.m * local.P * torch.empty((), dtype=local.dtype).element_size()
            if need > config.get_memory_budget():
                raise _too_large(f"the whole {local.m} × {local.P} Jacobian", need)
            J, chunk = local.rows(0, local.m, last=True), local.m
        sig = guarded_all_reduce(_signature(local, chunk), group, op="max")
    if bool((sig[:4] != -sig[5:9]).any()):
        raise ShapeError(
            "the ranks disagree on the number of losses, of parameters or on their shapes or "
            "dtypes; every rank must pass the same m losses of the same model (its own shard "
            "of the data) and the same params in the same order")
    if fsdp:
        return fsdp_descend(group, local.outputs, local.cotangents, local.params,
                            local.retain_graph, aggregator)
    heads = torch.cat([g.reshape(-1) for g in local.head_grads]) if local.heads else None
    if gramian:
        w = _gramian_route(group, local, int(-sig[9]), aggregator, heads)
    else:
        assert J is not None
        w = None
        _jacobian_route(group, local, J, aggregator, heads)
    if heads is not None:
        accumulate(local.heads, heads.split([h.numel() for h in local.heads]))
    return w


def fill_blocks(buf: Tensor, rows: Tensor, width: int) -> None:
    """Write the c × P ``rows`` into ``buf`` (N, c·width + 1), the reduce-scatter's inputs:
    row r of ``buf`` (rank r's part) holds columns ``r·width`` to ``(r + 1)·width`` of every
    row, zero-padded past P; the last entry (the failure flag) is left alone."""
    c, P = rows.shape
    view = buf[:, :-1].view(buf.shape[0], c, width)
    for r in range(buf.shape[0]):
        cols = rows[:, r * width:min(P, (r + 1) * width)]
        view[r, :, :cols.shape[1]] = cols


def _reduce_scatter(group: Group, local: Local, chunk: int) -> Tensor:
    """This rank's averaged column block of the ranks' Jacobians (m × ⌈P/N⌉), reduce-scattered
    chunk of rows by chunk; each chunk's blocks carry this rank's failure flag."""
    m, N = local.m, group.size
    width = -(-local.P // N)
    mine = torch.empty(m, width, dtype=local.dtype, device=group.device)
    for s in range(0, m, chunk):
        e = min(m, s + chunk)
        error: Exception | None = None
        buf = torch.zeros(N, (e - s) * width + 1, dtype=local.dtype, device=group.device)
        try:
            fill_blocks(buf, local.rows(s, e, last=e == m), width)
        except Exception as exc:  # join the collective with the flag set, then re-raise
            error = exc
            buf.zero_()
            buf[:, -1] = 1
        parts = list(buf.unbind(0))
        got = torch.empty_like(parts[0])
        record(sum(p.numel() * p.element_size() for p in parts))
        dist.reduce_scatter(got, parts, group=group.pg)
        if error is not None:
            _raise_failures(group, failure_text(error))
            raise error
        if bool(got[-1] != 0):
            _raise_failures(group, None)  # raises RankFailedError naming the failing ranks
        mine[s:e] = got[:-1].reshape(e - s, width) / N
    return mine


def _all_gather(group: Group, u: Tensor, P: int) -> Tensor:
    out = [torch.empty_like(u) for _ in range(group.size)]
    record(u.numel() * u.element_size())
    dist.all_gather(out, u.contiguous(), group=group.pg)
    return torch.cat(out)[:P]


def _gramian_route(group: Group, local: Local, chunk: int, aggregator: Any,
                   heads: Tensor | None) -> Tensor:
    m, P = local.m, local.P
    mine = _reduce_scatter(group, local, chunk)
    G = gram(mine)
    payload = G.reshape(-1) if heads is None else torch.cat([G.reshape(-1),
                                                             heads.to(G.dtype)])
    total = guarded_all_reduce(payload, group)
    G = total[:m * m].reshape(m, m)
    if heads is not None:
        heads.copy_(total[m * m:] / group.size)
    w = rank0_weights(group, aggregator, G)
    u = w.to(mine.dtype) @ mine
    update = _all_gather(group, u, P)
    first = local.params[0]
    accumulate(local.params, update.to(first.device).split([p.numel() for p in local.params]))
    return w


def _jacobian_route(group: Group, local: Local, J: Tensor, aggregator: Any,
                    heads: Tensor | None) -> None:
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
