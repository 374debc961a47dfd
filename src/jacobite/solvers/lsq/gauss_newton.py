"""Gauss–Newton with a backtracking (Armijo) line search.

The direction is the minimum-norm least-squares solution of ``J p ≈ −f`` (LAPACK ``gelsd``:
SVD-based, so ``JᵀJ`` is never formed and a rank-deficient ``J`` still gives a descent
direction), or LSMR for a sparse ``J``. The step length starts at 1 and is halved until
``cost(x + t p) <= cost(x) + c₁ t ∇cost·p``; a step whose residuals are NaN/Inf counts as failing
the test. With a robust loss the model is iteratively reweighted least squares
(``√ρ' J``, ``√ρ' f``), which always gives a descent direction. Fast (quadratic) near
zero-residual solutions, but with no trust region it can stall far from one: prefer ``"lm"``
unless the problem is known to be mild.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> P = Residuals(lambda x: torch.stack([x[0] ** 2 - 4, x[1] - 1]),
...               torch.ones(2, dtype=torch.float64), "auto")
>>> out = gauss_newton(P, np.ones(2), ftol=1e-15, xtol=1e-15, gtol=1e-15)
>>> np.round(out.x, 12).tolist(), out.status > 0
([2.0, 1.0], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import lsmr

from ._problem import Residuals
from ._trust import EPS
from .lm import MESSAGES, SolverOutput, col_norms, printer
from .losses import Loss, cost_of

__all__ = ["gauss_newton"]


def gauss_newton(P: Residuals, x0: np.ndarray, *, ftol: float, xtol: float, gtol: float,
                 max_nfev: int | None = None, x_scale: Any = "jac", loss: Loss | None = None,
                 c1: float = 1e-4, verbose: int = 0, f0: np.ndarray | None = None,
                 J0: Any = None) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` by Gauss–Newton steps with Armijo backtracking."""
    del x_scale  # Gauss–Newton directions are invariant to column scaling
    n = x0.size
    max_nfev = 100 * n if max_nfev is None else max_nfev
    x = x0.copy()
    f = P.f(x) if f0 is None else f0
    J = P.J(x) if J0 is None else J0
    cost = cost_of(f, loss)
    show = printer(verbose)
    status: int | None = None
    it = 0
    red = step_norm = None
    while True:
        Jt, ft = (J, f) if loss is None else _irls(J, f, loss(f))
        g = np.asarray(Jt.T @ ft).ravel()
        cn = col_norms(Jt)
        fnorm = float(np.linalg.norm(ft))
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(cn > 0, np.abs(g) / (cn * fnorm), 0.0) if fnorm > 0 else cn * 0
        show(it, P.nfev, cost, red, step_norm, float(np.max(np.abs(g))))
        if float(np.max(cos)) <= max(gtol, EPS) or cost == 0.0:
            status = 1
            break
        if P.nfev >= max_nfev:
            status = 0
            break
        if sp.issparse(Jt):
            p = lsmr(Jt, -ft, atol=1e-12, btol=1e-12, maxiter=10 * min(Jt.shape) + 20)[0]
        else:
            p = np.linalg.lstsq(Jt, -ft, rcond=None)[0]
        slope = float(g @ p)
        if not slope < 0:
            p, slope = -g, -float(g @ g)
        t = 1.0
        while True:
            x_new = x + t * p
            f_new = P.f(x_new)
            cost_new = cost_of(f_new, loss) if np.all(np.isfinite(f_new)) else np.inf
            if cost_new <= cost + c1 * t * slope or P.nfev >= max_nfev or t < 1e-10:
                break
            t *= 0.5
        if not cost_new < cost:
            status = 0 if P.nfev >= max_nfev else (2 if cost_new == cost else -2)
            break
        act = cost - cost_new
        step_norm = t * float(np.linalg.norm(p))
        red = act
        x, f, prev, cost = x_new, f_new, cost, cost_new
        it += 1
        J = P.J(x)
        if not np.all(np.isfinite(J.data if sp.issparse(J) else J)):
            status = -3
            break
        ok_f = act <= ftol * prev
        ok_x = step_norm <= xtol * (xtol + float(np.linalg.norm(x)))
        if ok_f or ok_x:
            status = 4 if ok_f and ok_x else (2 if ok_f else 3)
            break
    return SolverOutput(x, f, J, cost, status, MESSAGES[status], it)


def _irls(J: Any, f: np.ndarray, rho: np.ndarray) -> tuple[Any, np.ndarray]:
    """Iteratively reweighted least squares: ``√ρ' J`` and ``√ρ' f``. The gradient is exact and
    the model ``Jᵀ diag(ρ') J`` positive semi-definite, so the step is always downhill (Triggs'
    second-order correction can make it huge where ρ'' ≈ −ρ'/(2f²), as for Huber's tails)."""
    w = np.sqrt(rho[1])
    return (w[:, None] * J if isinstance(J, np.ndarray) else sp.diags(w) @ J), w * f
