"""Per-sample Jacobians of a batch, without the block-diagonal whole-batch Jacobian."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_map

from .._modules import keeps_state
from .._validate import ChunkSize
from ..errors import (
    ArgnumsError,
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteError,
    ShapeError,
)
from . import _plan
from ._batch_of_one import batch_of_one, integer_input, transformable_kernels, wants_batch
from ._engine import Problem, forward_cols, reverse_rows
from ._errors import check_module_state
from ._saved import chunk
from ._trees import flatten_inputs, normalize_argnums
from .jacobian import _assemble, _flags

__all__ = ["batch_jacobian"]

#: torch's words for an operation that vmap cannot batch (nn.LSTM and nn.GRU without an initial
#: state write a batched result into an unbatched buffer): such a batch is looped over instead
_UNBATCHABLE = ("doesn't match the broadcast shape", "Batching rule not implemented",
                "vmap: inplace arithmetic")


def _loop(one: Callable[..., Any], args: tuple[Any, ...], dims: tuple[int | None, ...],
          batch: int) -> Any:
    """``vmap(one)`` as a Python loop over the samples, results stacked."""
    def pick(a: Any, d: int | None, i: int) -> Any:
        if d is None:
            return a
        return tree_map(lambda t: t.select(d, i) if isinstance(t, torch.Tensor) else t, a)

    outs = [one(*(pick(a, d, i) for a, d in zip(args, dims, strict=True))) for i in range(batch)]
    return tree_map(lambda *ts: torch.stack(ts), outs[0], *outs[1:])


def _in_dims(in_dims: int | tuple[int | None, ...], nargs: int) -> tuple[int | None, ...]:
    """``in_dims`` as one entry per argument: an int ≥ 0 (the batch dimension) or None (shared)."""
    def one(d: Any) -> int | None:
        if d is None:
            return None
        if isinstance(d, bool) or not isinstance(d, int):
            raise ArgumentTypeError(
                f"in_dims entries must be ints (the batch dimension) or None (an argument shared "
                f"by every sample), got {d!r}; e.g. in_dims=0 or in_dims=(0, None)")
        if d < 0:
            raise InvalidOptionError(f"in_dims entries must be ≥ 0 (count the batch dimension "
                                     f"from the front), got {d}")
        return d

    if not isinstance(in_dims, (tuple, list)):
        return (one(in_dims),) * nargs
    if len(in_dims) != nargs:
        raise ArgnumsError(f"in_dims has {len(in_dims)} entries for {nargs} arguments; give one "
                           "per argument (None for arguments shared by every sample)")
    return tuple(one(d) for d in in_dims)


@keeps_state
def batch_jacobian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
                   in_dims: int | tuple[int | None, ...] = 0, mode: _plan.Mode = "auto",
                   chunk_size: ChunkSize = "auto", flat: bool = False,
                   memory_budget: int | str | None = None, check_finite: bool = True,
                   return_value: bool = False, batched_model: bool | None = None) -> Any:
    """Per-sample Jacobians: ``f`` maps ONE sample to its output; ``args`` hold a batch.

    Returns a tensor of shape ``(B, *out_shape, *in_shape)`` (or ``(B, m, n)`` with
    ``flat=True``): the diagonal blocks of the whole-batch Jacobian, which is never formed. Each
    sample is differentiated separately (``vmap`` over the batch), so the result is right even
    for functions that mix samples when given a batch. ``in_dims`` says where the batch dimension
    is in each argument (``None``: shared by all samples), as in ``torch.func.vmap``. The batch is
    split into chunks so the working set stays under the memory budget. With
    ``return_value=True`` the result is ``(outputs, J)``. Wrap the result in
    :class:`jacobite.operators.BlockDiagonal` for a lazy whole-batch operator.

    ``batched_model`` says how ``f`` sees a sample. ``True``: ``f`` expects a batch (an
    ``nn.Module``: BatchNorm, ``nn.Flatten``, ``batch_first`` RNNs), so each sample is passed as
    a batch of one — a size-1 dimension inserted where ``in_dims`` puts the batch — and
    dimension 0 is removed from every output tensor (outputs must keep the batch first).
    ``False``: ``f`` maps one unbatched sample. ``None`` (default): ``True`` exactly when ``f``
    is an ``nn.Module``. Modules in training mode: BatchNorm mixes samples and is refused
    (:class:`~jacobite.errors.ModuleStateError`, call ``model.eval()``); Dropout draws one mask
    per sample (reverse mode; forward mode asks for ``model.eval()``). Integer arguments
    (token ids) cannot be differentiated: differentiate the embedding output or the
    parameters (:func:`jacobite.module_jacobian`).

    >>> import torch, jacobite
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    >>> jacobite.batch_jacobian(lambda v: v ** 2, x).tolist()
    [[[2.0, 0.0], [0.0, 4.0]], [[6.0, 0.0], [0.0, 8.0]]]
    >>> bn = torch.nn.BatchNorm1d(2).double().eval()   # expects (B, 2): a batch of one each
    >>> jacobite.batch_jacobian(bn, x).shape
    torch.Size([2, 2, 2])
    """
    _plan.check_mode(mode)
    _plan.check_chunk_size(chunk_size)
    _flags(flat=flat, check_finite=check_finite, return_value=return_value)
    check_module_state(f, per_sample=True)
    dims = _in_dims(in_dims, len(args))
    if wants_batch(f, batched_model):
        f = batch_of_one(f, dims)
    sizes = {leaf.shape[d] for a, d in zip(args, dims, strict=True) if d is not None
             for leaf in tree_flatten(a)[0] if isinstance(leaf, torch.Tensor) and leaf.ndim > d}
    if len(sizes) != 1:
        raise ShapeError(f"batched arguments must share one batch size along in_dims, found "
                         f"sizes {sorted(sizes) or 'none'}; check in_dims={in_dims}")
    batch = sizes.pop()
    positions, _ = normalize_argnums(argnums, len(args))
    integer_input(tuple(args[p] for p in positions), "a differentiated argument")
    if check_finite:  # only the differentiated arguments need to be finite floats
        flatten_inputs(tuple(args[p] for p in positions), "the batch", check_finite=True)
    if batch == 0:
        raise ShapeError("the batch is empty (batch size 0); pass at least one sample")
    sample = tuple(tree_map(lambda t, d=d: t.select(d, 0) if isinstance(t, torch.Tensor) else t, a)
                   if d is not None else a for a, d in zip(args, dims, strict=True))
    with transformable_kernels():
        return _run(f, args, dims, batch, sample, argnums, mode, chunk_size, flat,
                    memory_budget, return_value)


def _run(f: Callable[..., Any], args: tuple[Any, ...], dims: tuple[int | None, ...], batch: int,
         sample: tuple[Any, ...], argnums: int | tuple[int, ...], mode: _plan.Mode,
         chunk_size: ChunkSize, flat: bool, memory_budget: int | str | None,
         return_value: bool) -> Any:
    budget = _plan.resolve_budget(memory_budget)
    probe_p = Problem.build(f, sample, argnums, False, check_finite=False)
    plan = probe_p.probe_plan(mode, None, budget)
    _plan.guard(plan.m * batch, plan.n, plan.result_bytes // max(plan.m * plan.n, 1) or 8,
                budget, what="stack of per-sample Jacobians")
    if chunk_size == "auto":
        per_sample = plan.estimated_peak_bytes
        avail = budget - plan.result_bytes * batch
        batch_chunk = chunk(batch, per_sample, avail)
        step: int | None = plan.chunk_size
        if avail < per_sample:  # one whole sample does not fit: chunk the basis as well
            step = _plan.make_plan(plan.n, plan.m, 8, None, plan.mode, "auto",
                                   max(avail, 1) + plan.result_bytes).chunk_size
    else:
        batch_chunk, step = batch, chunk_size
    chosen = plan.mode

    def one(*a: Any) -> tuple[Any, Any]:
        p = Problem.build(f, a, argnums, False, check_finite=False)
        run = reverse_rows if chosen == "reverse" or p.xin.numel == 0 else forward_cols
        rows = run(p, step, budget, prealloc=False)
        return rows.value, _assemble(p, rows, "reverse" if run is reverse_rows else "forward",
                                     flat)

    # randomness="different": each sample draws its own dropout mask, as in a batched forward
    # pass; within a sample the plan keeps one draw (reverse mode for random functions)
    try:
        value, J = vmap(one, in_dims=dims, randomness="different",
                        chunk_size=None if batch_chunk >= batch else batch_chunk)(*args)
    except RuntimeError as exc:
        if isinstance(exc, JacobiteError) or not any(n in str(exc) for n in _UNBATCHABLE):
            raise
        value, J = _loop(one, args, dims, batch)
    return (value, J) if return_value else J
