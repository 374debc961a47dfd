"""CAGrad: conflict-averse gradient descent."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator, Option, nonnegative
from ._qp import _definite, _repair
from .mgda import _RIDGE, _mgda_exact

__all__ = ["CAGrad"]


def _solve_simplex(G: Tensor, s: float) -> Tensor:
    """``argmin_{w ∈ Δ} wᵀG1/m + s‖g_w‖`` (``‖g_w‖² = wᵀGw``), exactly, in float64.

    With ``‖g‖ = min_{t>0} ‖g‖²/(2t) + t/2`` the problem for a fixed ``t`` is the min-norm point
    of the convex hull of the shifted rows ``gᵢ + (t/s) g₀`` — one exact MGDA solve on the
    Gramian ``G + a1ᵀ + 1aᵀ + κ11ᵀ`` (``a = (t/s) G1/m``, ``κ = (t/s)² 1ᵀG1/m²``) — and the
    optimal ``t`` is the root of the increasing ``t² − ‖g_{w(t)}‖²``, found by Brent's method.
    """
    m = G.shape[0]
    ones = torch.ones(m, dtype=G.dtype, device=G.device)
    Gg0 = G @ ones / m
    g0_sq = float(ones @ Gg0) / m

    def w_of(t: float) -> Tensor:
        r = t / s
        a = r * Gg0
        return _mgda_exact(G + a[:, None] + a[None, :] + r * r * g0_sq)

    def gap(t: float) -> float:
        w = w_of(t)
        return t * t - float(w @ G @ w)

    hi = float(G.diagonal().max().clamp_min(0.0).sqrt()) * (1 + 1e-9) + 1e-300
    lo = 1e-12 * hi
    if gap(lo) >= 0:  # the optimum has g_w ≈ 0
        return w_of(lo)
    from scipy.optimize import brentq  # loaded on use

    t = brentq(gap, lo, hi, xtol=1e-15 * hi, rtol=1e-15, maxiter=200)
    return w_of(t)


def _reaches(trace: float, k: int, eps: float) -> bool:
    """``4⁻ᵏ·trace ≥ eps`` for a positive ``trace``, without over- or underflow."""
    if not trace > 0:
        return False  # a zero Gramian: no direction to normalise
    if eps <= 0:
        return True
    mt, et = math.frexp(trace)
    me, ee = math.frexp(eps)
    return (et - 2 * k, mt) >= (ee, me)  # compare binary exponents, then mantissas


class CAGrad(GramianWeightedAggregator):
    r"""CAGrad (Liu et al. 2021, Algorithm 1): maximise the worst improvement ``minᵢ gᵢ·d`` in
    the ball ``‖d − g₀‖ ≤ c‖g₀‖`` around the mean gradient ``g₀``. Its dual, on the normalised
    Gramian ``Ĝ = G / tr(G)`` (TorchJD 0.18.0's normalisation)::

        w* = argmin_{w ∈ Δ} wᵀĜ1/m + c‖g₀‖ √(wᵀĜw),   ‖g₀‖ = √(1ᵀĜ1)/m,
        d = Jᵀ(1/m + c‖g₀‖ / ‖g_w‖ · w*)   (d = 0 when ‖g_w‖ = √(w*ᵀĜw*) < norm_eps),

    solved exactly: a 1-D root search (Brent) over exact MGDA problems (``_solve_simplex``).
    ``c ≥ 0`` has no default, as in TorchJD; ``c = 0`` is the mean.

    Properties: weighted; linear under scaling (``d(cJ) = c·d(J)``, c > 0) while the trace of
    ``c²G`` is at least ``norm_eps``, below which the update is 0 — exactly, also where ``J Jᵀ``
    over- or underflows (it is formed from ``J`` times a power of two there); conflict-*averse*,
    not non-conflicting in general (the worst row's improvement is maximised, not made
    non-negative).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> CAGrad(c=0.5)(J)
    tensor([0.7500, 0.7500], dtype=torch.float64)
    """

    differentiable = False
    c = Option(nonnegative)
    norm_eps = Option(nonnegative)

    def __init__(self, c: float, norm_eps: float = 0.0001) -> None:
        self.c = c
        self.norm_eps = norm_eps

    def __str__(self) -> str:
        return f"CAGrad{self.c}"

    def _params(self) -> dict[str, Any]:
        return {"c": self.c, "norm_eps": self.norm_eps}

    def _weights(self, G: Tensor) -> Tensor:
        return self._weights_at(G, 0)

    def _weights_at(self, G: Tensor, k: int) -> Tensor:
        """The weights for ``J`` from ``G = (2ᵏJ)(2ᵏJ)ᵀ``: only the test of ``tr(J Jᵀ) =
        4⁻ᵏ tr(G)`` against ``norm_eps`` sees the scale; ``G / tr(G)`` does not."""
        m = G.shape[0]
        G64 = G.detach().to(torch.float64)
        trace = float(G64.diagonal().sum())
        Gn = G64 / trace if _reaches(trace, k, self.norm_eps) else torch.zeros_like(G64)
        Gn = 0.5 * (Gn + Gn.T)
        if not _definite(Gn + _RIDGE * torch.eye(m, dtype=Gn.dtype, device=Gn.device)):
            # indefinite by round-off (a float32 Gramian of dependent rows): make it positive
            # semi-definite once, so that every shifted Gramian of the root search is too
            Gn = _repair(Gn)[0]
        s = self.c * float(Gn.sum().clamp_min(0.0).sqrt()) / m
        uniform = torch.full((m,), 1.0 / m, dtype=torch.float64, device=G.device)
        w = _solve_simplex(Gn, s) if s > 0 else uniform
        norm = float((w @ Gn @ w).clamp_min(0.0).sqrt())
        keep = norm > 0 and norm >= self.norm_eps
        weights = uniform + (s / norm) * w if keep else torch.zeros_like(w)
        return weights.to(G.dtype)
