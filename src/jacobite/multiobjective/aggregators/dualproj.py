"""DualProj: the mean gradient projected onto the dual cone of the rows."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._base import GramianWeightedAggregator, Option, nonnegative, one_of, vector
from ._qp import _SOLVERS, QPSolver
from .upgrad import dual_cone_weights

__all__ = ["DualProj"]


class DualProj(GramianWeightedAggregator):
    r"""The preference-weighted mean ``Jᵀp`` projected onto the dual cone ``{d : J d ≥ 0}``
    (Equation 11 of Gradient Episodic Memory, Lopez-Paz & Ranzato 2017)::

        d = Jᵀv,   v = argmin_{v ≥ p} vᵀ Ĝ v,   Ĝ = G / tr(G) + reg_eps·I,

    with ``p = (1/m, …, 1/m)`` by default (TorchJD 0.18.0's defaults and normalisation). One
    problem of the exact solver of :mod:`._qp`; ``solver`` as for :class:`UPGrad`.

    Properties: non-conflicting (up to ``reg_eps``), linear under scaling, weighted (``v ≥ p``).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    >>> d = DualProj()(J)
    >>> bool((J @ d >= -1e-3).all())
    True
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
                                 each_row=False)
