"""Collectives that fail together: a rank whose local work raises never leaves the others
waiting inside a collective.

The payload of every guarded collective carries one more element, the rank's failure flag. A
rank that raises inside a :func:`guarded` block still joins the block's collective — with zeros
and the flag set — and then re-raises its own error; the healthy ranks see the flag, fetch the
failing ranks' one-line messages with one ``all_gather_object`` and raise
:class:`~jacobite.errors.RankFailedError` naming them. On the happy path this costs one element
per collective and no extra collective.

Every guarded collective is an all-reduce: a broadcast is the sum of the source's tensor and
zeros from the others, a gather the sum of rows each rank fills with its own part, so the
values arrive exactly (``x + 0 == x``) and identical on every rank.

>>> import torch
>>> from jacobite.distributed import guarded, guarded_all_reduce
>>> v = torch.ones(3)
>>> with guarded(None, like=v):
...     guarded_all_reduce(2 * v, None)  # one process: the tensor itself
tensor([2., 2., 2.])
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Literal, cast

import torch
import torch.distributed as dist

from .._validate import choice
from ..errors import ArgumentTypeError, InvalidOptionError, RankFailedError
from ._group import Group, ProcessGroupLike, resolve
from ._traffic import record

__all__ = ["guarded", "guarded_all_gather", "guarded_all_reduce", "guarded_broadcast"]

Op = Literal["sum", "max", "min"]
Kind = Literal["all_reduce", "broadcast", "all_gather"]

_active = threading.local()


def _guards() -> list[guarded]:
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def _reduce_op(op: Op) -> dist.ReduceOp.RedOpType:
    return {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]


def _tensor(t: object, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}; "
                                "pass the tensor to communicate")
    if t.is_complex() or t.dtype == torch.bool:
        raise ArgumentTypeError(f"{name} must be a real floating or integer tensor, got "
                                f"{t.dtype}; convert it first, e.g. torch.view_as_real(t)")
    return t


def _flagged_all_reduce(g: Group, payload: torch.Tensor, op: Op,
                        failure: str | None = None) -> torch.Tensor:
    """All-reduce ``payload`` (flat, on ``g.device``) with this rank's flag appended (set where
    this rank failed with the message ``failure``, negative for ``"min"``); the reduced payload,
    or :class:`RankFailedError` where another rank's flag is set."""
    flag = 0 if failure is None else -1 if op == "min" else 1
    buf = torch.cat([payload, payload.new_full((1,), flag)])
    record(buf.numel() * buf.element_size())
    dist.all_reduce(buf, op=_reduce_op(op), group=g.pg)
    if failure is not None or bool(buf[-1] != 0):
        _raise_failures(g, failure)
    return buf[:-1]


def failure_text(error: BaseException) -> str:
    """What the other ranks are told of this rank's ``error``: its class and the first line of
    its message, at most 300 characters."""
    line = (str(error).splitlines() or [""])[0]
    return f"{type(error).__name__}: {line}"[:300]


def _raise_failures(g: Group, message: str | None) -> None:
    """Exchange the failing ranks' messages; a healthy rank raises :class:`RankFailedError`."""
    messages: list[str | None] = [None] * g.size
    dist.all_gather_object(messages, message, group=g.pg)
    record(len(repr(message)))
    if message is not None:
        return
    failed = "; ".join(f"rank {r} failed: {m}" for r, m in enumerate(messages) if m is not None)
    raise RankFailedError(
        f"{failed or 'another rank failed'} — fix the error on that rank (its own traceback is "
        "raised there); the other ranks stopped instead of waiting in the collective")


class guarded:
    """A block whose one guarded collective every rank joins, even a rank that raised first.

    ``like`` is the tensor (shape and dtype) the block will pass to its guarded collective;
    ``kind`` and ``op`` name that collective. Where the block raises before the collective, this
    rank joins it with zeros and its failure flag, then re-raises its own error; the other ranks
    raise :class:`~jacobite.errors.RankFailedError`. ``group=None``: nothing to guard.

    >>> import torch
    >>> with guarded(None, like=torch.zeros(2)):
    ...     pass

    On every rank of a group (not run as a doctest):

    ```python
    with guarded(group, like=v):
        local = local_product(v)          # may raise on one rank
        total = guarded_all_reduce(local, group)
    ```
    """

    def __init__(self, group: ProcessGroupLike, like: torch.Tensor, *, kind: Kind = "all_reduce",
                 op: Op = "sum") -> None:
        self.group = resolve(group)
        self.like = _tensor(like, "like")
        self.kind = cast(Kind, choice(kind, "kind", ("all_reduce", "broadcast", "all_gather")))
        self.op = cast(Op, choice(op, "op", ("sum", "max", "min")))
        self.joined = False

    def __enter__(self) -> guarded:
        _guards().append(self)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        _guards().remove(self)
        g = self.group
        if g is None or error is None or self.joined or not isinstance(error, Exception):
            return
        self.joined = True
        rows = g.size if self.kind == "all_gather" else 1
        zeros = torch.zeros(rows * self.like.numel(), dtype=self.like.dtype, device=g.device)
        # where the group itself is broken, this rank's own error is what matters
        with contextlib.suppress(Exception):
            _flagged_all_reduce(g, zeros, self.op if self.kind == "all_reduce" else "sum",
                                failure_text(error))


