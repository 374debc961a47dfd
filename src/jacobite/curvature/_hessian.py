"""The Hessian of the dataset's loss in the parameters as a lazy ``(P, P)`` operator, its
products by forward-over-reverse differentiation (``torch.func.jvp`` of ``torch.func.grad``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..distributed import ProcessGroupLike, resolve
from ..operators import FunctionOperator
from ._ggn import columns, scan
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward
from ._sharded import count_guard, reduced

__all__ = ["hessian"]


def _hvp(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], p: dict[str, torch.Tensor],
         v: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``∇²fn(p) v``: forward over reverse, or reverse over reverse where an operation has no
    forward-mode derivative of its backward (the Hessian is symmetric, so both give ``H v``)."""
    grad = torch.func.grad(fn)
    with torch.enable_grad():
        try:
            out: dict[str, torch.Tensor] = torch.func.jvp(grad, (p,), (v,))[1]
        except NotImplementedError:
            out = torch.func.vjp(grad, p)[1](v)[0]
    return out


def hessian(model: nn.Module, loss: Any, data: Any, params: Iterable[str] | None = None, *,
            process_group: ProcessGroupLike = None) -> FunctionOperator:
    """The Hessian of ``loss(model(X), y)`` over ``data`` in the parameters, as a lazy
    symmetric ``(P, P)`` operator: one forward-over-reverse product per batch and vector
    (reverse over reverse where an operation lacks a forward-mode second derivative).

    ``model``, ``loss``, ``data``, ``params`` and ``process_group`` as for
    :func:`jacobite.curvature.ggn` (the same parameter vector, the same sum or mean over
    batches, each rank's ``data`` its shard and every product all-reduced). Unlike the
    Gauss–Newton matrix it holds the second derivatives of the model too, so it need not be
    positive semi-definite.

    >>> import torch
    >>> from jacobite.curvature import hessian
    >>> model = torch.nn.Linear(3, 1).double()
    >>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    >>> H = hessian(model, torch.nn.MSELoss(reduction="sum"), (X, y))
    >>> Xb = torch.cat([X, torch.ones(5, 1, dtype=torch.float64)], 1)
    >>> torch.allclose(H.to_dense(), 2 * Xb.T @ Xb)
    True
    """
    model = check_model(model)
    lc = LossCurvature.of(loss)
    group = resolve(process_group)
    ps = Params.of(model, params)
    with count_guard(group):  # a rank's bad data stops every rank here
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        scale = scan(model, ps, lc, batches, group=group)[1]

    def local(v: torch.Tensor) -> torch.Tensor:
        acc = v.new_zeros(ps.size)
        tangent = ps.split(v)
        for X, y in batches:
            def batch_loss(p: dict[str, torch.Tensor], X: Any = X, y: Any = y) -> torch.Tensor:
                out = forward(model, ps, p, X)
                w = lc.weight(out, y)  # 0: every target ignored, torch's mean is NaN
                return lc.value(out, y) * w if w else out.sum() * 0.0

            acc += ps.flat(_hvp(batch_loss, ps.primals(), tangent))
        return acc * scale if scale != 1.0 else acc

    mv, mm = reduced(local, group, ps.size), reduced(columns(local), group, ps.size)
    return FunctionOperator((ps.size, ps.size), mv, mv, dtype=ps.dtype, device=ps.device,
                            tags=("symmetric",), mm=mm, rmm=mm, name="hessian")
