"""Trust Region Reflective for box bounds (Branch, Coleman & Li 1999; SciPy's ``trf``).

The variables are rescaled by the Coleman–Li vector ``v`` (distance to the bound the gradient
points at), which turns the bound-constrained problem into an unconstrained-looking trust-region
subproblem ``min ½‖J̃ p + f‖² + ½ pᵀ C p`` in the scaled ("hat") variables, ``C = diag(g ∘ dv)``.
Its solution comes from the SVD of the augmented matrix ``[J̃; C^½]`` (dense; ``JᵀJ`` never
formed) or, for a sparse Jacobian, from LSMR on the same augmented system followed by a 2-D
subspace trust-region step, as SciPy does — the sparse Jacobian is never densified. A step that
leaves the box is either truncated at the bound, reflected off it, or replaced by the truncated
scaled gradient step, whichever has the lowest model value; iterates stay strictly feasible.
Without bounds ``v = 1`` and this is a plain trust-region Gauss–Newton method.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> P = Residuals(lambda x: x - 2.0, torch.zeros(2, dtype=torch.float64), "auto")
>>> out = trust_region_reflective(P, np.zeros(2), np.array([-1.0, -1.0]), np.array([1.0, 3.0]),
...                               ftol=1e-12, xtol=1e-12, gtol=1e-12)
>>> np.round(out.x, 8).tolist()
[1.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, lsmr

from ._problem import Residuals
from ._trust import (
    EPS,
    cl_scaling,
    clip_strictly,
    minimize_quad_1d,
    quad_1d,
    step_to_bound,
    tr_step_svd,
)
from .lm import MESSAGES, SolverOutput, _reduction, col_norms, printer
from .losses import Loss, cost_of, scale_for_robust_loss

__all__ = ["trust_region_reflective"]


def _model(Jh: Any, gh: np.ndarray, ph: np.ndarray, diag: np.ndarray) -> float:
    """``½ phᵀ (J̃ᵀJ̃ + diag) ph + gh·ph``."""
    return 0.5 * quad_1d(Jh @ ph, ph, diag) + float(gh @ ph)


def _select_step(x: np.ndarray, Jh: Any, diag_h: np.ndarray, g_h: np.ndarray, p: np.ndarray,
                 p_h: np.ndarray, d: np.ndarray, delta: float, lb: np.ndarray, ub: np.ndarray,
                 theta: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The best of the truncated, reflected and gradient steps (SciPy's ``select_step``)."""
    if np.all((x + p >= lb) & (x + p <= ub)):
        return p, p_h, -_model(Jh, g_h, p_h, diag_h)
    p_stride, hits = step_to_bound(x, p, lb, ub)
    r_h = p_h.copy()
    r_h[hits.astype(bool)] *= -1
    r = d * r_h
    p, p_h = p * p_stride, p_h * p_stride
    # where the reflected direction leaves the trust region
    a, b, c = float(r_h @ r_h), 2 * float(p_h @ r_h), float(p_h @ p_h) - delta ** 2
    to_tr = (-b + np.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a > 0 else 0.0
    to_bound, _ = step_to_bound(x + p, r, lb, ub)
    r_stride = min(to_bound, to_tr)
    if r_stride > 0:
        lo = (1 - theta) * p_stride / r_stride
        hi = theta * to_bound if r_stride == to_bound else to_tr
    else:
        lo, hi = 0.0, -1.0
    r_value = np.inf
    if lo <= hi:
        Jr, Jp = Jh @ r_h, Jh @ p_h
        qa = 0.5 * quad_1d(Jr, r_h, diag_h)
        qb = float(g_h @ r_h) + float(Jp @ Jr) + float(np.dot(p_h * diag_h, r_h))
        qc = _model(Jh, g_h, p_h, diag_h)
        t, r_value = minimize_quad_1d(qa, qb, lo, hi, qc)
        r_h = p_h + t * r_h
        r = d * r_h
    p, p_h = p * theta, p_h * theta
    p_value = _model(Jh, g_h, p_h, diag_h)
    ag_h = -g_h
    ag = d * ag_h
    to_tr = delta / max(float(np.linalg.norm(ag_h)), np.finfo(float).tiny)
    to_bound, _ = step_to_bound(x, ag, lb, ub)
    stride = theta * to_bound if to_bound < to_tr else to_tr
    Jag = Jh @ ag_h
    t, ag_value = minimize_quad_1d(0.5 * quad_1d(Jag, ag_h, diag_h), float(g_h @ ag_h), 0.0,
                                   stride)
    if p_value < r_value and p_value < ag_value:
        return p, p_h, -p_value
    if r_value < p_value and r_value < ag_value:
        return r, r_h, -r_value
    return t * ag, t * ag_h, -ag_value


def _subspace_step(B: np.ndarray, g: np.ndarray, delta: float) -> np.ndarray:
    """``min ½ pᵀBp + gᵀp`` with ``‖p‖ <= delta`` in 2-D (eigen-decomposition + bisection)."""
    w, Q = np.linalg.eigh(B)
    gq = Q.T @ g
    if w[0] > 0:
        p = -gq / w
        if np.linalg.norm(p) <= delta:
            return Q @ p
    lo = max(0.0, -w[0]) + 1e-300
    hi = lo + float(np.linalg.norm(g)) / delta + abs(w).max() + 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(gq / (w + mid)) > delta:
            lo = mid
        else:
            hi = mid
    return Q @ (-gq / (w + hi))


def trust_region_reflective(P: Residuals, x0: np.ndarray, lb: np.ndarray, ub: np.ndarray, *,
                            ftol: float, xtol: float, gtol: float,
                            max_nfev: int | None = None, x_scale: Any = "jac",
                            loss: Loss | None = None, verbose: int = 0,
                            f0: np.ndarray | None = None, J0: Any = None) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` subject to ``lb <= x <= ub`` from a strictly feasible ``x0``."""
    n = x0.size
    max_nfev = 100 * n if max_nfev is None else max_nfev
    x = x0.copy()
    f = P.f(x) if f0 is None else f0
    J = P.J(x) if J0 is None else J0
    cost = cost_of(f, loss)
    jac_scale = isinstance(x_scale, str)
    show = printer(verbose)

    def derived(J: Any, f: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
        Jt, ft = (J, f) if loss is None else scale_for_robust_loss(J, f, loss(f))
        return Jt, ft, np.asarray(Jt.T @ ft).ravel()

    Jt, ft, g = derived(J, f)
    if jac_scale:
        cn = col_norms(Jt)
        scale_inv = np.where(cn > 0, cn, 1.0)
    else:
        scale_inv = 1.0 / np.asarray(x_scale, dtype=float)
    v, dv = cl_scaling(x, g, lb, ub)
    delta = float(np.linalg.norm(x * scale_inv / np.sqrt(v))) or 1.0
    sparse = sp.issparse(Jt)
    lam = 0.0
    status: int | None = None
    it = 0
    red = step_norm = None
    while True:
        v, dv = cl_scaling(x, g, lb, ub)
        g_norm = float(np.max(np.abs(g * v)))
        show(it, P.nfev, cost, red, step_norm, g_norm)
        if g_norm < gtol or cost == 0.0:
            status = 1
        if status is not None or P.nfev >= max_nfev:
            status = 0 if status is None else status
            break
        v[dv != 0] *= scale_inv[dv != 0]
        d = np.sqrt(v) / scale_inv
        diag_h = g * dv / scale_inv
        g_h = d * g
        if not sparse:
            Jh = Jt * d
            U, s, Vt = np.linalg.svd(np.vstack([Jh, np.diag(np.sqrt(diag_h))]),
                                     full_matrices=False)
            uf = U.T @ np.concatenate([ft, np.zeros(n)])
        else:
            Jh = Jt @ sp.diags(d)
            S = _lsmr_subspace(Jh, ft, g_h, diag_h, delta)
            JS = Jh @ S
            B = JS.T @ JS + (S.T * diag_h) @ S
            gS = S.T @ g_h
        theta = max(0.995, 1 - g_norm)
        act = -1.0
        while act <= 0 and P.nfev < max_nfev:
            if not sparse:
                p_h, lam = tr_step_svd(uf, s, Vt.T, delta, lam if lam > 0 else None)
            else:
                p_h = S @ _subspace_step(B, gS, delta)
            p = d * p_h
            step, step_h, pred = _select_step(x, Jh, diag_h, g_h, p, p_h, d, delta, lb, ub,
                                              theta)
            x_new = clip_strictly(x + step, lb, ub) if np.isfinite(lb).any() or \
                np.isfinite(ub).any() else x + step
            f_new = P.f(x_new)
            hn = float(np.linalg.norm(step_h))
            if not np.all(np.isfinite(f_new)):
                delta = 0.25 * hn
                continue
            cost_new = cost_of(f_new, loss)
            act = _reduction(f, f_new, cost, cost_new, loss)
            ratio = act / pred if pred > 0 else (1.0 if pred == act == 0 else -1.0)
            if ratio < 0.25:
                new_delta = 0.25 * hn
            elif ratio > 0.75 and hn > 0.95 * delta:
                new_delta = 2.0 * delta
            else:
                new_delta = delta
            step_norm = float(np.linalg.norm(step))
            ok_f = act < ftol * cost and ratio > 0.25
            ok_x = step_norm < xtol * (xtol + float(np.linalg.norm(x)))
            if ok_f or ok_x:
                status = 4 if ok_f and ok_x else (2 if ok_f else 3)
                break
            if new_delta > 0:
                lam *= delta / new_delta
            delta = new_delta
            if delta <= EPS * float(np.linalg.norm(x * scale_inv)):
                status = 3
                break
        if act > 0:
            x, f, cost = x_new, f_new, cost_new
            red = act
            it += 1
            J = P.J(x)
            if not np.all(np.isfinite(J.data if sparse else J)):
                status = -3
                break
            Jt, ft, g = derived(J, f)
            if jac_scale:
                scale_inv = np.maximum(scale_inv, col_norms(Jt))
        else:
            step_norm, red = 0.0, 0.0
        if status is not None:
            break
    return SolverOutput(x, f, J, cost, status if status is not None else 0,
                        MESSAGES[status if status is not None else 0], it)


def _lsmr_subspace(Jh: Any, f: np.ndarray, g_h: np.ndarray, diag_h: np.ndarray,
                   delta: float) -> np.ndarray:
    """An orthonormal basis of span{g, Gauss–Newton step by LSMR} (SciPy's ``lsmr`` mode,
    with its regularisation of the augmented system)."""
    m, n = Jh.shape
    Jg = Jh @ g_h
    gg = float(g_h @ g_h)
    a = 0.5 * quad_1d(Jg, g_h, diag_h)
    _, val = minimize_quad_1d(a, -gg, 0.0, delta / max(np.sqrt(gg), 1e-300))
    reg = -val / delta ** 2
    dg = np.sqrt(np.maximum(diag_h + reg, 0.0))

    def mv(u: np.ndarray) -> np.ndarray:
        return np.concatenate([Jh @ u, dg * u])

    def rmv(w: np.ndarray) -> np.ndarray:
        return Jh.T @ w[:m] + dg * w[m:]

    op = LinearOperator((m + n, n), matvec=mv, rmatvec=rmv, dtype=float)
    gn = lsmr(op, np.concatenate([-f, np.zeros(n)]), atol=1e-12, btol=1e-12,
              maxiter=10 * n + 20)[0]
    S, _ = np.linalg.qr(np.stack([g_h, gn], axis=1))
    return S
