"""Trust-region building blocks shared by :mod:`.lm` and :mod:`.trf` (NumPy, float64).

The central one is :func:`tr_step_svd`: Moré's (1978) solution of
``min ‖J p + f‖ subject to ‖p‖ <= Δ`` from one SVD ``J = U S Vᵀ`` — for every damping λ the
step ``p(λ) = −V (S² + λ)⁻¹ S Uᵀ f`` solves the augmented system ``[J; √λ I] p ≈ [−f; 0]``
exactly, so JᵀJ is never formed and each trial λ costs ``O(n²)``. λ is found by Moré's
safeguarded Newton iteration on the secular equation ``1/‖p(λ)‖ = 1/Δ``. When ``J`` is rank
deficient the Gauss–Newton step is the minimum-norm one (singular values below
``max(m, n)·eps·s₀`` dropped).

>>> import numpy as np
>>> U, s, Vt = np.linalg.svd(np.eye(2))
>>> p, lam = tr_step_svd(U.T @ np.array([3.0, 4.0]), s, Vt.T, 10.0)
>>> p.tolist(), lam
([-3.0, -4.0], 0.0)
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cl_scaling",
    "clip_strictly",
    "find_active",
    "quad_1d",
    "step_to_bound",
    "tr_step_svd",
]

EPS = np.finfo(float).eps


def tr_step_svd(uf: np.ndarray, s: np.ndarray, V: np.ndarray, delta: float,
                lam0: float | None = None, rtol: float = 0.01,
                max_iter: int = 12) -> tuple[np.ndarray, float]:
    """Step and damping ``(p, λ)`` for the trust region ``‖p‖ <= delta``; ``λ = 0``: the
    (minimum-norm) Gauss–Newton step lies inside. ``uf = Uᵀ f``; ``V`` holds right singular
    vectors as columns; ``lam0`` warm-starts λ."""
    suf = s * uf
    if not delta > 0:
        return np.zeros(V.shape[0]), 0.0
    keep = s > s[0] * EPS * max(len(uf), V.shape[0]) if s.size and s[0] > 0 else s > 0
    p_gn = -V[:, keep] @ (uf[keep] / s[keep])
    if np.linalg.norm(p_gn) <= delta:
        return p_gn, 0.0
    full_rank = bool(keep.all()) and V.shape[0] == s.size

    def phi(lam: float) -> tuple[float, float]:
        den = s * s + lam
        pn = float(np.linalg.norm(suf / den))
        if pn == 0:  # the step underflowed at this λ: no slope to follow
            return -delta, np.nan
        with np.errstate(over="ignore", under="ignore"):
            return pn - delta, -float(np.sum(suf * suf / den ** 3)) / pn

    hi = float(np.linalg.norm(suf)) / delta if delta > 0 else 0.0
    if hi == 0.0:  # zero gradient or zero radius: no step
        return np.zeros(V.shape[0]), 0.0
    lo = 0.0
    if full_rank:
        ph, dph = phi(0.0)
        lo = max(-ph / dph, 0.0) if dph < 0 else 0.0
    lam = lam0 if lam0 is not None and lam0 > 0 else max(1e-3 * hi, (lo * hi) ** 0.5)
    for _ in range(max_iter):
        if not lo <= lam <= hi:
            lam = max(1e-3 * hi, (lo * hi) ** 0.5)
        ph, dph = phi(lam)
        if ph < 0:
            hi = lam
        if not (dph < 0 and np.isfinite(dph)):  # under/overflow at extreme radii
            break
        ratio = ph / dph
        lo = max(lo, lam - ratio)
        lam -= (ph + delta) * ratio / delta
        if abs(ph) < rtol * delta:
            break
    lam = max(lam, 0.0)
    p = -V @ (suf / (s * s + lam))
    return p, lam


def step_to_bound(x: np.ndarray, s: np.ndarray, lb: np.ndarray,
                  ub: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest ``t`` with ``lb <= x + t s <= ub`` and the signs of the bounds hit there."""
    steps = np.full_like(x, np.inf)
    nz = s != 0
    with np.errstate(over="ignore", invalid="ignore"):
        steps[nz] = np.maximum((lb - x)[nz] / s[nz], (ub - x)[nz] / s[nz])
    t = float(np.min(steps))
    return t, np.equal(steps, t) * np.sign(s).astype(int)


def find_active(x: np.ndarray, lb: np.ndarray, ub: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """−1 where ``x`` is at (within ``rtol`` of) its lower bound, +1 at its upper, 0 free."""
    active = np.zeros(x.shape, dtype=int)
    lo = x - lb
    up = ub - x
    active[np.isfinite(lb) & (lo <= np.minimum(up, rtol * np.maximum(1, np.abs(lb))))] = -1
    active[np.isfinite(ub) & (up <= np.minimum(lo, rtol * np.maximum(1, np.abs(ub))))] = 1
    return active


def clip_strictly(x: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """``x`` moved one ulp inside any bound it sits on or crosses (strict feasibility)."""
    x = np.clip(x, lb, ub)
    lo, up = x <= lb, x >= ub
    x[lo] = np.nextafter(lb[lo], ub[lo])
    x[up] = np.nextafter(ub[up], lb[up])
    tight = (x < lb) | (x > ub)
    x[tight] = 0.5 * (lb[tight] + ub[tight])
    return x


def cl_scaling(x: np.ndarray, g: np.ndarray, lb: np.ndarray,
               ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coleman–Li scaling ``v`` (distance to the bound the gradient points at) and ``dv``."""
    v = np.ones_like(x)
    dv = np.zeros_like(x)
    mask = (g < 0) & np.isfinite(ub)
    v[mask] = ub[mask] - x[mask]
    dv[mask] = -1
    mask = (g > 0) & np.isfinite(lb)
    v[mask] = x[mask] - lb[mask]
    dv[mask] = 1
    return v, dv


def quad_1d(Js: np.ndarray, s: np.ndarray, diag: np.ndarray | None = None) -> float:
    """``sᵀ (JᵀJ + diag) s`` without forming JᵀJ (``Js = J s``)."""
    a = float(Js @ Js)
    if diag is not None:
        a += float(np.dot(s * diag, s))
    return a


def minimize_quad_1d(a: float, b: float, lo: float, hi: float, c: float = 0.0
                     ) -> tuple[float, float]:
    """Minimise ``a t² + b t + c`` over ``[lo, hi]``: ``(t, value)``."""
    ts = [lo, hi]
    if a != 0:
        ext = -0.5 * b / a
        if lo < ext < hi:
            ts.append(ext)
    vals = [a * t * t + b * t + c for t in ts]
    i = int(np.argmin(vals))
    return ts[i], vals[i]