def _mark_joined(g: Group) -> None:
    """A guarded collective ran: every open block on ``g`` has joined (a later failure cannot
    be matched by the healthy ranks, which have moved on)."""
    for guard in _guards():
        if guard.group is not None and guard.group.pg is g.pg:
            guard.joined = True


def guarded_all_reduce(tensor: torch.Tensor, group: ProcessGroupLike,
                       op: Op = "sum") -> torch.Tensor:
    """The all-reduce (``"sum"``, ``"max"`` or ``"min"``) of ``tensor`` over the group, the
    same bits on every rank; raises :class:`~jacobite.errors.RankFailedError` where a rank
    failed inside its :class:`guarded` block. ``group=None``: ``tensor`` itself.

    >>> import torch
    >>> guarded_all_reduce(torch.tensor([1.0, 2.0]), None, op="max")
    tensor([1., 2.])
    """
    t = _tensor(tensor, "tensor")
    op = cast(Op, choice(op, "op", ("sum", "max", "min")))
    g = resolve(group)
    if g is None:
        return t
    _mark_joined(g)
    out = _flagged_all_reduce(g, t.detach().reshape(-1).to(g.device), op)
    return out.reshape(t.shape).to(t.device)


def guarded_broadcast(tensor: torch.Tensor, group: ProcessGroupLike, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s ``tensor`` on every rank (the others pass a tensor of the same shape and
    dtype, whose values are ignored), guarded like :func:`guarded_all_reduce`. ``src`` is a rank
    within the group. ``group=None``: ``tensor`` itself.

    >>> import torch
    >>> guarded_broadcast(torch.arange(3.0), None)
    tensor([0., 1., 2.])
    """
    t = _tensor(tensor, "tensor")
    g = resolve(group)
    check_rank(src, g, "src")
    if g is None:
        return t
    _mark_joined(g)
    payload = t.detach().reshape(-1).to(g.device)
    if g.rank != src:
        payload = torch.zeros_like(payload)
    return _flagged_all_reduce(g, payload, "sum").reshape(t.shape).to(t.device)


def guarded_all_gather(tensor: torch.Tensor, group: ProcessGroupLike) -> torch.Tensor:
    """Every rank's ``tensor`` stacked in rank order, shape ``(size, *tensor.shape)``, on every
    rank (all ranks pass the same shape and dtype), guarded like :func:`guarded_all_reduce`.
    Meant for small payloads (counts, sizes): each rank reduces ``size`` times its tensor.
    ``group=None``: ``tensor[None]``.

    >>> import torch
    >>> guarded_all_gather(torch.tensor([5, 7]), None)
    tensor([[5, 7]])
    """
    t = _tensor(tensor, "tensor")
    g = resolve(group)
    if g is None:
        return t.unsqueeze(0)
    _mark_joined(g)
    rows = torch.zeros((g.size, t.numel()), dtype=t.dtype, device=g.device)
    rows[g.rank] = t.detach().reshape(-1).to(g.device)
    out = _flagged_all_reduce(g, rows.reshape(-1), "sum")
    return out.reshape(g.size, *t.shape).to(t.device)


def check_rank(r: object, g: Group | None, name: str) -> int:
    """``r`` must be a rank within ``g`` (``0`` for one process)."""
    size = 1 if g is None else g.size
    if isinstance(r, bool) or not isinstance(r, int):
        raise ArgumentTypeError(f"{name} must be an int rank within the group, got "
                                f"{type(r).__name__}; e.g. {name}=0")
    if not 0 <= r < size:
        raise InvalidOptionError(f"{name}={r} is not a rank of a group of {size}; pass "
                                 f"0 ≤ {name} < {size}")
    return r
