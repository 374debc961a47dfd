"""The exact diagonal of the Gauss–Newton matrix from per-sample VJPs of the columns of the
loss Hessian's square root: ``diag G = Σ_n Σ_k (J_nᵀ s_nk)²``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..config import get_memory_budget
from ..errors import ShapeError, UnsupportedOperationError
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward

__all__ = ["ggn_diagonal"]


def ggn_diagonal(model: nn.Module, loss: Any, data: Any,
                 params: Iterable[str] | None = None) -> torch.Tensor:
    """The exact diagonal of :func:`jacobite.curvature.ggn`'s matrix, a ``(P,)`` tensor.

    With ``H_n = S_n S_nᵀ`` the loss Hessian of sample ``n`` in its output (cross-entropy:
    ``S = diag(√p) − p √pᵀ``; MSE: a multiple of ``I``), ``diag G = Σ_n Σ_k (J_nᵀ s_nk)²``:
    ``C`` VJPs per sample, vmapped over the samples of a batch and over the ``C`` columns, in
    chunks of samples whose ``(samples, C, P)`` per-sample gradients fit the memory budget.
    Any ``torch.func``-compatible model (LayerNorm, BatchNorm in eval mode, grouped
    convolutions, attention); outputs of shape ``(n, C)``; cross-entropy (class indices or
    probabilities, ``weight=None``) or MSE, with the reduction conventions of ``ggn``.

    >>> import torch
    >>> from jacobite.curvature import ggn, ggn_diagonal
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
    ...                             torch.nn.Linear(4, 2)).double()
    >>> X, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    >>> loss = torch.nn.CrossEntropyLoss()
    >>> d = ggn_diagonal(model, loss, (X, y))
    >>> torch.allclose(d, ggn(model, loss, (X, y)).to_dense().diagonal())
    True
    """
    model = check_model(model)
    lc = LossCurvature.of(loss)
    if lc.kind not in ("ce", "mse"):
        raise UnsupportedOperationError(
            "the exact diagonal needs the loss Hessian's square root in closed form: pass "
            "nn.CrossEntropyLoss (weight=None) or nn.MSELoss, or use "
            "ggn(...).diagonal() for any other loss")
    ps = Params.of(model, params)
    batches = Data(data, targets=True, dtype=ps.dtype)

    def one(p: dict[str, torch.Tensor], x: Any, S: torch.Tensor) -> torch.Tensor:
        """``Σ_k (J_xᵀ s_k)²`` for one sample ``x`` and its ``(K, C)`` columns ``S``."""
        pull = torch.func.vjp(lambda q: forward(model, ps, q, x[None])[0], p)[1]
        g = torch.func.vmap(lambda s: ps.flat(pull(s)[0]))(S)
        return (g * g).sum(dim=0)

    per_sample = torch.func.vmap(one, in_dims=(None, 0, 0))
    diag = torch.zeros(ps.size, dtype=ps.dtype, device=ps.device)
    total = 0
    for i, (X, y) in enumerate(batches):
        with torch.no_grad():
            out = forward(model, ps, ps.primals(), X)
        if i == 0:
            lc.check(out, y)
        if out.ndim != 2:
            raise ShapeError(f"the exact diagonal needs outputs of shape (n, C), got "
                             f"{tuple(out.shape)}; use ggn(...).diagonal() for other shapes")
        total += lc.weight(out)
        S = lc.sqrt_columns(out, y)
        per = max(1, get_memory_budget() // (3 * S.shape[1] * ps.size * out.element_size()))
        for start in range(0, X.shape[0], per):
            with torch.enable_grad():
                d = per_sample(ps.primals(), X[start:start + per], S[start:start + per])
            diag += d.sum(dim=0)
    return diag / total if lc.mean else diag
