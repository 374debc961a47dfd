"""Levenberg–Marquardt for sparse Jacobians with sparse direct solves (never densified).

Each step solves the damped Gauss–Newton system ``(JᵀJ + λ D²) p = −Jᵀf`` with SciPy's sparse LU
(SuperLU) of the sparse ``JᵀJ + λ D²``. When the system is square and undamped (λ = 0) the step
is the Newton step ``J p = −f`` from the LU of ``J`` itself, which does not square the condition
number. The damping follows Nielsen's update (λ shrinks by ``max(1/3, 1 − (2ρ − 1)³)`` after a
good step and grows by ``ν = 2, 4, 8, …`` after rejections); it starts at λ = 0, so problems that
Newton's method solves (nonlinear PDE residuals from a reasonable start) converge quadratically,
and it drops back to 0 once it is below ``1e-12 · max diag(JᵀJ)``.

Stopping rules follow :mod:`.lm`: gtol on the largest cosine between ``f`` and a column of J,
ftol on the actual and predicted relative reductions, xtol on the step relative to ``‖D x‖``,
and ``max_nfev``; a Newton step whose
predicted relative reduction is below rounding (``1e-12``) is taken when the cost did not rise
by more than rounding, as in :mod:`.lm`.

>>> import numpy as np, scipy.sparse as sp, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> fun = lambda x: x ** 3 + x - 2.0
>>> P = Residuals(fun, torch.zeros(5, dtype=torch.float64),
...               lambda x: sp.diags((3 * x ** 2 + 1).numpy()))
>>> out = sparse_levenberg_marquardt(P, np.zeros(5), ftol=1e-15, xtol=1e-15, gtol=1e-15)
>>> np.allclose(out.x, 1.0), out.status > 0
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._problem import Residuals
from ._trust import EPS
from .lm import MESSAGES, POLISH, SolverOutput, col_norms, printer
from .losses import Loss, cost_of, scale_for_robust_loss

__all__ = ["sparse_levenberg_marquardt"]

NOISE = 1e-13  # relative cost rise tolerated for a rounding-level Newton step


def _factor(A: sp.spmatrix) -> Any:
    """SuperLU of a sparse matrix, or ``None`` when it is (numerically) singular."""
    try:
        lu = spla.splu(sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A")
    except RuntimeError:  # "Factor is exactly singular"
        return None
    diag = np.abs(lu.U.diagonal())
    if diag.size and (not np.all(np.isfinite(diag)) or diag.min() <= EPS * diag.max()):
        return None
    return lu


def _step(J: sp.csr_matrix, f: np.ndarray, g: np.ndarray, JtJ: sp.csr_matrix, D: np.ndarray,
          lam: float) -> tuple[np.ndarray | None, float]:
    """The damped step and the λ actually used (λ is raised when the system is singular)."""
    m, n = J.shape
    if lam == 0.0 and m == n:
        lu = _factor(J)
        if lu is not None:
            p = -lu.solve(f)
            if np.all(np.isfinite(p)):
                return p, 0.0
        lam = 1e-8 * max(float(JtJ.diagonal().max(initial=0.0)), 1.0)
    for _ in range(40):
        lu = _factor(JtJ + sp.diags(lam * D * D)) if lam > 0 else _factor(JtJ)
        if lu is not None:
            p = -lu.solve(g)
            if np.all(np.isfinite(p)):
                return p, lam
        lam = max(10.0 * lam, 1e-8 * max(float(JtJ.diagonal().max(initial=0.0)), 1.0))
    return None, lam


def sparse_levenberg_marquardt(P: Residuals, x0: np.ndarray, *, ftol: float, xtol: float,
                               gtol: float, max_nfev: int | None = None, x_scale: Any = "jac",
                               loss: Loss | None = None, verbose: int = 0,
                               f0: np.ndarray | None = None, J0: Any = None) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` from ``x0`` with sparse Jacobians (no bounds)."""
    n = x0.size
    max_nfev = 100 * n if max_nfev is None else max_nfev
    x = x0.copy()
    f = P.f(x) if f0 is None else f0
    J = sp.csr_matrix(P.J(x) if J0 is None else J0)
    cost = cost_of(f, loss)
    jac_scale = isinstance(x_scale, str)
    D = np.ones(n) if jac_scale else 1.0 / np.asarray(x_scale, dtype=float)
    show = printer(verbose)
    lam, nu, it = 0.0, 2.0, 0
    status: int | None = None
    red = step_norm = None
    if not np.all(np.isfinite(J.data)):
        return SolverOutput(x, f, J, cost, -3, MESSAGES[-3], 0)
    while status is None:
        Jt, ft = (J, f) if loss is None else scale_for_robust_loss(J, f, loss(f))
        Jt = sp.csr_matrix(Jt)
        cn = col_norms(Jt)
        g = np.asarray(Jt.T @ ft).ravel()
        fnorm = float(np.linalg.norm(ft))
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(cn > 0, np.abs(g) / (cn * fnorm), 0.0) if fnorm > 0 else cn * 0
        show(it, P.nfev, cost, red, step_norm, float(np.max(np.abs(g), initial=0.0)))
        if float(np.max(cos, initial=0.0)) <= max(gtol, EPS) or cost == 0.0:
            status = 1
            break
        if P.nfev >= max_nfev:
            status = 0
            break
        if jac_scale:
            D = np.maximum(D, np.where(cn > 0, cn, 1.0)) if it else np.where(cn > 0, cn, 1.0)
        JtJ = sp.csr_matrix(Jt.T @ Jt)
        top = max(float(JtJ.diagonal().max(initial=0.0)), EPS)
        while True:  # until a step is accepted or a stopping rule fires
            p, lam = _step(Jt, ft, g, JtJ, D, lam)
            if p is None:
                status = 3
                break
            Jp = np.asarray(Jt @ p).ravel()
            pred = -(float(g @ p) + 0.5 * float(Jp @ Jp))  # model reduction (>= 0)
            x_new = x + p
            f_new = P.f(x_new)
            finite = bool(np.all(np.isfinite(f_new)))
            cost_new = cost_of(f_new, loss) if finite else np.inf
            if finite:
                act = 0.5 * float((f - f_new) @ (f + f_new)) if loss is None \
                    else cost - cost_new
            else:
                act = -np.inf
            ratio = act / pred if pred > 0 else -1.0
            accepted = finite and ratio > 1e-4 and cost_new <= cost
            polish = (not accepted and finite and lam == 0.0 and pred <= POLISH * cost
                      and act >= -NOISE * cost)
            pnorm = float(np.linalg.norm(D * p))
            xnorm = float(np.linalg.norm(D * x))
            if accepted or polish:
                red, step_norm = cost - cost_new, pnorm
                x, f, cost = x_new, f_new, cost_new
                it += 1
                if accepted and lam > 0:
                    lam *= max(1 / 3, 1 - (2 * ratio - 1) ** 3)
                    nu = 2.0
                    if lam < 1e-12 * top:
                        lam = 0.0
            else:
                lam = lam * nu if lam > 0 else 1e-3 * top
                nu *= 2.0
            small_x = pnorm <= xtol * (xtol + xnorm)
            small_f = (accepted or polish) and abs(act) <= ftol * cost and pred <= ftol * cost
            if small_x or small_f:
                status = 4 if small_x and small_f else (3 if small_x else 2)
            elif pred <= EPS * cost and (accepted or polish):
                status = 2  # nothing left to gain in double precision
            elif P.nfev >= max_nfev:
                status = 0
            elif lam > 1e16 * top:
                status = 3  # the region has shrunk to nothing
            if accepted or polish or status is not None:
                break
        if status is not None and not (accepted or polish):
            break
        J = sp.csr_matrix(P.J(x))  # at the accepted point (also when stopping there)
        if not np.all(np.isfinite(J.data)):
            status = -3
    return SolverOutput(x, f, J, cost, status, MESSAGES[status], it)
