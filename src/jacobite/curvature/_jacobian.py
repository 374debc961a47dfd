"""The Jacobian of a model's outputs over a dataset in its parameters as a lazy ``(M, P)``
operator: rows the outputs of every batch, in order, each batch's output flattened row-major."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..distributed import ProcessGroupLike, resolve
from ..operators import FunctionOperator
from ._setup import Data, Params, check_model, forward
from ._sharded import count_guard, global_count, reduced

__all__ = ["jacobian"]


def jacobian(model: nn.Module, data: Any, params: Iterable[str] | None = None, *,
             process_group: ProcessGroupLike = None) -> FunctionOperator:
    """The Jacobian of ``model(X)`` for every batch of ``data`` in the parameters, as a lazy
    ``(M, P)`` operator: ``mv`` by one JVP per batch, ``rmv`` by one VJP per batch.

    ``data`` is one batch (a tensor ``X``, or a tuple ``(X, y)`` whose ``y`` is ignored) or an
    iterable of batches; the rows stack each batch's output ``model(X).reshape(-1)`` in order
    (``M`` is their total size, found by one forward pass at construction). ``params`` and the
    column order as for :func:`jacobite.curvature.ggn`.

    With a ``process_group`` each rank passes its shard of the data and holds *its rows* of
    the Jacobian of the concatenated data: the operator is ``(M_r, P)`` with ``M_r`` this
    rank's outputs, ``mv`` gives this rank's rows of ``J v`` (no communication), and ``rmv``
    takes this rank's rows of ``u`` and returns the whole ``Jᵀ u = Σ_r J_rᵀ u_r`` by one
    all-reduce, the same on every rank — so ``JᵀJ``-type products (``J.T @ J``) are those of
    the whole dataset. ``rmv`` is collective: every rank calls it.

    >>> import torch
    >>> from jacobite.curvature import jacobian
    >>> model = torch.nn.Linear(3, 2).double()
    >>> J = jacobian(model, torch.randn(4, 3, dtype=torch.float64))
    >>> J.shape
    (8, 8)
    """
    model = check_model(model)
    group = resolve(process_group)
    ps = Params.of(model, params)
    sizes = []
    with count_guard(group):  # a rank's bad data stops every rank here
        batches = Data(data, targets=False, dtype=ps.dtype, device=ps.device)
        for X, _ in batches:
            with torch.no_grad():
                sizes.append(forward(model, ps, ps.primals(), X).numel())
        global_count(sum(sizes), ps.size, group)  # every rank has the same parameters

    def mv(v: torch.Tensor) -> torch.Tensor:
        tangent = ps.split(v)
        parts = []
        for X, _ in batches:
            Jv = torch.func.jvp(lambda p, X=X: forward(model, ps, p, X), (ps.primals(),),
                                (tangent,))[1]
            parts.append(Jv.reshape(-1))
        return torch.cat(parts)

    def local_rmv(u: torch.Tensor) -> torch.Tensor:
        acc = u.new_zeros(ps.size)
        for (X, _), ub in zip(batches, torch.split(u, sizes), strict=True):
            with torch.enable_grad():
                out, pull = torch.func.vjp(lambda p, X=X: forward(model, ps, p, X),
                                           ps.primals())[:2]
            acc += ps.flat(pull(ub.view(out.shape))[0])
        return acc

    rmv = reduced(local_rmv, group, ps.size)
    return FunctionOperator((sum(sizes), ps.size), mv, rmv, dtype=ps.dtype, device=ps.device,
                            name="jacobian")
