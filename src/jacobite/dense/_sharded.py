"""Dense Jacobians by blocks across the ranks of a ``torch.distributed`` process group.

The planner picks the mode for the whole Jacobian (forward: columns, one JVP per input entry;
reverse: rows, one VJP per output entry); the basis vectors are split evenly in rank order
(:func:`jacobite.distributed.shard`) and each rank computes its block, chunked under the memory
budget of the block alone. ``gather=None`` returns each rank's :class:`JacobianBlock`;
``gather=r`` sends the blocks to rank ``r``, which returns the whole Jacobian (the others
``None``) — refused with :class:`~jacobite.errors.JacobianTooLarge` on every rank, before any
work, where the whole matrix exceeds the budget.

>>> import torch, jacobite
>>> J = jacobite.jacobian(torch.sin, torch.zeros(3), process_group=None)  # one process
>>> J.shape
torch.Size([3, 3])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import vmap

from ..distributed import Group, gather_batch, guarded, guarded_all_gather, resolve, shard
from ..distributed.internal import check_rank
from ..errors import InvalidOptionError
from . import _plan
from ._engine import Problem, Rows, _basis, looped
from ._errors import translate

__all__ = ["JacobianBlock", "sharded_jacobian"]


@dataclass(frozen=True)
class JacobianBlock:
    """One rank's block of a Jacobian computed across a process group.

    Attributes:
        block: this rank's part of the flat ``(m, n)`` Jacobian (outputs, then inputs, each in
            pytree order): rows ``J[index, :]`` where ``dim == 0`` (reverse mode), columns
            ``J[:, index]`` where ``dim == 1`` (forward mode).
        index: the rows or columns this rank holds (contiguous, in rank order).
        dim: ``0`` rows, ``1`` columns.
        shape: ``(m, n)``, the whole flat Jacobian's shape.
        mode: ``"reverse"`` or ``"forward"``, as the planner chose for the whole Jacobian.
    """

    block: torch.Tensor
    index: slice
    dim: int
    shape: tuple[int, int]
    mode: str


def _rows(p: Problem, span: slice, step: int) -> torch.Tensor:
    """Rows ``span`` of the flat Jacobian by VJPs against chunks of output basis vectors."""
    with translate(p.fname, "reverse"):
        out_leaves, vjp_fn, _ = p.vjp()
        batched = looped(vjp_fn) if step == 1 else vmap(vjp_fn)
        parts = []
        for start in range(span.start, span.stop, step):
            stop = min(start + step, span.stop)
            basis = _basis(start, stop, out_leaves)
            grads = batched(basis[0] if len(basis) == 1 else basis)
            parts.append(torch.cat([g.reshape(stop - start, -1) for g in grads], dim=1))
    n = p.xin.numel
    ref = p.xin.leaves[0]
    return torch.cat(parts) if parts else torch.zeros(0, n, dtype=ref.dtype, device=ref.device)


def _cols(p: Problem, span: slice, step: int, m: int) -> torch.Tensor:
    """Columns ``span`` of the flat Jacobian (as ``(m, k)``) by JVPs against chunks of input
    basis vectors."""
    own = tuple(t.clone() for t in p.xin.leaves)

    def one(*t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return Problem.as_leaves(p.jvp(*t, leaves=own)[1])

    batched = looped(one) if step == 1 else vmap(one)
    parts = []
    with translate(p.fname, "forward"):
        for start in range(span.start, span.stop, step):
            stop = min(start + step, span.stop)
            tangents = batched(*_basis(start, stop, p.xin.leaves))
            parts.append(torch.cat([t.reshape(stop - start, -1) for t in tangents], dim=1))
    ref = p.xin.leaves[0]
    return (torch.cat(parts).T if parts
            else torch.zeros(m, 0, dtype=ref.dtype, device=ref.device))


def _whole(p: Problem, J: torch.Tensor, flat: bool,
           assemble: Callable[[Problem, Rows, str, bool], Any]) -> Any:
    """The gathered flat ``(m, n)`` Jacobian in :func:`jacobite.jacobian`'s layout."""
    if flat:
        return J
    if p.out is None:  # this rank's share was empty: evaluate once for the output layout
        with torch.no_grad():
            p.g(*p.xin.leaves)
    sizes = list(p.xin.sizes)
    blocks = list(torch.split(J, sizes, dim=1))  # rows of J per input leaf, as reverse mode
    return assemble(p, Rows(blocks, None, None), "reverse", False)


def sharded_jacobian(f: Callable[..., Any], args: tuple[Any, ...], argnums: Any, mode: str,
                     chunk_size: Any, flat: bool, memory_budget: Any, check_finite: bool,
                     process_group: Any, gather: Any,
                     assemble: Callable[[Problem, Rows, str, bool], Any]) -> Any:
    """:func:`jacobite.jacobian` with ``process_group=``: this rank's :class:`JacobianBlock`
    (``gather=None``), or the whole Jacobian on rank ``gather`` and ``None`` elsewhere.
    Called only with a process group or a ``gather`` rank (the latter alone is refused)."""
    group = resolve(process_group)
    if group is None:
        raise InvalidOptionError(
            f"gather={gather!r} needs a process_group; pass process_group=... (a "
            "torch.distributed group) or leave gather=None")
    if gather is not None:
        check_rank(gather, group, "gather")
    _plan.check_mode(mode)
    _plan.check_chunk_size(chunk_size)
    budget = _plan.resolve_budget(memory_budget)
    with guarded(group, like=torch.zeros(2, dtype=torch.int64), kind="all_gather"):
        return _blocks(f, args, argnums, mode, chunk_size, flat, budget, check_finite, group,
                       gather, assemble)


def _blocks(f: Callable[..., Any], args: tuple[Any, ...], argnums: Any, mode: str,
            chunk_size: Any, flat: bool, budget: int, check_finite: bool, group: Group,
            gather: int | None, assemble: Callable[[Problem, Rows, str, bool], Any]) -> Any:
    p = Problem.build(f, args, argnums, False, check_finite)
    probe = p.probe()
    n, m = p.xin.numel, probe.out_numel
    itemsize = max(probe.out_itemsize, *(t.element_size() for t in p.xin.leaves))
    if gather is not None:
        _plan.guard(m, n, itemsize, budget, "gathered dense Jacobian")
    chosen = _plan.make_plan(n, m, itemsize, probe, mode, chunk_size, 2**62, p.fname).mode
    span = shard(m if chosen == "reverse" else n, group)
    k = span.stop - span.start
    rows, cols = (k, n) if chosen == "reverse" else (m, k)
    step = _plan.make_plan(cols, rows, itemsize, probe, chosen, chunk_size, budget,
                           p.fname).chunk_size
    block = _rows(p, span, step) if chosen == "reverse" else _cols(p, span, step, m)
    if gather is None:  # every rank finished (a failed one would be waiting in this collective)
        guarded_all_gather(torch.zeros(2, dtype=torch.int64), group)
        return JacobianBlock(block, span, 0 if chosen == "reverse" else 1, (m, n), chosen)
    parts = gather_batch(block if chosen == "reverse" else block.T, group, dst=gather)
    if parts is None:
        return None
    J = parts if chosen == "reverse" else parts.T
    return _whole(p, J, flat, assemble)
