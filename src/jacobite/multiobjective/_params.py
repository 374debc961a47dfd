"""Shared plumbing of :mod:`gramian` and :mod:`backward`: checking losses and parameters,
finding the leaves of an autograd graph, batched (row-chunked) backward passes, accumulation.

Nothing here differentiates by itself: every derivative comes from ``torch.autograd.grad``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from .. import _validate, config
from .._validate import ChunkSize
from ..errors import (
    ArgnumsError,
    DtypeError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)

__all__ = ["accumulate", "as_losses", "batched_grads", "check_params", "gram", "leaf_params",
           "resolve_chunk", "row_chunk", "vmap_chunk"]


def as_losses(losses: Tensor | Sequence[Tensor], what: str = "losses") -> Tensor:
    """Check the losses and return them as one 1-D tensor of length m (stacked if a sequence)."""
    if isinstance(losses, (list, tuple)):
        if not losses:
            raise ShapeError(f"{what} is empty; pass at least one loss")
        bad = [i for i, t in enumerate(losses) if not isinstance(t, Tensor) or t.numel() != 1]
        if bad:
            raise ShapeError(f"{what}[{bad[0]}] is not a scalar tensor; pass a sequence of "
                             "scalar losses or one 1-D tensor of losses")
        losses = torch.stack([t.reshape(()) for t in losses])
    if not isinstance(losses, Tensor):
        raise ShapeError(f"{what} must be a 1-D tensor (one entry per objective) or a sequence "
                         f"of scalar tensors, got {type(losses).__name__}")
    if losses.ndim != 1:
        raise ShapeError(f"{what} must be 1-D (one entry per objective), got shape "
                         f"{tuple(losses.shape)}; flatten it (losses.reshape(-1)) or, for one "
                         "loss per example, do not reduce over the batch")
    if losses.numel() == 0:
        raise ShapeError(f"{what} is empty; pass at least one loss")
    if not losses.is_floating_point():
        raise DtypeError(f"{what} have dtype {losses.dtype}; losses must be floating point")
    if not bool(torch.isfinite(losses.detach()).all()):
        bad = torch.nonzero(~torch.isfinite(losses.detach())).flatten().tolist()
        raise NonFiniteInputError(f"{what} {bad[:5]} are NaN or infinite; fix the model or data "
                                  "(e.g. lower the learning rate) before backward")
    if not losses.requires_grad:
        raise ArgnumsError(f"{what} do not depend on any tensor with requires_grad=True; compute "
                           "them from the model's parameters (and not under torch.no_grad())")
    return losses


def leaf_params(roots: Sequence[Tensor], excluded: Sequence[Tensor] = ()) -> list[Tensor]:
    """Leaf tensors (those autograd accumulates into) reachable from ``roots``' graph, breadth
    first, without walking through the graph nodes of ``excluded``."""
    seen = {t.grad_fn for t in excluded if t.grad_fn is not None}
    queue = deque(t.grad_fn for t in roots if t.grad_fn is not None and t.grad_fn not in seen)
    seen.update(queue)
    leaves: list[Tensor] = []
    ids: set[int] = set()
    while queue:
        node = queue.popleft()
        var = getattr(node, "variable", None)
        if isinstance(var, Tensor) and id(var) not in ids:
            ids.add(id(var))
            leaves.append(var)
        edges = getattr(node, "next_functions", None)
        if edges is None:  # pragma: no cover - an autograd without this attribute
            raise UnsupportedOperationError(
                "this torch version does not expose the autograd graph's edges, so the "
                "parameters cannot be found from the losses; pass params explicitly")
        for child, _ in edges:
            if child is not None and child not in seen:
                seen.add(child)
                queue.append(child)
    return leaves


def check_params(params: Iterable[Tensor] | Tensor, what: str = "params") -> list[Tensor]:
    """A list of distinct tensors that can receive a ``.grad``."""
    if isinstance(params, Tensor):
        params = [params]
    out: list[Tensor] = []
    ids: set[int] = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ArgnumsError(f"{what}[{i}] is a {type(p).__name__}, not a tensor; pass "
                               "model.parameters() or a list of tensors")
        if not p.requires_grad:
            raise ArgnumsError(f"{what}[{i}] (shape {tuple(p.shape)}) has requires_grad=False; "
                               "call requires_grad_() on it or leave it out")
        if not (p.is_leaf or p.retains_grad):
            raise ArgnumsError(f"{what}[{i}] is not a leaf tensor, so it has no .grad to fill; "
                               "pass leaf parameters (or call retain_grad() on it)")
        if id(p) not in ids:
            ids.add(id(p))
            out.append(p)
    if not out:
        raise ArgnumsError(f"no {what} to differentiate: the list is empty (or the losses "
                           "depend on no tensor with requires_grad=True)")
    return out


def resolve_chunk(chunk_size: ChunkSize) -> ChunkSize:
    """The package's ``chunk_size``: ``"auto"`` (as many rows per pass as the memory budget
    allows), ``None`` (all at once) or an int ≥ 1 (``1``: a plain loop, no vmap)."""
    return _validate.chunk_size(chunk_size)


def row_chunk(m: int, bytes_per_row: int, chunk_size: ChunkSize) -> int:
    """Rows per batched backward pass for a validated ``chunk_size``: ``"auto"`` as many as the
    memory budget allows (about three row-sized buffers per row: the gradient and the
    intermediates), ``None`` all ``m``, an int that many (at most m)."""
    if chunk_size is None:
        return m
    if isinstance(chunk_size, int):
        return min(chunk_size, m)
    return max(1, min(m, config.get_memory_budget() // max(1, 3 * bytes_per_row)))


def vmap_chunk(m: int, bytes_per_row: int, chunk_size: ChunkSize) -> int | None:
    """``chunk_size`` for ``torch.func.vmap`` over m items (None: one call for all of them)."""
    c = row_chunk(m, bytes_per_row, chunk_size)
    return None if c >= m else c


def batched_grads(outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                  inputs: Sequence[Tensor], *, retain_graph: bool,
                  chunk_size: ChunkSize = "auto") -> list[Tensor]:
    """Rows ``Jᵀ c_k`` for the m stacked cotangents ``c_k`` (each ``cotangents[j]`` has shape
    ``(m, *outputs[j].shape)``): one ``(m, *p.shape)`` tensor per input, zeros where unused.

    Rows go through autograd in chunks (``is_grads_batched``); ``chunk_size=1`` runs a plain
    loop without vmap, for operations vmap cannot batch.
    """
    m = cotangents[0].shape[0]
    per_row = sum(p.numel() * p.element_size() for p in inputs)
    c = row_chunk(m, per_row, chunk_size)
    parts: list[list[Tensor]] = []
    starts = list(range(0, m, c))
    for k, s in enumerate(starts):
        keep = retain_graph or k < len(starts) - 1
        cots = [ct[s:s + c] for ct in cotangents]
        n = cots[0].shape[0]
        if c == 1:
            g = torch.autograd.grad(outputs, inputs, [ct[0] for ct in cots], retain_graph=keep,
                                    allow_unused=True)
            g = tuple(None if x is None else x.unsqueeze(0) for x in g)
        else:
            g = torch.autograd.grad(outputs, inputs, cots, retain_graph=keep, allow_unused=True,
                                    is_grads_batched=True)
        parts.append([p.new_zeros((n, *p.shape)) if x is None else x
                      for x, p in zip(g, inputs, strict=True)])
    if len(parts) == 1:
        return parts[0]
    return [torch.cat([p[i] for p in parts]) for i in range(len(inputs))]


def gram(f: Tensor, g: Tensor | None = None) -> Tensor:
    """``f @ g.T`` (default ``g = f``) for wide ``(m, K)`` blocks. With 4 to 31 rows, one
    ``(m, K) × (K, m)`` product runs far below the BLAS peak (measured 3× slower at m = 10,
    K = 3·10⁵, one thread; 4.7 against 35 GMAC/s at m = 10, K = 1.3·10⁵), so K is folded into
    a batch of ``(m, 1024)`` slices (views, no copy) and the products summed."""
    other = f if g is None else g
    m, K = f.shape
    k = 1024
    q = K // k
    if not 4 <= m < 32 or q < 4:  # m < 4: the plain product is fastest (0.11 vs 0.15 ms)
        return f @ other.T
    main = f[:, :q * k].reshape(m, q, k).transpose(0, 1)
    second = main if g is None else other[:, :q * k].reshape(-1, q, k).transpose(0, 1)
    G = torch.bmm(main, second.transpose(1, 2)).sum(0)
    if q * k < K:
        G += f[:, q * k:] @ other[:, q * k:].T
    return G


def accumulate(params: Sequence[Tensor], grads: Sequence[Tensor]) -> None:
    """Add ``grads`` into the ``.grad`` of ``params`` (like ``torch.autograd.backward``)."""
    with torch.no_grad():
        for p, g in zip(params, grads, strict=True):
            g = g.reshape(p.shape).to(dtype=p.dtype, device=p.device)
            if p.grad is None:  # a fresh tensor is kept as it is, a view of part of one is
                # copied (so that .grad does not keep the rest alive)
                whole = g._base is None or (g._base.numel() == g.numel() and g.is_contiguous())
                p.grad = g.detach() if whole else g.detach().clone()
            else:
                p.grad.add_(g)
