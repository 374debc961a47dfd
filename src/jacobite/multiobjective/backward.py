"""Jacobian descent through ``.grad``: ``backward`` and ``mtl_backward``.

Like ``torch.autograd.backward`` but for a *vector* of m losses: the m gradients (rows of the
Jacobian J) are combined by an aggregator into one update, which is **added** to each
parameter's ``.grad`` — so any ``torch.optim`` optimizer then takes the step, and several calls
accumulate as with ``loss.backward()``.

With a Gramian-weighted aggregator (UPGrad, MGDA, DualProj, ...: one with a ``weights(G)``
method, update ``Jᵀw``) only ``G = JJᵀ`` and the weights are needed. If J fits the memory budget
it is computed in one batched backward pass and ``Jᵀw`` is a matrix product; otherwise G is
accumulated parameter by parameter (:func:`~jacobite.multiobjective.gramian`) and ``Jᵀw`` is
one more backward pass, of ``wᵀ·losses`` — J is never stored.

The results equal TorchJD's ``autojac.backward`` (or ``mtl_backward``) followed by
``jac_to_grad`` with the same aggregator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, grad_and_value, vmap

from .. import _validate, config
from .._modules import keeps_state
from .._validate import ChunkSize
from ..distributed import ProcessGroupLike, resolve
from ..errors import ArgnumsError, ArgumentTypeError, JacobianTooLarge, ShapeError
from ._ghost import ghost_pieces
from ._layers import find_dense_layers, layerwise_descent
from ._params import (
    accumulate,
    as_losses,
    batched_grads,
    check_params,
    gram,
    leaf_params,
    resolve_chunk,
    vmap_chunk,
)
from .gramian import graph_gramian

if TYPE_CHECKING:
    from .aggregators import Aggregator

__all__ = ["backward", "mtl_backward", "per_example_backward"]


def _default(aggregator: Any) -> Any:
    if aggregator is not None:
        if not callable(aggregator):
            raise ArgumentTypeError(
                f"aggregator must be an aggregator instance such as UPGrad() (from "
                f"jacobite.multiobjective.aggregators), got {aggregator!r}")
        return aggregator
    from .aggregators import UPGrad  # lazily: the aggregators import nothing from here

    return UPGrad()


def _is_gramian_weighted(aggregator: Any) -> bool:
    return callable(getattr(aggregator, "weights", None))


def _jacobian_descent(outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                      params: list[Tensor], aggregator: Any, *, retain_graph: bool,
                      chunk_size: ChunkSize) -> Tensor | None:
    """Aggregate the rows ``Jᵀ c_k`` (k < m) over ``params`` and add the update to ``.grad``;
    return the weights when the aggregator works on the Gramian."""
    if _is_gramian_weighted(aggregator):  # dense layers' Gramians from inputs × output grads
        w = layerwise_descent(outputs, cotangents, params, aggregator,
                              retain_graph=retain_graph, chunk_size=chunk_size)
        if w is not None:
            return w
    m = cotangents[0].shape[0]
    n = sum(p.numel() for p in params)
    itemsize = max(p.element_size() for p in params)
    fits = m * n * itemsize <= config.get_memory_budget()
    if _is_gramian_weighted(aggregator) and not fits:
        G = graph_gramian(outputs, cotangents, params, retain_graph=True, chunk_size=chunk_size)
        w = aggregator.weights(G).detach()
        combined = [torch.tensordot(w.to(c.dtype), c, dims=1) for c in cotangents]
        grads = torch.autograd.grad(outputs, params, combined, retain_graph=retain_graph,
                                    allow_unused=True, materialize_grads=True)
        accumulate(params, grads)
        return w
    if not fits:
        raise JacobianTooLarge(
            f"the {m} × {n} Jacobian needs {config.format_bytes(m * n * itemsize)}, more than "
            f"the memory budget ({config.format_bytes(config.get_memory_budget())}), and "
            f"{type(aggregator).__name__} needs J itself; raise the budget "
            "(jacobite.config.set_memory_budget) or use a Gramian-weighted aggregator such as "
            "UPGrad, which never stores J")
    rows = batched_grads(outputs, cotangents, params, retain_graph=retain_graph,
                         chunk_size=chunk_size)
    flat = [r.reshape(m, -1) for r in rows]
    del rows
    if _is_gramian_weighted(aggregator):  # G and Jᵀw block by block: J is never concatenated
        dtype = flat[0].dtype
        for f in flat[1:]:
            dtype = torch.promote_types(dtype, f.dtype)
        G = gram(flat[0]).to(dtype)
        for f in flat[1:]:
            G += gram(f)
        weights = aggregator.weights(G).detach()
        accumulate(params, [weights.to(f.dtype) @ f for f in flat])
        return weights
    J = torch.cat(flat, dim=1) if len(flat) > 1 else flat[0]
    del flat
    update = aggregator(J).detach()
    if update.shape != (n,):
        raise ShapeError(f"{type(aggregator).__name__} returned shape {tuple(update.shape)}; an "
                         f"aggregator must map an (m, n) Jacobian to an (n,) update (n = {n})")
    accumulate(params, update.split([p.numel() for p in params]))
    return None


def backward(losses: Tensor | Sequence[Tensor], params: Iterable[Tensor] | None = None,
             aggregator: Aggregator | None = None, *, retain_graph: bool = False,
             chunk_size: ChunkSize = "auto",
             process_group: ProcessGroupLike = None) -> Tensor | None:
    """Jacobian descent step: aggregate the gradients of m losses and add the result to ``.grad``.

    ``losses``: a 1-D tensor (multi-objective, or one loss per example for per-example training)
    or a sequence of scalar tensors. ``params``: the leaf tensors to update (default: every leaf
    the losses depend on, like ``torch.autograd.backward``). ``aggregator``: maps the m × n
    Jacobian to an update (default ``UPGrad()``). The graph is freed unless ``retain_graph``;
    ``chunk_size``: Jacobian rows per batched backward pass — ``"auto"`` (default) as many as
    the memory budget allows, ``None`` all at once, an int ≥ 1 that many (``1``: a plain loop,
    no vmap). Returns the weights ``w`` (update ``Jᵀw``) for a Gramian-weighted aggregator, else
    None. Equals TorchJD's ``backward(losses)`` followed by ``jac_to_grad(params, aggregator)``.
    ``process_group`` (a ``torch.distributed`` group or ``"world"``; default None: this process
    alone): each rank passes the losses of its own shard of the data, and every rank receives
    the update of the Jacobian averaged over the ranks — with mean losses over equal shards,
    Jacobian descent on the whole batch. A DDP-wrapped model works, and so does a model sharded
    by FSDP2's ``fully_shard`` with a Gramian-weighted aggregator (pass its ``DTensor``
    parameters, collected before the forward pass); see ``docs/distributed.md``.

    >>> import torch
    >>> from jacobite.multiobjective.backward import backward
    >>> from jacobite.multiobjective.aggregators import UPGrad
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> backward(torch.stack([torch.tensor([-1.0, 1.0]) @ w, (w ** 2).sum()]), [w], UPGrad())
    tensor([0.5000, 0.5000])
    >>> w.grad                      # the rows [-1, 1] and [2, 4] do not conflict: their mean
    tensor([0.5000, 2.5000])
    """
    aggregator = _default(aggregator)
    retain_graph = _validate.boolean(retain_graph, "retain_graph")
    chunk = resolve_chunk(chunk_size)
    group = resolve(process_group)

    def prepare() -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        vec = as_losses(losses)
        chosen = check_params(leaf_params([vec]) if params is None else params)
        return [vec], [torch.eye(vec.shape[0], dtype=vec.dtype, device=vec.device)], chosen

    if group is not None:
        from ._distributed import Local, descend

        def work() -> Local:
            outs, cots, chosen = prepare()
            return Local(outs, cots, chosen, retain_graph, chunk)

        return descend(group, work, aggregator)
    outs, cots, chosen = prepare()
    return _jacobian_descent(outs, cots, chosen, aggregator, retain_graph=retain_graph,
                             chunk_size=chunk)


def mtl_backward(losses: Tensor | Sequence[Tensor], features: Tensor | Sequence[Tensor],
                 aggregator: Aggregator | None = None, *,
                 tasks_params: Sequence[Iterable[Tensor]] | None = None,
                 shared_params: Iterable[Tensor] | None = None, retain_graph: bool = False,
                 chunk_size: ChunkSize = "auto",
                 process_group: ProcessGroupLike = None) -> Tensor | None:
    """Multi-task step: plain gradients for each task's head, Jacobian descent for the trunk.

    ``losses[i]`` is task i's scalar loss, computed by a head from ``features`` (the trunk's
    shared output: one tensor or several). Each task's gradient w.r.t. its own parameters
    (``tasks_params[i]``; default: the leaves of ``losses[i]``'s graph not behind the features)
    is added to their ``.grad``; the m gradients w.r.t. the features are backpropagated together
    through the trunk to form the Jacobian w.r.t. ``shared_params`` (default: the leaves behind
    the features), which ``aggregator`` (default ``UPGrad()``) turns into the trunk's update.
    Returns the weights for a Gramian-weighted aggregator, else None. Equals TorchJD's
    ``mtl_backward`` followed by ``jac_to_grad(shared_params, aggregator)``. ``process_group``:
    as for :func:`backward` — each rank's losses are its shard's; the heads' gradients and the
    trunk's Jacobian are averaged over the ranks.

    >>> import torch
    >>> from jacobite.multiobjective.backward import mtl_backward
    >>> from jacobite.multiobjective.aggregators import UPGrad
    >>> trunk, h1, h2 = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    >>> z = trunk(torch.randn(8, 3))
    >>> l1, l2 = h1(z).pow(2).mean(), h2(z).abs().mean()
    >>> weights = mtl_backward([l1, l2], z, UPGrad())
    >>> trunk.weight.grad.shape, h1.weight.grad is not None, weights.shape
    (torch.Size([4, 3]), True, torch.Size([2]))
    """
    aggregator = _default(aggregator)
    retain_graph = _validate.boolean(retain_graph, "retain_graph")
    chunk = resolve_chunk(chunk_size)
    group = resolve(process_group)
    if group is not None:
        from ._distributed import Local, descend

        def work() -> Local:
            feats, cots, shared, heads, head_grads = _mtl_parts(losses, features, tasks_params,
                                                                shared_params)
            return Local(feats, cots, shared, retain_graph, chunk, heads, head_grads)

        return descend(group, work, aggregator)
    feats, cotangents, shared, heads, head_grads = _mtl_parts(losses, features, tasks_params,
                                                              shared_params)
    accumulate(heads, head_grads)
    return _jacobian_descent(feats, cotangents, shared, aggregator, retain_graph=retain_graph,
                             chunk_size=chunk)


def _mtl_parts(losses: Tensor | Sequence[Tensor], features: Tensor | Sequence[Tensor],
               tasks_params: Sequence[Iterable[Tensor]] | None,
               shared_params: Iterable[Tensor] | None
               ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """``mtl_backward``'s checks and per-task passes: the features, the m stacked gradients at
    them, the shared parameters, and the task parameters with their plain gradients."""
    vec = as_losses(losses)
    m = vec.shape[0]
    if not isinstance(features, (Tensor, list, tuple)):
        raise ArgumentTypeError(f"features must be a tensor or a sequence of tensors (the "
                                f"trunk's outputs), got {type(features).__name__}")
    feats = [features] if isinstance(features, Tensor) else list(features)
    if not feats or not all(isinstance(f, Tensor) for f in feats):
        raise ArgnumsError("features must be a tensor or a non-empty sequence of tensors")
    if not all(f.requires_grad for f in feats):
        raise ArgnumsError("features must require grad (they are the trunk's output, computed "
                           "from the shared parameters)")
    per_task = list(losses) if isinstance(losses, (list, tuple)) else list(vec.unbind())
    if tasks_params is None:
        tasks = [leaf_params([t], feats) if t.grad_fn is not None else [] for t in per_task]
    else:
        if not isinstance(tasks_params, (list, tuple)) or \
                not all(isinstance(tp, (list, tuple, Tensor)) or hasattr(tp, "__iter__")
                        for tp in tasks_params):
            raise ArgumentTypeError(
                "tasks_params must be a list with one iterable of parameters per task, e.g. "
                f"[head1.parameters(), head2.parameters()], got {tasks_params!r}")
        tasks = [check_params(lst, f"tasks_params[{i}]") if (lst := list(tp)) else []
                 for i, tp in enumerate(tasks_params)]
        if len(tasks) != m:
            raise ShapeError(f"tasks_params has {len(tasks)} entries for {m} losses; give one "
                             "(possibly empty) list of parameters per task")
    shared = check_params(leaf_params(feats) if shared_params is None else shared_params,
                          "shared_params")
    shared_ids = {id(p) for p in shared}
    if any(id(p) in shared_ids for t in tasks for p in t):
        raise ArgnumsError("tasks_params and shared_params overlap; a parameter is either "
                           "shared (Jacobian descent) or task-specific (its plain gradient)")
    rows: list[list[Tensor]] = [[] for _ in feats]
    heads: list[Tensor] = []
    head_grads: list[Tensor] = []
    for loss, tp in zip(per_task, tasks, strict=True):
        g = torch.autograd.grad(loss, [*tp, *feats], retain_graph=True, allow_unused=True,
                                materialize_grads=True)
        heads += tp
        head_grads += g[:len(tp)]
        for j, gf in enumerate(g[len(tp):]):
            rows[j].append(gf)
    return feats, [torch.stack(r) for r in rows], shared, heads, head_grads


def _ghost_descent(vec: Tensor, one: Callable[..., Tensor], named: dict[str, Tensor],
                   batch: Sequence[Tensor], aggregator: Any, chunk: ChunkSize) -> bool:
    """Per-example Jacobian descent with the dense layers' Gramians from two backward passes
    (:mod:`._ghost`) and the other parameters' per-example gradients by ``vmap(grad)``; False
    (nothing touched, graph kept) where that does not apply."""
    layers, rest = find_dense_layers([vec], list(named.values()))
    B = vec.shape[0]
    if not layers or B * sum(p.numel() * p.element_size() for p in rest) > \
            config.get_memory_budget():
        return False
    pieces = ghost_pieces(vec, layers)
    if pieces is None:
        return False
    G = pieces[0].gramian.clone()
    for pc in pieces[1:]:
        G += pc.gramian.to(G.dtype)
    rest_ids = {id(p) for p in rest}
    names = [k for k, v in named.items() if id(v) in rest_ids]
    rows: list[Tensor] = []
    if names:
        fixed = {k: v.detach() for k, v in named.items() if id(v) not in rest_ids}
        per = vmap(grad(lambda p, *ex: one({**fixed, **p}, *ex)),
                   in_dims=(None, *(0,) * len(batch)),
                   chunk_size=vmap_chunk(B, sum(named[k].numel() * named[k].element_size()
                                                for k in names), chunk))
        g = per({k: named[k].detach() for k in names}, *batch)
        rows = [g[k].reshape(B, -1) for k in names]
        for r in rows:
            G += gram(r).to(G.dtype)
    w = aggregator.weights(G).detach()
    for pc in pieces:
        ly = pc.layer
        accumulate([ly.weight] + ([ly.bias] if ly.bias is not None else []), pc.update(w))
    accumulate([named[k] for k in names], [w.to(r.dtype) @ r for r in rows])
    return True


@keeps_state(grads=False)
def per_example_backward(model: nn.Module, loss_fn: Callable[..., Tensor], *batch: Tensor,
                         aggregator: Aggregator | None = None,
                         chunk_size: ChunkSize = "auto") -> Tensor:
    """Jacobian descent with one objective per example.

    ``loss_fn(model, *example) -> scalar`` computes one example's loss, calling ``model`` as
    usual on a batch of one (each tensor of ``batch`` is split along dim 0); ``aggregator``
    (default ``UPGrad()``) turns the B per-example gradients into the update added to the
    ``.grad`` of every parameter with ``requires_grad``. With a Gramian-weighted aggregator the
    B losses come from one vmapped forward pass; the dense layers' share of their Gramian comes
    from two backward passes whatever B is (:mod:`._ghost`: ``Σ_b ℓ_b`` holds every example's
    output gradients, a randomly weighted second pass checks that each input row belongs to
    one example), the other parameters' from per-sample gradients; where the check fails, from
    the layer-wise engine (:mod:`._layers`, one backward pass per example). Otherwise the rows
    of J are per-sample gradients, ``vmap(grad(...))``. ``chunk_size``: examples per vmapped pass
    (``"auto"``, default: as many as the memory budget allows; ``None``: all at once; an
    int). Buffers are read, not updated (put BatchNorm in ``eval()`` mode). Returns the
    B losses (detached). Same ``.grad`` as ``backward(per_example_losses, model.parameters())``.

    >>> import torch
    >>> from jacobite.multiobjective.backward import per_example_backward
    >>> from jacobite.multiobjective.aggregators import UPGrad
    >>> model = torch.nn.Linear(3, 1)
    >>> x, y = torch.randn(8, 3), torch.randn(8, 1)
    >>> losses = per_example_backward(model, lambda mod, xi, yi: ((mod(xi) - yi) ** 2).sum(),
    ...                               x, y, aggregator=UPGrad())
    >>> losses.shape, model.weight.grad.shape
    (torch.Size([8]), torch.Size([1, 3]))
    """
    if not isinstance(model, nn.Module):
        raise ArgnumsError(f"per_example_backward needs an nn.Module, got {type(model).__name__}")
    if not batch or not all(isinstance(b, Tensor) and b.ndim >= 1 for b in batch):
        raise ShapeError("pass the batch as tensors whose first dimension indexes the examples")
    B = batch[0].shape[0]
    if any(b.shape[0] != B for b in batch):
        raise ShapeError(f"batch tensors disagree on the number of examples: "
                         f"{[b.shape[0] for b in batch]}; give every tensor of the batch the "
                         "same first dimension (one entry per example)")
    _validate.callable_(loss_fn, "loss_fn")
    aggregator = _default(aggregator)
    named: dict[str, Tensor] = {k: v for k, v in model.named_parameters() if v.requires_grad}
    params = check_params(list(named.values()))
    detached = {k: v.detach() for k, v in named.items()}
    rest = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    buffers = dict(model.named_buffers())

    def one(p: dict[str, Tensor], *example: Tensor) -> Tensor:
        def call(*args: Any, **kwargs: Any) -> Any:
            return functional_call(model, (p, rest, buffers), args, kwargs, strict=False)

        loss = loss_fn(call, *(e.unsqueeze(0) for e in example))
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ShapeError("loss_fn must return one scalar loss per example")
        return loss.reshape(())

    chunk = resolve_chunk(chunk_size)
    per_example = sum(p.numel() * p.element_size() for p in params)
    if _is_gramian_weighted(aggregator):  # a vmapped forward; G from the graph, layer-wise
        losses = vmap(one, in_dims=(None, *(0,) * len(batch)),
                      chunk_size=vmap_chunk(B, per_example, chunk))(named, *batch)
        vec = as_losses(losses, "per-example losses")
        if _ghost_descent(vec, one, named, batch, aggregator, chunk):
            return vec.detach()
        eye = torch.eye(B, dtype=vec.dtype, device=vec.device)
        _jacobian_descent([vec], [eye], params, aggregator, retain_graph=False,
                          chunk_size=chunk)
        return vec.detach()
    n = sum(p.numel() for p in params)
    itemsize = max(p.element_size() for p in params)
    if B * n * itemsize > config.get_memory_budget():
        raise JacobianTooLarge(
            f"the {B} per-example gradients need {config.format_bytes(B * n * itemsize)}, more "
            "than the memory budget; use a smaller batch or raise the budget "
            "(jacobite.config.set_memory_budget)")
    per_sample = vmap(grad_and_value(one), in_dims=(None, *(0,) * len(batch)),
                      chunk_size=vmap_chunk(B, per_example, chunk))
    grads, losses = per_sample(detached, *batch)
    as_losses(losses.detach().requires_grad_(), "per-example losses")  # 1-D, finite
    update = aggregator(torch.cat([grads[k].reshape(B, -1) for k in named], dim=1)).detach()
    accumulate(params, update.split([p.numel() for p in params]))
    return losses.detach()
