"""MGDA: the minimum-norm point of the convex hull of the gradients, solved exactly."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ... import _validate
from ._base import GramianWeightedAggregator, Option, one_of, positive
from ._qp import solve_lcp

__all__ = ["MGDA"]

_RIDGE = 1e-12  # relative to tr(G): makes G_FF factorizable when rows are dependent


def _mgda_exact(G: Tensor) -> Tensor:
    """Weights ``w`` on the simplex minimising ``wᵀGw``, exactly, via one complementarity problem.

    ``x ≥ 0`` with ``Gx − 1 ≥ 0`` and ``xᵀ(Gx − 1) = 0`` gives ``w = x / Σx``: the optimality
    conditions of the simplex problem with multiplier ``wᵀGw = 1 / Σx``.
    """
    m = G.shape[0]
    G64 = G.to(torch.float64)
    trace = float(G64.diagonal().sum())
    if m == 1 or trace <= 0.0:
        return torch.full((m,), 1.0 / m, dtype=G.dtype, device=G.device)
    Gn = G64 / trace
    Gn.diagonal().add_(_RIDGE)
    x = solve_lcp(Gn, -torch.ones(1, m, dtype=torch.float64, device=G.device))[0]
    total = float(x.sum())
    if not (0.0 < total < float("inf")):  # pragma: no cover - solve_lcp returns x with Σx > 0
        return _frank_wolfe(G64 / trace, 1e-12, 10 * m).to(G.dtype)
    return (x / total).to(G.dtype)


def _frank_wolfe(G: Tensor, epsilon: float, max_iter: int) -> Tensor:
    """Algorithm 2 of Sener & Koltun (2018), as in TorchJD: stops when the step is < epsilon."""
    m = G.shape[0]
    w = torch.full((m,), 1.0 / m, dtype=G.dtype, device=G.device)
    for _ in range(max_iter):
        Gw = G @ w
        t = int(torch.argmin(Gw))
        a, b, c = Gw[t], w @ Gw, G[t, t]
        if c <= a:
            gamma = 1.0
        elif b <= a:
            gamma = 0.0
        else:
            gamma = float((b - a) / (b + c - 2 * a))
        w = (1 - gamma) * w
        w[t] += gamma
        if gamma < epsilon:
            break
    return w


class MGDA(GramianWeightedAggregator):
    r"""Multiple-gradient descent (Désidéri 2012): the minimum-norm element of the convex hull of
    the rows, ``d = Jᵀw`` with ``w = argmin_{w ≥ 0, Σw = 1} wᵀ G w``.

    Solved **exactly** (``solver="exact"``, default) by the batched complementarity solver of
    :mod:`._qp` on ``G / tr(G) + 1e-12·I``: ``x ≥ 0, Ĝx ≥ 1, xᵀ(Ĝx − 1) = 0`` and ``w = x/Σx``.
    ``solver="frank-wolfe"`` runs TorchJD's Frank–Wolfe loop instead (``epsilon`` and
    ``max_iter``, default 100 — TorchJD's defaults — only matter there); it stops early and can
    conflict by a few per cent. (``max_iters=`` is the deprecated spelling of ``max_iter=``.)
    Float32 Gramians of dependent rows, which are indefinite by round-off, are repaired in
    float64 by the solver (:func:`._qp.solve_lcp`), so every finite input has an answer.

    Properties: non-conflicting (``gᵢ·d ≥ ‖d‖² ≥ 0`` for every row), linear under scaling,
    weighted (``w`` on the simplex). ``d = 0`` exactly when 0 is a convex combination of the rows
    (a Pareto-stationary point).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> MGDA()(J)
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """

    differentiable = False
    epsilon = Option(positive)
    max_iter = Option(_validate.positive_int)
    solver = Option(one_of("exact", "frank-wolfe"))

    def __init__(self, epsilon: float = 0.001, max_iter: int | None = None, *,
                 solver: Literal["exact", "frank-wolfe"] = "exact",
                 max_iters: int | None = None) -> None:
        max_iter = _validate.renamed("max_iters", max_iters, "max_iter", max_iter)
        self.epsilon = epsilon
        self.max_iter = 100 if max_iter is None else max_iter
        self.solver = solver

    def _params(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "max_iter": self.max_iter, "solver": self.solver}

    def _weights(self, G: Tensor) -> Tensor:
        G = G.detach()  # an argmin computed outside autograd: see ``differentiable``
        if self.solver == "frank-wolfe":
            return _frank_wolfe(G, self.epsilon, self.max_iter)
        return _mgda_exact(G)
