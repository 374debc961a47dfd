"""The Jacobian of a model's outputs over a dataset in its parameters as a lazy ``(M, P)``
operator: rows the outputs of every batch, in order, each batch's output flattened row-major."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..operators import FunctionOperator
from ._setup import Data, Params, check_model, forward

__all__ = ["jacobian"]


def jacobian(model: nn.Module, data: Any,
             params: Iterable[str] | None = None) -> FunctionOperator:
    """The Jacobian of ``model(X)`` for every batch of ``data`` in the parameters, as a lazy
    ``(M, P)`` operator: ``mv`` by one JVP per batch, ``rmv`` by one VJP per batch.

    ``data`` is one batch (a tensor ``X``, or a tuple ``(X, y)`` whose ``y`` is ignored) or an
    iterable of batches; the rows stack each batch's output ``model(X).reshape(-1)`` in order
    (``M`` is their total size, found by one forward pass at construction). ``params`` and the
    column order as for :func:`jacobite.curvature.ggn`.

    >>> import torch
    >>> from jacobite.curvature import jacobian
    >>> model = torch.nn.Linear(3, 2).double()
    >>> J = jacobian(model, torch.randn(4, 3, dtype=torch.float64))
    >>> J.shape
    (8, 8)
    """
    model = check_model(model)
    ps = Params.of(model, params)
    batches = Data(data, targets=False, dtype=ps.dtype, device=ps.device)
    sizes = []
    for X, _ in batches:
        with torch.no_grad():
            sizes.append(forward(model, ps, ps.primals(), X).numel())

    def mv(v: torch.Tensor) -> torch.Tensor:
        tangent = ps.split(v)
        parts = []
        for X, _ in batches:
            Jv = torch.func.jvp(lambda p, X=X: forward(model, ps, p, X), (ps.primals(),),
                                (tangent,))[1]
            parts.append(Jv.reshape(-1))
        return torch.cat(parts)

    def rmv(u: torch.Tensor) -> torch.Tensor:
        acc = u.new_zeros(ps.size)
        for (X, _), ub in zip(batches, torch.split(u, sizes), strict=True):
            with torch.enable_grad():
                out, pull = torch.func.vjp(lambda p, X=X: forward(model, ps, p, X),
                                           ps.primals())[:2]
            acc += ps.flat(pull(ub.view(out.shape))[0])
        return acc

    return FunctionOperator((sum(sizes), ps.size), mv, rmv, dtype=ps.dtype, device=ps.device,
                            name="jacobian")
