"""Entries for jacobite.distributed, called without a process group (``None``): a bad
``process_group=`` (a wrong type, or ``'world'`` while torch.distributed is not initialised),
bad tensors, batches, ranks and options."""

from __future__ import annotations

import torch

from jacobite import distributed as D
from jacobite.errors import ArgumentTypeError, DistributedError, InvalidOptionError, ShapeError

from . import choice, entry, typed

V = torch.ones(3)
BATCH = {"x": torch.ones(4, 2), "status": ["ok"] * 4}


def _group(slot: int | str) -> list:
    """A process group: wrong types, and 'world' without an initialised torch.distributed."""
    return [typed(slot, 3, ArgumentTypeError), typed(slot, "everyone", ArgumentTypeError),
            typed(slot, object(), ArgumentTypeError), typed(slot, 1.5, ArgumentTypeError),
            typed(slot, True, ArgumentTypeError), typed(slot, [0, 1], ArgumentTypeError),
            typed(slot, "world", DistributedError)]


def _tensor(slot: int | str) -> list:
    return [typed(slot, "abc", ArgumentTypeError), typed(slot, None, ArgumentTypeError),
            typed(slot, [1.0, 2.0], ArgumentTypeError),
            typed(slot, torch.ones(2, dtype=torch.complex64), ArgumentTypeError),
            typed(slot, torch.ones(2, dtype=torch.bool), ArgumentTypeError)]


def _rank(slot: str) -> list:
    return [typed(slot, 1, InvalidOptionError), typed(slot, -1, InvalidOptionError),
            typed(slot, 0.0, ArgumentTypeError), typed(slot, "0", ArgumentTypeError)]


def _batch(slot: int) -> list:
    return [typed(slot, 3, ArgumentTypeError), typed(slot, "abc", ArgumentTypeError),
            typed(slot, {"x": torch.ones(2), "y": torch.ones(3)}, ShapeError),
            typed(slot, torch.tensor(1.0), ShapeError), typed(slot, {}, ArgumentTypeError)]


ENTRIES = [
    entry("jacobite.distributed.resolve", D.resolve, None,
          cases=[*_group(0), typed(0, b"world", ArgumentTypeError)]),
    entry("jacobite.distributed.guarded", D.guarded, None, V,
          cases=[*_group(0), *_tensor(1), *choice("kind"), *choice("op")]),
    entry("jacobite.distributed.guarded_all_reduce", D.guarded_all_reduce, V, None,
          cases=[*_tensor(0), *_group(1), *choice("op")]),
    entry("jacobite.distributed.guarded_broadcast", D.guarded_broadcast, V, None,
          cases=[*_tensor(0), *_group(1), *_rank("src")]),
    entry("jacobite.distributed.guarded_all_gather", D.guarded_all_gather, V, None,
          cases=[*_tensor(0), *_group(1)]),
    entry("jacobite.distributed.shard", D.shard, 10, None,
          cases=[typed(0, -1, InvalidOptionError), typed(0, 2.5, ArgumentTypeError),
                 typed(0, "10", ArgumentTypeError), typed(0, None, ArgumentTypeError),
                 typed(0, True, ArgumentTypeError), *_group(1)]),
    entry("jacobite.distributed.shard_batch", D.shard_batch, BATCH, None,
          cases=[*_batch(0), *_group(1)]),
    entry("jacobite.distributed.scatter_batch", D.scatter_batch, BATCH, None,
          cases=[*_batch(0), *_group(1), *_rank("src")]),
    entry("jacobite.distributed.gather_batch", D.gather_batch, BATCH, None,
          cases=[*_batch(0), *_group(1), *_rank("dst")]),
]
