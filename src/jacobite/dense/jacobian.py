"""``jacobian`` and ``value_and_jacobian``: dense Jacobians in forward, reverse or auto mode."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, overload

import torch
from torch.utils._pytree import tree_unflatten

from .. import _validate
from .._modules import keeps_state
from .._validate import ChunkSize
from ..errors import InvalidOptionError
from . import _constant, _fast, _plan
from ._engine import Problem, Rows, forward_cols, reverse_rows
from ._plan import Mode
from ._trees import LEAF_SPEC, all_finite, function_name

if TYPE_CHECKING:
    from ..operators import SparseOperator
    from ..sparse._select import SparseMode

__all__ = ["jacobian", "jacobian_plan", "value_and_jacobian"]


def _assemble(p: Problem, rows: Rows, mode: str, flat: bool) -> Any:
    out = p.out
    assert out is not None
    x = p.xin
    blocks = rows.blocks
    if x.spec is LEAF_SPEC and out.spec is LEAF_SPEC and not flat:
        oshape, ishape = out.shapes[0], x.shapes[0]
        if mode == "reverse":
            return blocks[0].reshape((*oshape, *ishape))
        blk = blocks[0].reshape((*ishape, *oshape))
        return blk.movedim(tuple(range(len(ishape))),
                           tuple(range(len(oshape), len(oshape) + len(ishape))))
    if flat:
        whole = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=1)
        return whole if mode == "reverse" else whole.T
    per_out = []
    o = 0
    for k, (oshape, osize) in enumerate(zip(out.shapes, out.sizes, strict=True)):
        parts: list[torch.Tensor] = []
        q = 0
        for j, (ishape, isize) in enumerate(zip(x.shapes, x.sizes, strict=True)):
            if mode == "reverse":
                blk = blocks[j][o:o + osize].reshape((*oshape, *ishape))
            else:
                blk = blocks[k][q:q + isize].reshape((*ishape, *oshape))
                blk = blk.movedim(tuple(range(len(ishape))),
                                  tuple(range(len(oshape), len(oshape) + len(ishape))))
            parts.append(blk)
            q += isize
        per_out.append(x.unflatten(parts))
        o += osize
    return tree_unflatten(per_out, out.spec)


# The express lane: f(x) of ONE floating tensor whose plan (one chunk, one tensor out) is already
# known. Keyed by (id(f), shape, dtype, device, mode, chunk_size, budget); the weak reference
# guards against a reused id. Everything else takes the general route below, which fills it.
_EXPRESS: dict[Any, tuple[Any, _plan.JacobianPlan]] = {}


def _single(f: Callable[..., Any], x: torch.Tensor, plan: _plan.JacobianPlan, mode_asked: str,
            budget: int, fname: str) -> tuple[Any, torch.Tensor] | None:
    """``(f(x), J)`` for one tensor in and (by the plan) one tensor out: a constant Jacobian by
    one batched backward pass (:mod:`._constant`) where reverse is planned, or auto with few
    enough outputs, and nothing needs J differentiable; else vectorised ``torch.func``."""
    if (plan.mode == "reverse" or (mode_asked == "auto" and plan.m <= _constant.LEAN_MAX_ROWS)) \
            and not plan.transform_only and _constant.available(x):
        res = _constant.reverse(f, x, budget, fname)
        if res is not None:
            return res
    if plan.mode == "reverse":
        return _fast.reverse(f, x, budget, fname)
    return _fast.forward(f, x, plan.m, budget, fname)


def _express(f: Callable[..., Any], x: torch.Tensor, mode: str, chunk_size: Any, flat: bool,
             budget: int, check_finite: bool) -> tuple[Any, Any, Any] | None:
    hit = _EXPRESS.get((id(f), x.shape, x.dtype, x.device, mode, chunk_size, budget))
    if hit is None or hit[0]() is not f or not x.is_floating_point():
        return None
    if check_finite and not all_finite(x):
        return None  # the general route raises the typed error
    plan = hit[1]
    _plan.log.debug("jacobian plan (cached): %s", plan)
    res = _single(f, x, plan, mode, budget, function_name(f))
    if res is None:
        return None
    value, J = res
    return value, (J.reshape(value.numel(), x.numel()) if flat else J), None


def _remember(f: Callable[..., Any], x: torch.Tensor, mode: str, chunk_size: Any, budget: int,
              plan: _plan.JacobianPlan) -> None:
    try:
        ref = weakref.ref(f)
    except TypeError:
        return
    if len(_EXPRESS) > 256:
        _EXPRESS.clear()
    _EXPRESS[(id(f), x.shape, x.dtype, x.device, mode, chunk_size, budget)] = (ref, plan)


def _flags(**flags: Any) -> None:
    """Each flag must be True or False (a string such as 'yes' is a mistake, not a truthy value)."""
    for name, value in flags.items():
        _validate.boolean(value, name)


def _compute(f: Callable[..., Any], args: tuple[Any, ...], argnums: Any, mode: str, has_aux: bool,
             chunk_size: ChunkSize, flat: bool, memory_budget: int | str | None,
             check_finite: bool) -> tuple[Any, Any, Any]:
    _flags(has_aux=has_aux, flat=flat, check_finite=check_finite)
    express = (len(args) == 1 and argnums == 0 and not has_aux and type(argnums) is int
               and isinstance(args[0], torch.Tensor))
    if express:
        budget = _plan.resolve_budget(memory_budget)
        done = _express(f, args[0], mode, chunk_size, flat, budget, check_finite)
        if done is not None:
            return done
    _plan.check_mode(mode)
    _plan.check_chunk_size(chunk_size)
    p = Problem.build(f, args, argnums, has_aux, check_finite)
    budget = _plan.resolve_budget(memory_budget)
    # Always plan (the probe is cached per function and signature): the memory guard needs the
    # output size before anything of the result's size is allocated, in every mode.
    plan = p.probe_plan(mode, chunk_size, budget)
    mode_asked = mode
    mode, step = plan.mode, plan.chunk_size
    # chunk_size=1 is a plain loop (no vmap), as in torch.func: never the vectorised fast path
    single = plan.single_tensor_output and plan.num_chunks <= 1 and chunk_size != 1
    if p.xin.numel == 0:
        mode = "reverse"
    if single and not has_aux and p.xin.spec is LEAF_SPEC and not p.is_tuple:
        if express and p.xin.numel > 0:
            _remember(f, args[0], mode_asked, chunk_size, budget, plan)
        fx = _fast.bind(f, args, p.positions[0])
        x = p.xin.leaves[0]
        res = _single(fx, x, plan if mode == plan.mode else replace(plan, mode=mode),
                      mode_asked, budget, p.fname)
        if res is not None:
            value, J = res
            if flat:
                J = J.reshape(value.numel(), x.numel())
            return value, J, None
    rows = (reverse_rows if mode == "reverse" else forward_cols)(p, step, budget)
    return rows.value, _assemble(p, rows, mode, flat), rows.aux


@overload
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
                       mode: Mode = ..., has_aux: Literal[False] = ...,
                       chunk_size: ChunkSize = ..., flat: Literal[True],
                       memory_budget: int | str | None = ...,
                       check_finite: bool = ...) -> tuple[Any, torch.Tensor]: ...
@overload
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
                       mode: Mode = ..., has_aux: Literal[True],
                       chunk_size: ChunkSize = ..., flat: Literal[True],
                       memory_budget: int | str | None = ...,
                       check_finite: bool = ...) -> tuple[Any, torch.Tensor, Any]: ...
@overload
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
                       mode: Mode = ..., has_aux: Literal[False] = ...,
                       chunk_size: ChunkSize = ..., flat: bool = ...,
                       memory_budget: int | str | None = ...,
                       check_finite: bool = ...) -> tuple[Any, Any]: ...
@overload
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
                       mode: Mode = ..., has_aux: Literal[True],
                       chunk_size: ChunkSize = ..., flat: bool = ...,
                       memory_budget: int | str | None = ...,
                       check_finite: bool = ...) -> tuple[Any, Any, Any]: ...
@overload
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
                       mode: Mode = ..., has_aux: bool = ...,
                       chunk_size: ChunkSize = ..., flat: bool = ...,
                       memory_budget: int | str | None = ...,
                       check_finite: bool = ...) -> tuple[Any, ...]: ...
@keeps_state
def value_and_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
                       mode: Mode = "auto", has_aux: bool = False,
                       chunk_size: ChunkSize = "auto", flat: bool = False,
                       memory_budget: int | str | None = None,
                       check_finite: bool = True) -> tuple[Any, ...]:
    """``(f(*args), J)`` from one pass — or ``(f(*args), J, aux)`` with ``has_aux=True``.

    Takes the same arguments as :func:`jacobian`.

    >>> import torch, jacobite
    >>> value, J = jacobite.value_and_jacobian(torch.sin, torch.zeros(2, dtype=torch.float64))
    >>> value.tolist(), J.tolist()
    ([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    """
    value, J, aux = _compute(f, args, argnums, mode, has_aux, chunk_size, flat, memory_budget,
                             check_finite)
    return (value, J, aux) if has_aux else (value, J)


@overload
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
             mode: Mode = ..., has_aux: Literal[False] = ..., chunk_size: ChunkSize = ...,
             flat: Literal[True], memory_budget: int | str | None = ...,
             check_finite: bool = ..., sparse: Literal[False] = ...,
             process_group: None = ..., gather: None = ...) -> torch.Tensor: ...
@overload
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
             mode: Mode = ..., has_aux: Literal[True], chunk_size: ChunkSize = ...,
             flat: Literal[True], memory_budget: int | str | None = ...,
             check_finite: bool = ..., sparse: Literal[False] = ...,
             process_group: None = ..., gather: None = ...) -> tuple[torch.Tensor, Any]:
    ...
@overload
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
             mode: SparseMode = ..., has_aux: Literal[False] = ...,
             chunk_size: ChunkSize = ..., flat: bool = ...,
             memory_budget: int | str | None = ..., check_finite: bool = ...,
             sparse: Literal[True], process_group: None = ...,
             gather: None = ...) -> SparseOperator: ...
@overload
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
             mode: Mode = ..., has_aux: Literal[True], chunk_size: ChunkSize = ...,
             flat: bool = ..., memory_budget: int | str | None = ...,
             check_finite: bool = ..., sparse: Literal[False] = ...,
             process_group: None = ..., gather: None = ...) -> tuple[Any, Any]: ...
@overload
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = ...,
             mode: SparseMode = ..., has_aux: bool = ..., chunk_size: ChunkSize = ...,
             flat: bool = ..., memory_budget: int | str | None = ...,
             check_finite: bool = ..., sparse: bool = ..., process_group: Any = ...,
             gather: int | None = ...) -> Any: ...
@keeps_state
def jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
             mode: SparseMode = "auto", has_aux: bool = False,
             chunk_size: ChunkSize = "auto", flat: bool = False,
             memory_budget: int | str | None = None, check_finite: bool = True,
             sparse: bool = False, process_group: Any = None, gather: int | None = None) -> Any:
    """The Jacobian of ``f`` at ``args`` with respect to the arguments named by ``argnums``.

    Args:
        f: a function of tensors (or pytrees of tensors) returning a tensor or a pytree of them.
        *args: the point; the arguments at ``argnums`` must be floating-point tensors (pytrees).
        argnums: which positional argument(s) to differentiate; a tuple gives a tuple of results.
        mode: ``"forward"`` (one JVP per input entry), ``"reverse"`` (one VJP per output entry) or
            ``"auto"``: forward when its estimated cost is lower — clearly fewer inputs than
            outputs, ``2 n + 64 < m``, since a vmapped JVP costs about two VJPs and forward mode
            has a fixed cost (see ``jacobite.dense._plan.auto_mode``) — reverse otherwise. The
            choice is logged at DEBUG level on the ``jacobite.dense`` logger and is returned by
            :func:`jacobian_plan`. Where nothing differentiates through the result (no
            transform around the call, ``x`` not requiring grad) and ``f`` maps one tensor to
            at most 256 outputs, ``"auto"`` runs reverse mode as one recorded forward pass and
            one batched backward pass (``jacobite.dense._constant``), faster there than either
            mode through ``torch.func``; the values agree to rounding.
        has_aux: ``f`` returns ``(output, aux)``; the result is then ``(J, aux)``.
        chunk_size: basis vectors per vectorised call: ``"auto"`` keeps the peak working set under
            the memory budget, ``None`` does all at once, an int fixes it.
        flat: return one 2-D ``(m, n)`` matrix (outputs, then inputs, each in pytree order)
            instead of torch.func's ``output shape + input shape`` convention.
        memory_budget: bytes (or a string like ``"512 MiB"``) for this call; defaults to
            :func:`jacobite.config.get_memory_budget` (1 GiB). A result that alone exceeds it
            raises :class:`~jacobite.errors.JacobianTooLarge` before anything large is allocated.
        check_finite: raise :class:`~jacobite.errors.NonFiniteInputError` on NaN/Inf inputs.
        sparse: detect the sparsity pattern, color it and evaluate the compressed products
            (:func:`jacobite.sparse.prepare`); returns a CSR
            :class:`~jacobite.operators.SparseOperator` of shape ``(m, n)`` (outputs and the
            input flattened). One tensor argument, no ``has_aux``; ``mode`` may be
            ``"auto"``, ``"forward"``, ``"reverse"`` or ``"bidirectional"``. Detection runs on
            every call: keep a plan from ``prepare`` to evaluate repeatedly.
        process_group: ``None`` (one process), or a ``torch.distributed`` process group (or
            ``"world"``) to compute the Jacobian by blocks, every rank calling with the same
            ``f`` and ``args``: the planner picks the mode, and each rank evaluates its even,
            contiguous share of the basis (rows in reverse mode, columns in forward mode),
            chunked under the budget of its block (see :mod:`jacobite.dense._sharded`).
        gather: with a process group, ``None`` returns each rank's
            :class:`~jacobite.dense.JacobianBlock` (its rows or columns of the flat
            ``(m, n)`` matrix and the slice they cover); a rank ``r`` returns the whole
            Jacobian (this function's usual layout) on rank ``r`` and ``None`` on the others,
            refused with :class:`~jacobite.errors.JacobianTooLarge` where it exceeds the budget.

    >>> import torch, jacobite
    >>> f = lambda v: torch.stack([v[0] ** 2 + v[1], v[0] * v[1]])
    >>> jacobite.jacobian(f, torch.tensor([1.0, 2.0], dtype=torch.float64)).tolist()
    [[2.0, 1.0], [2.0, 1.0]]
    >>> jacobite.jacobian(torch.sin, torch.zeros(3), sparse=True).to_scipy().nnz
    3
    """
    _flags(sparse=sparse)
    if process_group is not None or gather is not None:
        from ._sharded import sharded_jacobian

        if sparse or has_aux:
            raise InvalidOptionError("process_group= computes dense Jacobians without aux; "
                                     "drop sparse=True / has_aux=True, or pass "
                                     "process_group=None")
        return sharded_jacobian(f, args, argnums, mode, chunk_size, flat, memory_budget,
                                check_finite, process_group, gather, _assemble)
    if sparse:
        from ..sparse.evaluate import one_call

        # one_call checks every argument with the same shared checks as the dense path
        return one_call(f, args, argnums, mode, has_aux, check_finite, chunk_size=chunk_size,
                        flat=flat, memory_budget=memory_budget)
    _, J, aux = _compute(f, args, argnums, mode, has_aux, chunk_size, flat, memory_budget,
                         check_finite)
    return (J, aux) if has_aux else J


@keeps_state
def jacobian_plan(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
                  mode: Mode = "auto", has_aux: bool = False,
                  chunk_size: ChunkSize = "auto",
                  memory_budget: int | str | None = None) -> _plan.JacobianPlan:
    """How :func:`jacobian` would compute this Jacobian: mode, chunk size, memory — a dry run.

    >>> import torch, jacobite
    >>> plan = jacobite.jacobian_plan(lambda x: x.repeat(100), torch.ones(3))
    >>> plan.mode, plan.n, plan.m
    ('forward', 3, 300)
    """
    _plan.check_mode(mode)
    _plan.check_chunk_size(chunk_size)
    _flags(has_aux=has_aux)
    p = Problem.build(f, args, argnums, has_aux, check_finite=False)
    return p.probe_plan(mode, chunk_size, _plan.resolve_budget(memory_budget))
