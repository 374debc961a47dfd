"""Jacobian descent over a process group when the model is sharded by FSDP2
(``torch.distributed.fsdp.fully_shard``): every parameter is a ``DTensor`` sharded on dim 0
over a one-dimensional mesh, so each rank already owns a block of the Jacobian's columns.

Rank r's rows of that block are the m data-averaged gradients on its shards: one backward
pass per objective, each reduce-scattered (and divided by the number of ranks) by FSDP's own
post-backward hooks, read from the shards' ``.grad`` and cleared. The block's m × m Gramian
is all-reduced (m² numbers) to the Gramian of the averaged Jacobian, rank 0's weights ``w``
are broadcast (m numbers), and ``wᵀJ`` on the rank's shards is added to each ``DTensor``'s
``.grad``: the optimizer steps as usual. FSDP's collectives (an all-gather of the parameters
per pass, a reduce-scatter of the gradients per pass) are not jacobite's and are not counted
by :func:`jacobite.distributed.traffic`.

>>> import torch
>>> from jacobite.multiobjective._fsdp import is_sharded
>>> is_sharded([torch.zeros(2, requires_grad=True)])
False
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..distributed import Group, guarded, guarded_all_reduce, guarded_broadcast
from ..errors import UnsupportedOperationError
from ._params import gram, leaf_params

__all__ = ["check_fsdp", "check_not_freed", "fsdp_descend", "is_sharded", "rank0_weights"]


def _kind(p: Tensor) -> str:
    return type(p).__name__


def is_sharded(params: Sequence[Tensor]) -> bool:
    """Whether any of ``params`` is held as a shard (a ``DTensor`` or FSDP1's
    ``FlatParameter``)."""
    return any(_kind(p) in ("DTensor", "FlatParameter") for p in params)


def check_not_freed(params: Sequence[Tensor]) -> None:
    """Refuse parameters whose storage is freed: FSDP's unsharded parameters after resharding,
    which the losses' graph reaches when ``params`` is left to its default under FSDP."""
    for p in params:
        if p.numel() and _kind(p) == "Parameter" and p.untyped_storage().size() == 0:
            raise UnsupportedOperationError(
                f"a parameter of shape {tuple(p.shape)} has no storage: it is an FSDP "
                "parameter, unsharded for the forward pass and freed since; pass the sharded "
                "model's parameters, backward(losses, list(model.parameters()), "
                "process_group=...)")


def check_fsdp(outputs: Sequence[Tensor], params: Sequence[Tensor], has_heads: bool,
               aggregator: Any) -> None:
    """Refuse, with the fix, what the FSDP2 route cannot do exactly."""
    if any(_kind(p) == "FlatParameter" for p in params):
        raise UnsupportedOperationError(
            "the parameters are FSDP1 FlatParameters; Jacobian descent over a process group "
            "supports FSDP2: shard the model with torch.distributed.fsdp.fully_shard (or wrap "
            "it in DistributedDataParallel)")
    if not all(_kind(p) == "DTensor" for p in params):
        raise UnsupportedOperationError(
            "some parameters are DTensors and some are not; under FSDP pass the sharded "
            "model's parameters only (model.parameters() after fully_shard)")
    for p in params:
        mesh, placements = p.device_mesh, p.placements  # type: ignore[attr-defined]
        if mesh.ndim != 1 or len(placements) != 1 or not placements[0].is_shard(0):
            raise UnsupportedOperationError(
                f"a parameter is laid out as {tuple(placements)} on a {mesh.ndim}-D mesh; "
                "Jacobian descent supports FSDP2's layout, Shard(0) on a 1-D mesh: use "
                "fully_shard(model) on the group's ranks without HSDP or tensor parallelism")
    ids = {id(p) for p in params}
    if any(id(leaf) in ids for leaf in leaf_params(list(outputs))):
        raise UnsupportedOperationError(
            "the losses use the DTensor parameters directly, not through FSDP's unsharding; "
            "Jacobian descent over a process group needs each rank to hold whole parameters "
            "(DistributedDataParallel) or an FSDP2 model (torch.distributed.fsdp.fully_shard)")
    if has_heads:
        raise UnsupportedOperationError(
            "mtl_backward over a process group does not support FSDP-sharded parameters; "
            "call backward(losses, model.parameters(), process_group=...) on the FSDP2 model, "
            "or wrap it in DistributedDataParallel")
    if not callable(getattr(aggregator, "weights", None)):
        raise UnsupportedOperationError(
            f"{type(aggregator).__name__} needs the whole Jacobian, which FSDP never holds on "
            "one rank; use a Gramian-weighted aggregator (UPGrad, MGDA, ...) with FSDP, or "
            "DistributedDataParallel")


