"""Levenberg–Marquardt steps: Moré's damped step on one SVD per Jacobian, batched.

For each problem the step minimises ``‖J̃ p + f̃‖`` subject to ``‖D p‖ <= Δ``. With the SVD
``J̃ D⁻¹ = U S Vᵀ`` (one per Jacobian, kept between trials), every damping λ gives the step
``q(λ) = −V (S² + λ)⁻¹ S Uᵀ f̃`` (``p = q / D``) that solves ``[J̃; √λ D] p ≈ [−f̃; 0]`` without
forming ``J̃ᵀJ̃``; λ is found by Moré's safeguarded Newton iteration on the secular equation
``‖q(λ)‖ = Δ``, for all problems at once (a problem whose iteration has converged stops changing).
Where ``J̃`` is rank deficient the Gauss–Newton step is the minimum-norm one (singular values
below ``max(m, n)·eps·s₀`` dropped).

Column scaling (``jac_scale``): ``D = max(D, ‖J̃_j‖)`` (MINPACK's running maximum, zero columns
counting as 1). Robust losses enter through Triggs' scaling ``J̃ = diag(s) J``,
``f̃ = ρ' f / s``, ``s = √(ρ' + 2ρ'' f²)``.

Geodesic acceleration (Transtrum & Sethna 2012, linear loss): after a damped step ``v``
(λ > 0) the acceleration ``a`` solves the same damped system with ``f̃`` replaced by the second
directional derivative ``r''(x)[v, v] ≈ (2/h)((r(x + h v) − r(x))/h − J v)`` (``h = 0.1``, one
residual evaluation per damped problem); ``v + ½a`` (scaled back onto the trust region if it
leaves it) is used when ``2‖D a‖ <= 0.75 ‖D v‖``.

>>> import torch
>>> U, s, Vh = torch.linalg.svd(torch.eye(2, dtype=torch.float64)[None])
>>> uf = (U.mT @ torch.tensor([[3.0, 4.0]], dtype=torch.float64)[..., None])[..., 0]
>>> p, lam = more_step(uf, s, Vh.mT, torch.tensor([10.0], dtype=torch.float64),
...                    torch.zeros(1, dtype=torch.float64), m=2)
>>> p.tolist(), lam.tolist()
([[-3.0, -4.0]], [0.0])
"""

from __future__ import annotations

import torch

from ..loop import merge_rows
from ..protocols import Problem, Trial
from ..robust import RobustLoss
from ..state import LossFn, State
from ..status import EPS64, Tolerances, gradient_test

__all__ = ["LevenbergMarquardt", "col_norms", "more_step"]



def col_norms(J: torch.Tensor) -> torch.Tensor:
    """(B, n) Euclidean column norms of ``J`` (B, m, n), each column divided by its largest entry
    first when a square could overflow or underflow (entries beyond ``2^±500``).

    >>> col_norms(torch.tensor([[[3e-200, 1.0], [4e-200, 0.0]]], dtype=torch.float64)).tolist()
    [[5e-200, 1.0]]
    """
    cn = torch.linalg.vector_norm(J, dim=-2)
    if bool(((cn < 2.0 ** 500) & (cn > 2.0 ** -500)).all()):  # no square over- or underflowed
        return cn  # that mattered (the usual case: one pass over J)
    big = J.abs().amax(-2) if J.shape[-2] else J.new_zeros(J.shape[0], J.shape[-1])
    if bool(((big < 2.0 ** 500) & ((big == 0) | (big > 2.0 ** -500))).all()):
        return cn
    safe = torch.where(big > 0, big, 1.0)
    return big * torch.linalg.vector_norm(J / safe[:, None, :], dim=-2)


