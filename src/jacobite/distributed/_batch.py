"""This rank's share of a batch: :func:`shard` (a slice of ``n`` items) and :func:`shard_batch`
(that slice of every tensor and list in a pytree).

A *batch pytree* is a tensor, a list, or a tuple / named tuple / dict / dataclass of them: every
tensor and every list holds one entry per item along its leading dimension (a list: one object
per item, such as a status message); anything else (a string, a number, ``None``) is a constant
shared by the whole batch. Shares are contiguous, in rank order, and differ in size by at most
one, like ``torch.utils.data.DistributedSampler`` without padding or shuffling.

>>> import torch
>>> from jacobite.distributed import shard, shard_batch
>>> shard(10, None)
slice(0, 10, None)
>>> shard_batch({"x": torch.arange(4), "tag": "a"}, None)["x"]
tensor([0, 1, 2, 3])
"""

from __future__ import annotations

import copy
import dataclasses
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..errors import ArgumentTypeError, InvalidOptionError, ShapeError
from ._group import ProcessGroupLike, resolve

__all__ = ["shard", "shard_batch"]

T = TypeVar("T")
Leaf = torch.Tensor | list[Any]
Rebuild = Callable[[list[Any]], Any]


class Placeholder:
    """Stands for leaf ``i`` in a tree's skeleton (the tree sent without its leaves)."""

    def __init__(self, i: int) -> None:
        self.i = i


def flatten(tree: Any) -> tuple[list[Any], Rebuild]:
    """The batch leaves of ``tree`` (tensors, lists, placeholders) in a fixed order, and the
    function that builds the same tree around new leaves."""
    if isinstance(tree, (torch.Tensor, list, Placeholder)):
        return [tree], lambda xs: xs[0]
    if isinstance(tree, dict):
        keys = list(tree)
        return _join([flatten(tree[k]) for k in keys],
                     lambda vs: type(tree)(zip(keys, vs, strict=True)) if type(tree) is not dict
                     else dict(zip(keys, vs, strict=True)))
    if isinstance(tree, tuple):
        if hasattr(tree, "_fields"):
            return _join([flatten(v) for v in tree], lambda vs: type(tree)(*vs))
        return _join([flatten(v) for v in tree], tuple)
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        names = [f.name for f in dataclasses.fields(tree)]

        def build(vs: list[Any]) -> Any:
            new = copy.copy(tree)
            for name, v in zip(names, vs, strict=True):
                object.__setattr__(new, name, v)  # frozen dataclasses too, without __init__
            return new

        return _join([flatten(getattr(tree, n)) for n in names], build)
    return [], lambda xs: tree


def _join(parts: list[tuple[list[Any], Rebuild]],
          make: Callable[[list[Any]], Any]) -> tuple[list[Any], Rebuild]:
    leaves = [leaf for ls, _ in parts for leaf in ls]
    sizes = [len(ls) for ls, _ in parts]

    def rebuild(xs: list[Any]) -> Any:
        out, at = [], 0
        for (_, sub), k in zip(parts, sizes, strict=True):
            out.append(sub(xs[at:at + k]))
            at += k
        return make(out)

    return leaves, rebuild


def batch_size(leaves: list[Any], name: str = "tree") -> int:
    """The common leading size of the batch leaves; a typed error where there is none."""
    sizes = set()
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor) and leaf.dim() == 0:
            raise ShapeError(f"{name} holds a 0-dimensional tensor; every tensor needs a leading "
                             "batch dimension (use t.reshape(1) or keep it out of the tree)")
        sizes.add(leaf.shape[0] if isinstance(leaf, torch.Tensor) else len(leaf))
    if not sizes:
        raise ArgumentTypeError(f"{name} holds no tensor and no list to split; pass a tensor or "
                                "a tuple / dict / dataclass of tensors with a leading batch "
                                "dimension")
    if len(sizes) > 1:
        raise ShapeError(f"the tensors and lists of {name} have different leading sizes "
                         f"{sorted(sizes)}; give every one the same batch dimension first")
    return sizes.pop()


def shard(n: int, group: ProcessGroupLike) -> slice:
    """This rank's contiguous share of ``n`` items: rank ``r`` of ``N`` gets ``n // N`` items,
    one more where ``r < n % N``, in rank order. ``group=None``: all of them.

    >>> shard(5, None)
    slice(0, 5, None)
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ArgumentTypeError(f"n must be an int number of items, got {type(n).__name__}; "
                                "e.g. shard(len(dataset), group)")
    if n < 0:
        raise InvalidOptionError(f"n must be ≥ 0 items, got {n}; pass e.g. len(dataset)")
    g = resolve(group)
    if g is None:
        return slice(0, int(n))
    return share(int(n), g.rank, g.size)


def share(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s share of ``n`` items over ``size`` ranks."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard_batch(tree: T, group: ProcessGroupLike) -> T:
    """``tree`` with every tensor and list cut to this rank's :func:`shard` of the leading
    dimension (views, no copy); constants unchanged. Every rank holds the whole ``tree``.

    >>> import torch
    >>> x, y = shard_batch((torch.ones(6, 2), torch.zeros(6)), None)
    >>> x.shape, y.shape
    (torch.Size([6, 2]), torch.Size([6]))
    """
    leaves, rebuild = flatten(tree)
    n = batch_size(leaves)
    s = shard(n, group)
    return rebuild([leaf[s] for leaf in leaves])