def _rows(outputs: Sequence[Tensor], cotangents: Sequence[Tensor], params: list[Tensor],
          retain_graph: bool) -> Tensor:
    """The m × (this rank's shard sizes) rows of the averaged Jacobian: one backward pass per
    row, FSDP reduce-scattering each; the ``.grad`` of every leaf is restored afterwards."""
    m = int(cotangents[0].shape[0])
    leaves = [*params, *leaf_params(list(outputs))]
    saved = [leaf.grad for leaf in leaves]
    for leaf in leaves:
        leaf.grad = None
    local = [p.to_local() for p in params]  # type: ignore[attr-defined]
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in local))
    out = torch.zeros(m, sum(t.numel() for t in local), dtype=dtype, device=local[0].device)
    try:
        for i in range(m):
            torch.autograd.backward(list(outputs), [c[i] for c in cotangents],
                                    retain_graph=retain_graph or i < m - 1)
            at = 0
            for p, t in zip(params, local, strict=True):
                if p.grad is not None:
                    out[i, at:at + t.numel()] = p.grad.to_local().reshape(-1)  # type: ignore[attr-defined]
                at += t.numel()
            for leaf in leaves:
                leaf.grad = None
    finally:
        for leaf, g in zip(leaves, saved, strict=True):
            leaf.grad = g
    return out


def _add_local(params: list[Tensor], update: Tensor) -> None:
    """Add this rank's shard ``update`` (flattened, in ``params`` order) to the DTensors'
    ``.grad``."""
    from torch.distributed.tensor import DTensor

    at = 0
    with torch.no_grad():
        for p in params:
            mine = p.to_local()  # type: ignore[attr-defined]
            g = update[at:at + mine.numel()].reshape(mine.shape).to(mine.dtype).clone()
            at += mine.numel()
            if p.grad is None:
                p.grad = DTensor.from_local(g, p.device_mesh, p.placements,  # type: ignore[attr-defined]
                                            shape=p.shape, stride=p.stride(), run_check=False)
            else:
                p.grad.to_local().add_(g)  # type: ignore[attr-defined]


def fsdp_descend(group: Group, outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                 params: list[Tensor], retain_graph: bool, aggregator: Any) -> Tensor:
    """The FSDP2 step of the module doc; the weights (the same on every rank)."""
    m = int(cotangents[0].shape[0])
    with guarded(group, like=torch.zeros(m * m, dtype=params[0].dtype)):
        rows = _rows(outputs, cotangents, params, retain_graph)
        G = guarded_all_reduce(gram(rows).reshape(-1), group).reshape(m, m)
    w = rank0_weights(group, aggregator, G)
    _add_local(params, w.to(rows.dtype) @ rows)
    return w


def rank0_weights(group: Group, aggregator: Any, G: Tensor) -> Tensor:
    """The aggregator's weights for the m × m Gramian ``G``, computed on rank 0 and broadcast,
    so that a randomised aggregator gives every rank the same ``w``."""
    w = G.new_zeros(G.shape[0])
    with guarded(group, like=w):
        if group.rank == 0:
            w = aggregator.weights(G).detach().to(G.dtype)
        return guarded_broadcast(w, group, src=0)