def more_step(uf: torch.Tensor, s: torch.Tensor, V: torch.Tensor, delta: torch.Tensor,
              lam0: torch.Tensor, *, m: int, rtol: float = 0.01, max_iter: int = 12
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Moré's trust-region step ``(q, λ)`` per problem: ``‖q‖ <= delta`` (B,), λ = 0 where the
    minimum-norm Gauss–Newton step lies inside. ``uf = Uᵀ f̃`` (B, k), singular values ``s``
    (B, k) in decreasing order, right singular vectors ``V`` (B, n, k); ``lam0`` (B,) warm-starts
    λ where positive; ``m`` is the number of residuals (for the rank cut-off)."""
    n, k = V.shape[-2], s.shape[-1]
    suf, s2 = s * uf, s * s
    keep = s > s[:, :1] * (EPS64 * max(m, n))  # all false where J = 0
    p_gn = -(V @ torch.where(keep, uf / s, 0.0)[..., None])[..., 0]
    hi = torch.linalg.vector_norm(suf, dim=-1) / delta
    zero = ~((delta > 0) & (hi > 0))  # no radius or no gradient: no step
    done = zero | (torch.linalg.vector_norm(p_gn, dim=-1) <= delta)
    if bool(done.all()):  # every Gauss–Newton step lies inside its region
        return torch.where(zero[:, None], 0.0, p_gn), torch.zeros_like(delta)
    lo = torch.zeros_like(hi)
    if n == k:  # full rank: Newton's lower bound from λ = 0
        pn = torch.linalg.vector_norm(suf / s2, dim=-1)
        dph = -(suf * suf / (s2 * s2 * s2)).sum(-1) / pn
        lo = torch.where(keep.all(-1) & (dph < 0), (-(pn - delta) / dph).clamp_min(0.0), lo)
    lam = torch.where(lam0 > 0, lam0, torch.maximum(1e-3 * hi, (lo * hi).sqrt()))
    active, tight = ~done, rtol * delta
    for _ in range(max_iter):  # a problem whose iteration has stopped keeps its λ
        lam = torch.where(active & ~((lo <= lam) & (lam <= hi)),
                          torch.maximum(1e-3 * hi, (lo * hi).sqrt()), lam)
        den = s2 + lam[:, None]
        pn = torch.linalg.vector_norm(suf / den, dim=-1)
        dph = -(suf * suf / (den * den * den)).sum(-1) / pn  # NaN where the step underflowed
        ph = pn - delta
        hi = torch.where(active & (ph < 0), lam, hi)
        ok = active & (dph < 0) & torch.isfinite(dph)
        ratio = ph / dph
        lo = torch.where(ok, torch.maximum(lo, lam - ratio), lo)
        lam = torch.where(ok, lam - (ph + delta) * ratio / delta, lam)
        active = ok & (ph.abs() >= tight)
        if not bool(active.any()):
            break
    lam = lam.clamp_min(0.0)
    q = -(V @ (suf / (s2 + lam[:, None]))[..., None])[..., 0]
    q = torch.where(done[:, None], torch.where(zero[:, None], 0.0, p_gn), q)
    return q, torch.where(done, 0.0, lam)


def robust_model(J: torch.Tensor, f: torch.Tensor, loss: LossFn | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Triggs' ``(J̃, f̃)`` of the loss (the inputs unchanged without one)."""
    return (J, f) if loss is None else RobustLoss.scaled(J, f, loss(f))


class LevenbergMarquardt:
    """The Levenberg–Marquardt step rule (see the module doc); pair it with
    :class:`~..trust_region.TrustRegion`.

    Args:
        geodesic: geodesic acceleration of damped steps (linear loss only).
        jac_scale: ``D`` from the running maximum of the column norms (``x_scale="jac"``);
            ``False`` keeps the ``D`` the state starts with (``1 / x_scale``).
        h, alpha: the finite-difference step of the second directional derivative and the
            acceleration's acceptance ratio.
    """

    rowwise = True  #: holds no per-problem tensors: the loop may split a batch by rows

    def __init__(self, geodesic: bool = True, jac_scale: bool = True, h: float = 0.1,
                 alpha: float = 0.75) -> None:
        self.geodesic, self.jac_scale, self.h, self.alpha = geodesic, jac_scale, h, alpha

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        Jt, ft = robust_model(state.J, state.f, state.loss)
        cn = col_norms(Jt)
        g = (Jt.mT @ ft[..., None])[..., 0]
        ok = gradient_test(ft, g, cn, tol.gtol, tol.eps)
        every = bool(fresh.all())
        if self.jac_scale:
            c = torch.where(cn > 0, cn, 1.0)
            seen = state.extra.get("lm_scaled")  # rows whose D this rule has set before
            grown = c if seen is None else torch.where(seen[:, None], torch.maximum(state.D, c),
                                                       c)
            state.D = grown if every else merge_rows(fresh, grown, state.D)
            state.extra["lm_scaled"] = fresh if seen is None else seen | fresh
        U, s, Vh = torch.linalg.svd(Jt / state.D[:, None, :], full_matrices=False)
        uf = (U.mT @ ft[..., None])[..., 0]
        new = (Jt, U, s, Vh.mT, uf)
        old = state.extra.get("svd")
        state.extra["svd"] = new if old is None or every else tuple(
            merge_rows(fresh, a, b) for a, b in zip(new, old, strict=True))
        state.g = g if every else merge_rows(fresh, g, state.g)
        return ok

    def propose(self, state: State, problem: Problem) -> Trial:
        Jt, U, s, V, uf = state.extra["svd"]
        D = state.D
        q, lam = more_step(uf, s, V, state.delta, state.lam, m=state.m)
        p = q / D
        pnorm = torch.linalg.vector_norm(q, dim=-1)
        Jq = (Jt @ p[..., None])[..., 0]
        jj = (Jq * Jq).sum(-1)
        lp = lam * pnorm * pnorm
        predicted = 0.5 * jj + lp
        slope = -(jj + lp)
        if self.geodesic and state.loss is None:
            p = self._accelerate(state, problem, p, lam, Jq, U, s, V)
        return Trial(p=p, pnorm=pnorm, predicted=predicted, slope=slope, lam=lam)

    def _accelerate(self, state: State, problem: Problem, v: torch.Tensor, lam: torch.Tensor,
                    Jv: torch.Tensor, U: torch.Tensor, s: torch.Tensor, V: torch.Tensor
                    ) -> torch.Tensor:
        """``v + ½a`` where the geodesic acceleration is taken (see the module doc), else ``v``;
        counts one residual evaluation per damped running problem."""
        damped = (lam > 0) & state.running
        if not bool(damped.any()):
            return v
        h, D = self.h, state.D
        f_h = problem.f(state.x + h * v)
        state.nfev = state.nfev + damped
        rvv = (2.0 / h) * ((f_h - state.f) / h - Jv)
        finite = torch.isfinite(rvv).all(-1)
        rvv = torch.where(finite[:, None], rvv, 0.0)
        ua = (U.mT @ rvv[..., None])[..., 0]
        a = -(V @ (s * ua / (s * s + lam[:, None]))[..., None])[..., 0] / D
        vn = torch.linalg.vector_norm(D * v, dim=-1)
        use = damped & finite & (2 * torch.linalg.vector_norm(D * a, dim=-1) <= self.alpha * vn)
        w = v + 0.5 * a
        wn = torch.linalg.vector_norm(D * w, dim=-1)
        w = torch.where((wn <= vn)[:, None], w, w * (vn / wn)[:, None])
        return torch.where(use[:, None], w, v)
