"""Curvature over data sharded across the ranks of a ``torch.distributed`` process group.

Each rank's ``data`` is its own shard (as a ``DistributedSampler`` gives, or
:func:`jacobite.distributed.shard_batch` of the whole batch); the operators evaluate their
products on the local shard and add them up with one guarded all-reduce of the result per
product, so every rank holds the same bits: the single-process product over the concatenated
data, up to the rounding of the sum. A mean loss divides by the global sample count, gathered
once at set-up together with a check that every rank differentiates the same number of
parameters (collectives of different lengths would abort the processes). A rank whose local
work raises makes the others raise :class:`~jacobite.errors.RankFailedError`
instead of waiting.

>>> import torch
>>> mv = reduced(lambda v: 2 * v, None, 3)
>>> mv(torch.ones(3))
tensor([2., 2., 2.])
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..distributed import Group, guarded, guarded_all_gather, guarded_all_reduce
from ..errors import ShapeError

__all__ = ["count_guard", "draw_key", "global_count", "reduced", "summed"]


Fn = Callable[[torch.Tensor], torch.Tensor]


def count_guard(group: Group | None) -> guarded:
    """The guard of a set-up block that ends in :func:`global_count`."""
    return guarded(group, like=torch.zeros(2, dtype=torch.float64), kind="all_gather")


def global_count(total: float, size: int, group: Group | None,
                 what: str = "parameters it differentiates") -> float:
    """The sample count summed over the ranks; every rank must have the same ``size`` (the
    number of ``what``; compared exactly: each rank's count and size are gathered), so that
    the collectives after it get payloads of one length. Call inside a :func:`count_guard`
    block that holds the local work."""
    if group is None:
        return total
    rows = guarded_all_gather(torch.tensor([float(total), float(size)], dtype=torch.float64),
                              group)
    sizes = [int(p) for p in rows[:, 1].tolist()]
    if len(set(sizes)) > 1:
        each = ", ".join(f"rank {r}: {p}" for r, p in enumerate(sizes))
        raise ShapeError(
            f"the ranks differ in the number of {what} ({each}); build the same model and "
            "pass the same params= on every rank")
    return float(rows[:, 0].sum())


def reduced(local: Fn, group: Group | None, size: int) -> Fn:
    """``v ↦ Σ_ranks local(v)``: one guarded all-reduce of the ``(size, ...)`` result per call
    (``local`` itself for one process). Every rank calls it with the same vector shape."""
    if group is None:
        return local

    def product(v: torch.Tensor) -> torch.Tensor:
        like = torch.empty((size, *v.shape[1:]), dtype=v.dtype, device="meta")  # shape only
        with guarded(group, like=like):
            return guarded_all_reduce(local(v), group)

    return product


def summed(flat: torch.Tensor, total: float, group: Group | None) -> tuple[torch.Tensor, float]:
    """A local sum ``(P,)`` and its sample count, each summed over the ranks: the counts by
    :func:`global_count` (which checks that every rank has ``P``), then ``flat`` by one
    all-reduce; call inside :func:`count_guard`."""
    if group is None:
        return flat, total
    total = global_count(total, flat.numel(), group)
    return guarded_all_reduce(flat, group), total


def draw_key(batch: int, group: Group | None) -> int:
    """The key of a batch's Monte Carlo draws: the batch index in one process (and on rank 0),
    moved past every other rank's on rank ``r > 0``, so the ranks draw independent labels."""
    return batch if group is None else batch + (group.rank << 40)
