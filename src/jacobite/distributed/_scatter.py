"""Many independent problems over a group: :func:`scatter_batch` hands each rank its share of a
batch held by one rank, :func:`gather_batch` puts the ranks' results back together in rank order.

Both take a batch pytree (see :mod:`jacobite.distributed._batch`): tensors travel as tensors
(padded to the largest share, so uneven shares work), lists as pickled objects, constants stay
where they are. A rank that fails before :func:`gather_batch` still joins it, and every other
rank raises :class:`~jacobite.errors.RankFailedError` instead of waiting.

>>> import torch
>>> from jacobite.distributed import gather_batch, scatter_batch
>>> part = scatter_batch((torch.arange(6.0), ["a"] * 6), None)  # one process: all of it
>>> gather_batch(part, None)[0]
tensor([0., 1., 2., 3., 4., 5.])
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any, TypeVar, overload

import torch
import torch.distributed as dist

from ..errors import RankFailedError, ShapeError
from ._batch import Placeholder, batch_size, flatten, share
from ._group import Group, ProcessGroupLike, resolve
from ._guard import check_rank, guarded, guarded_all_gather
from ._traffic import counting, record

__all__ = ["gather_batch", "scatter_batch"]

T = TypeVar("T")


def _pickled_size(obj: Any) -> int:
    """The bytes of ``obj`` pickled, the payload :func:`~jacobite.distributed.traffic` counts
    for an object collective; 0 without pickling it outside a ``traffic()`` block, where no
    counter reads it."""
    return len(pickle.dumps(obj)) if counting() else 0


def _describe(leaves: list[Any]) -> list[tuple[str, tuple[int, ...], torch.dtype | None]]:
    return [("tensor", tuple(x.shape[1:]), x.dtype) if isinstance(x, torch.Tensor)
            else ("list", (), None) for x in leaves]


def scatter_batch(tree: T, group: ProcessGroupLike, src: int = 0) -> T:
    """This rank's :func:`~jacobite.distributed.shard` of the batch ``tree`` that rank ``src``
    holds; the other ranks pass anything (``None``), which is ignored. ``src`` is a rank within
    the group. ``group=None``: ``tree`` itself.

    >>> import torch
    >>> scatter_batch({"x": torch.ones(3, 2)}, None)["x"].shape
    torch.Size([3, 2])
    """
    g = resolve(group)
    check_rank(src, g, "src")
    if g is None:
        batch_size(flatten(tree)[0])  # the same refusals as on a group
        return tree
    meta: list[Any] = [None]
    leaves: list[Any] = []
    own: Exception | None = None
    if g.rank == src:
        try:
            leaves, rebuild = flatten(tree)
            n = batch_size(leaves)
            meta[0] = ("ok", rebuild([Placeholder(i) for i in range(len(leaves))]),
                       _describe(leaves), n)
        except Exception as exc:
            own, meta[0] = exc, ("error", f"{type(exc).__name__}: {exc}"[:300])
    src_global = dist.get_global_rank(g.pg, src)
    dist.broadcast_object_list(meta, src=src_global, group=g.pg)
    record(_pickled_size(meta[0]) if g.rank == src else 0)
    if meta[0][0] == "error":
        if own is not None:
            raise own
        raise RankFailedError(f"rank {src} failed: {meta[0][1]} — fix the batch passed on "
                              "that rank; no rank received a share")
    _, skeleton, described, n = meta[0]
    shares = [share(n, r, g.size) for r in range(g.size)]
    width = max(s.stop - s.start for s in shares)
    mine = shares[g.rank].stop - shares[g.rank].start
    out: list[Any] = []
    for i, (kind, tail, dtype) in enumerate(described):
        if kind == "list":
            got: list[Any] = [None]
            chunks = [leaves[i][s] for s in shares] if g.rank == src else None
            dist.scatter_object_list(got, chunks, src=src_global, group=g.pg)
            record(_pickled_size(chunks) if chunks is not None else 0)
            out.append(got[0])
            continue
        buf = torch.empty((width, *tail), dtype=dtype, device=g.device)
        parts = None
        if g.rank == src:
            parts = [_padded(leaves[i][s].to(g.device), width) for s in shares]
            record(sum(p.numel() * p.element_size() for p in parts))
        else:
            record(0)
        dist.scatter(buf, parts, src=src_global, group=g.pg)
        out.append(buf[:mine])
    flat, rebuild = flatten(skeleton)
    return rebuild([out[p.i] for p in flat])


def _padded(t: torch.Tensor, width: int) -> torch.Tensor:
    if t.shape[0] == width:
        return t.contiguous()
    pad = t.new_zeros((width - t.shape[0], *t.shape[1:]))
    return torch.cat([t, pad])


def _signature(leaves: list[Any]) -> int:
    return zlib.crc32(repr(_describe(leaves)).encode()) & 0x3FFFFFFF


@overload
def gather_batch(tree: T, group: ProcessGroupLike, dst: None) -> T: ...
@overload
def gather_batch(tree: T, group: ProcessGroupLike, dst: int = 0) -> T | None: ...
def gather_batch(tree: T, group: ProcessGroupLike, dst: int | None = 0) -> T | None:
    """The ranks' batch pytrees joined along the leading dimension in rank order, on rank
    ``dst`` (``None`` on the others), or on every rank with ``dst=None``. Every rank passes a
    tree of the same structure, dtypes and trailing shapes; leading sizes may differ (zero too).
    Constants come from the receiving rank's own tree. ``group=None``: ``tree`` itself.

    >>> import torch
    >>> gather_batch((torch.zeros(2, 3), "done"), None, dst=None)[1]
    'done'
    """
    g = resolve(group)
    if dst is not None:
        check_rank(dst, g, "dst")
    if g is None:
        batch_size(flatten(tree)[0])  # the same refusals as on a group
        return tree
    with guarded(g, like=torch.zeros(2, dtype=torch.int64), kind="all_gather"):
        leaves, rebuild = flatten(tree)
        b = batch_size(leaves)
        counts, signs = guarded_all_gather(torch.tensor([b, _signature(leaves)]), g).T.tolist()
    if len(set(signs)) > 1:
        raise ShapeError("gather_batch got trees of different structure, dtypes or trailing "
                         "shapes on different ranks; pass the same kind of result on every rank")
    here = dst is None or g.rank == dst
    width = max(counts)
    out: list[Any] = []
    lists = [x for x in leaves if not isinstance(x, torch.Tensor)]
    gathered_lists = _gather_objects(g, lists, dst) if lists else []
    k = 0
    for leaf in leaves:
        if not isinstance(leaf, torch.Tensor):
            out.append([item for per_rank in gathered_lists for item in per_rank[k]]
                       if here else None)
            k += 1
            continue
        local = _padded(leaf.detach().to(g.device), width)
        parts = [torch.empty_like(local) for _ in range(g.size)] if here else None
        record(local.numel() * local.element_size())
        if dst is None:
            dist.all_gather(parts, local, group=g.pg)
        else:
            dist.gather(local, parts, dst=dist.get_global_rank(g.pg, dst), group=g.pg)
        out.append(torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).to(leaf.device)
                   if parts is not None else None)
    return rebuild(out) if here else None


def _gather_objects(g: Group, lists: list[Any], dst: int | None) -> list[Any]:
    record(_pickled_size(lists))
    if dst is None:
        got: list[Any] = [None] * g.size
        dist.all_gather_object(got, lists, group=g.pg)
        return got
    got_dst: list[Any] | None = [None] * g.size if g.rank == dst else None
    dist.gather_object(lists, got_dst, dst=dist.get_global_rank(g.pg, dst), group=g.pg)
    return got_dst or []
