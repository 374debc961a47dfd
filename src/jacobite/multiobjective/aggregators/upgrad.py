"""UPGrad: the mean of the rows projected onto the dual cone of all rows."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._base import (
    GramianWeightedAggregator,
    Option,
    check_vector,
    nonnegative,
    one_of,
    pref_weights,
    vector,
)
from ._qp import _SOLVERS, QPSolver, _mm, _solve_lcp_numpy, _Stalled, project_dual_cone

__all__ = ["UPGrad", "dual_cone_weights", "normalize_regularize"]


def normalize_regularize(G: Tensor, norm_eps: float, reg_eps: float) -> Tensor:
    """``G / tr(G) + reg_eps·I`` (``0 + reg_eps·I`` when ``tr(G) < norm_eps``), in float64.

    Dividing by the trace (‖J‖²_F) makes the projections scale-free; the ridge makes ``G``
    positive definite so that every projection has a unique solution.
    """
    G = G.detach().to(torch.float64)
    trace = G.diagonal().sum()
    Gn = G / trace if float(trace) >= norm_eps else torch.zeros_like(G)
    Gn.diagonal().add_(reg_eps)
    return Gn


def _dual_cone_weights_numpy(G: Tensor, pref: Tensor | None, norm_eps: float, reg_eps: float,
                             each_row: bool) -> Tensor:
    """:func:`dual_cone_weights` for CPU tensors, all in NumPy (a few µs per step, which is
    what matters for small m)."""
    m = G.shape[0]
    Gn = G.detach().numpy().astype(np.float64)
    trace = float(np.trace(Gn))
    if trace >= norm_eps:
        Gn /= trace
    else:
        Gn[:] = 0.0
    Gn.flat[:: m + 1] += reg_eps
    p = np.full(m, 1.0 / m) if pref is None else pref.detach().cpu().numpy().astype(np.float64)
    U = np.diag(p) if each_row else p[None, :]
    V = U + _solve_lcp_numpy(Gn, _mm(U, Gn), 1e-12, 3 * m + 30)
    return torch.from_numpy(V.sum(0)).to(G.dtype)


# Up to this many rows, a Gramian on a GPU is solved on the host: one copy of m² numbers each
# way against a batched solver whose pivoting rounds each wait for the device (measured on an
# H200: see docs/multiobjective.md).
HOST_MAX_M = 64


def dual_cone_weights(G: Tensor, pref: Tensor | None, norm_eps: float, reg_eps: float,
                      solver: QPSolver, *, each_row: bool) -> Tensor:
    """UPGrad's (``each_row=True``: Σᵢ of the projections of pᵢ eᵢ) or DualProj's (the
    projection of p) weights from the Gramian, ``Ĝ = G / tr(G) + reg_eps·I``."""
    if pref is not None:
        check_vector(pref, "pref_vector", G.shape[0])
    if solver == "auto" and (G.device.type == "cpu" or G.shape[0] <= HOST_MAX_M):
        # a block that is not positive definite, or no progress: solve_lcp repairs the problem
        with contextlib.suppress(np.linalg.LinAlgError, _Stalled):
            w = _dual_cone_weights_numpy(G.detach().cpu(), pref, norm_eps, reg_eps, each_row)
            return w.to(G.device)
    Gn = normalize_regularize(G, norm_eps, reg_eps)
    p = pref_weights(pref, Gn, None)
    U = torch.diag(p) if each_row else p[None, :]
    return project_dual_cone(Gn, U, solver).sum(0).to(G.dtype)


class UPGrad(GramianWeightedAggregator):
    r"""Unconflicting Projection of Gradients (Quinton & Rey, 2024).

    Each row ``gᵢ`` (scaled by its preference ``pᵢ``, default ``1/m``) is projected onto the dual
    cone ``C = {d : J d ≥ 0}`` of the rows, and the projections are summed::

        d = Σᵢ π_C(pᵢ gᵢ),   π_C(Jᵀu) = Jᵀv  with  v = argmin_{v ≥ u} vᵀ Ĝ v,

    where ``Ĝ = G / tr(G) + reg_eps·I`` (``G = JJᵀ``; as in TorchJD 0.18.0). The ``m``
    projections are solved together, exactly, by the block-pivoting solver of :mod:`._qp`:
    ``solver="auto"`` (NumPy/LAPACK for CPU tensors, and for other devices up to
    ``HOST_MAX_M`` rows after one copy of G to the host; batched torch beyond),
    ``"torch"`` (batched torch on G's device) or ``"quadprog"`` (one qpsolvers/quadprog call
    per row, as TorchJD does; extra ``jacobite[quadprog]``).

    Properties: non-conflicting (``J d ≥ 0`` up to the ridge ``reg_eps``), linear under
    scaling (``A(cJ) = c A(J)`` for ``c > 0``, because ``Ĝ`` is scale-free), weighted
    (``d = Jᵀw`` with ``w = Σᵢ vᵢ ≥ p``).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    >>> d = UPGrad()(J)
    >>> bool((J @ d >= 0).all())
    True
    >>> UPGrad(pref_vector=torch.tensor([0.5, 0.5]))
    UPGrad(pref_vector=tensor([0.5000, 0.5000]), norm_eps=0.0001, reg_eps=0.0001, solver='auto')
    """

    differentiable = False
    pref_vector = Option(vector)
    _str_option = "pref_vector"
    norm_eps = Option(nonnegative)
    reg_eps = Option(nonnegative)
    solver = Option(one_of(*_SOLVERS))

    def __init__(self, pref_vector: Tensor | None = None, *, norm_eps: float = 1e-4,
                 reg_eps: float = 1e-4, solver: QPSolver = "auto") -> None:
        self.pref_vector = pref_vector
        self.norm_eps = norm_eps
        self.reg_eps = reg_eps
        self.solver = solver

    def _params(self) -> dict[str, Any]:
        return {"pref_vector": self.pref_vector, "norm_eps": self.norm_eps,
                "reg_eps": self.reg_eps, "solver": self.solver}

    def _weights(self, G: Tensor) -> Tensor:
        return dual_cone_weights(G, self.pref_vector, self.norm_eps, self.reg_eps, self.solver,
                                 each_row=True)
