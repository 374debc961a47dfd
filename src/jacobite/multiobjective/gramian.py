"""The Gramian ``G = J Jᵀ`` of m losses with respect to parameters, without storing J.

``G[i, j] = ⟨∇ℓᵢ, ∇ℓⱼ⟩`` is all that UPGrad, MGDA, DualProj and the other Gramian-weighted
aggregators need from the Jacobian, and it is m × m however many parameters there are. Two
ways to get it while holding at most a budget-sized piece of J:

* **from a graph** (losses already computed, e.g. by an ``nn.Module``): dense layers
  (``nn.Linear``) from their saved inputs and the m gradients at their outputs, one batched
  backward pass (:mod:`._layers`); where that does not apply, parameter tensor by
  parameter tensor (grouped while they fit the memory budget), ``G += J_l J_lᵀ`` with ``J_l``
  from one batched backward pass (``is_grads_batched``); a parameter whose block alone is too
  large is done in row blocks. With a budget larger than J this is one backward pass.
* **from a function** ``fn(params) -> losses``: the columns ``G e_i = J (Jᵀ e_i)``, a JVP of a
  VJP, vmapped over chunks of basis vectors — only ``chunk × n`` numbers in flight.

Both stay under :mod:`jacobite.config`'s memory budget by choosing their chunks; the result does
not depend on the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

from .. import _validate, config
from .._modules import keeps_state
from .._validate import ChunkSize
from ..errors import ArgnumsError, DtypeError, NonFiniteInputError, ShapeError
from ._layers import layerwise_gramian
from ._params import (
    as_losses,
    batched_grads,
    check_params,
    gram,
    leaf_params,
    resolve_chunk,
    row_chunk,
)

__all__ = ["gramian"]


@keeps_state
def gramian(losses: Tensor | Sequence[Tensor] | Callable[[Any], Tensor],
            params: Iterable[Tensor] | Any = None, *, retain_graph: bool = False,
            chunk_size: ChunkSize = "auto") -> Tensor:
    """The m × m Gramian ``J Jᵀ`` of the losses' Jacobian J with respect to ``params``.

    ``losses`` is either a 1-D tensor (or a sequence of scalar tensors) still attached to its
    autograd graph — then ``params`` is an iterable of leaf tensors (default: every leaf the
    losses depend on) and the graph is freed unless ``retain_graph=True`` — or a function
    ``losses(params) -> 1-D tensor`` of a tensor / tuple / dict of tensors ``params``, in which
    case G is computed by ``torch.func`` (vmap of jvp∘vjp) and nothing is freed. ``chunk_size``
    is the number of rows (or columns) per batched pass: ``"auto"`` (default) as many as the
    memory budget allows, ``None`` all at once, an int ≥ 1 that many (``1``: a plain loop).

    >>> import torch
    >>> from jacobite.multiobjective.gramian import gramian
    >>> w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    >>> gramian(torch.stack([w.sum(), (w ** 2).sum()]), [w])      # rows [1, 1] and [2, 4]
    tensor([[ 2.,  6.],
            [ 6., 20.]], dtype=torch.float64)
    >>> gramian(lambda p: torch.stack([p.sum(), (p ** 2).sum()]), w.detach())
    tensor([[ 2.,  6.],
            [ 6., 20.]], dtype=torch.float64)
    """
    chunk = resolve_chunk(chunk_size)
    retain_graph = _validate.boolean(retain_graph, "retain_graph")
    if callable(losses) and not isinstance(losses, Tensor):
        if params is None:
            raise ArgnumsError("gramian(fn, params) needs the params that fn takes (a tensor, "
                               "tuple or dict of tensors)")
        return _functional_gramian(losses, params, chunk)
    vec = as_losses(losses)
    inputs = check_params(leaf_params([vec]) if params is None else params)
    eye = torch.eye(vec.shape[0], dtype=vec.dtype, device=vec.device)
    lg = layerwise_gramian([vec], [eye], inputs, retain_graph=retain_graph, chunk_size=chunk)
    if lg is not None:  # dense layers from their inputs and output gradients
        return lg.G
    return graph_gramian([vec], [eye], inputs, retain_graph=retain_graph, chunk_size=chunk)


def graph_gramian(outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                  inputs: Sequence[Tensor], *, retain_graph: bool,
                  chunk_size: ChunkSize = "auto") -> Tensor:
    """``Σ_l J_l J_lᵀ`` where row k of ``J_l`` is the VJP of ``cotangents[:][k]`` into input l.

    Inputs are grouped so that each group's block of J (``m × numel``) fits a quarter of the
    memory budget; each group costs one batched backward pass. An input whose block alone is too
    large is done in row blocks (``G[I, K] = J_I J_Kᵀ``), recomputing blocks as needed.
    """
    m = cotangents[0].shape[0]
    dtype = torch.promote_types(cotangents[0].dtype, inputs[0].dtype)
    cap = max(1, config.get_memory_budget() // 4)
    groups: list[list[Tensor]] = []
    big: list[Tensor] = []
    size = 0
    for p in inputs:
        b = m * p.numel() * p.element_size()
        if b > cap:
            big.append(p)
        elif groups and size + b <= cap:
            groups[-1].append(p)
            size += b
        else:
            groups.append([p])
            size = b
    # Every backward pass but the last keeps the graph.
    jobs: list[tuple[list[Tensor], slice, slice | None]] = [(g, slice(0, m), None)
                                                              for g in groups]
    for p in big:
        rb = max(1, min(m, cap // max(1, 2 * p.numel() * p.element_size())))
        blocks = [slice(s, min(m, s + rb)) for s in range(0, m, rb)]
        jobs += [([p], bi, bk) for i, bi in enumerate(blocks) for bk in blocks[i:]]
    G = torch.zeros(m, m, dtype=dtype, device=cotangents[0].device)
    for k, (group, rows, other) in enumerate(jobs):
        keep = retain_graph or k < len(jobs) - 1
        if other is None:
            Js = batched_grads(outputs, cotangents, group, retain_graph=keep,
                               chunk_size=chunk_size)
            for Jl in Js:
                G += gram(Jl.reshape(m, -1).to(dtype))
            continue
        p = group[0]
        JI = batched_grads(outputs, [c[rows] for c in cotangents], [p], retain_graph=True,
                           chunk_size=chunk_size)[0].reshape(rows.stop - rows.start, -1)
        JK = JI if other == rows else batched_grads(
            outputs, [c[other] for c in cotangents], [p], retain_graph=True,
            chunk_size=chunk_size)[0].reshape(other.stop - other.start, -1)
        block = (JI @ JK.T).to(dtype)
        G[rows, other] += block
        if other != rows:
            G[other, rows] += block.T
        if not keep:  # free the graph as promised: one cheap pass without retain_graph
            torch.autograd.grad(outputs, [p], [c[0] for c in cotangents], allow_unused=True)
    return G


def _functional_gramian(fn: Callable[[Any], Tensor], params: Any,
                        chunk_size: ChunkSize) -> Tensor:
    leaves, spec = tree_flatten(params)
    if not leaves or not all(isinstance(t, Tensor) for t in leaves):
        raise ArgnumsError("params must be a tensor or a tuple / list / dict of tensors")
    if not all(t.is_floating_point() for t in leaves):
        raise DtypeError("every parameter must be floating point to differentiate")
    leaves = [t.detach() for t in leaves]

    def f(*xs: Tensor) -> Tensor:
        return fn(tree_unflatten(list(xs), spec))

    out, vjp_fn = torch.func.vjp(f, *leaves)[:2]  # torch types vjp as a 2- or 3-tuple (has_aux)
    if not isinstance(out, Tensor) or out.ndim != 1 or out.numel() == 0:
        raise ShapeError("fn must return a non-empty 1-D tensor of losses (one per objective), "
                         f"got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteInputError("some losses are NaN or infinite; fix the model or data")
    m = out.shape[0]

    def column(e: Tensor) -> Tensor:
        return torch.func.jvp(f, tuple(leaves), vjp_fn(e))[1]

    per_col = sum(t.numel() * t.element_size() for t in leaves)
    c = row_chunk(m, per_col, chunk_size)
    eye = torch.eye(m, dtype=out.dtype, device=out.device)
    cols = [torch.func.vmap(column)(eye[s:s + c]) for s in range(0, m, c)]
    G = torch.cat(cols)
    return (G + G.T) / 2
