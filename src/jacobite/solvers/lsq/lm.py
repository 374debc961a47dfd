"""Levenberg–Marquardt with Moré's scaled trust region (MINPACK ``lmder`` semantics).

Each step minimises ``‖J p + f‖`` subject to ``‖D p‖ <= Δ``. The damping λ that puts the step on
the trust-region boundary is found by Moré's secular-equation iteration on one SVD of the scaled
Jacobian ``J D⁻¹`` (:func:`._trust.tr_step_svd`), which solves the augmented system
``[J; √λ D] p ≈ [−f; 0]`` for every trial λ without forming ``JᵀJ``. The radius update, the
acceptance threshold (ratio ≥ 10⁻⁴), the column scaling (``D = max(D, ‖J_j‖)`` when
``x_scale="jac"``) and the ftol / xtol / gtol tests are MINPACK's; the tests at machine
precision (which MINPACK reports as "tolerance too small") count as convergence here. The first
radius is ``‖D x₀‖`` (MINPACK's ``factor = 1``, SciPy's choice; ``factor = 100`` lets BoxBOD
from start 1 jump onto a plateau where the Jacobian vanishes).

Geodesic acceleration (Transtrum & Sethna 2012; on by default): after a damped step ``v``
(λ > 0) the acceleration ``a`` solves the same damped system with ``f`` replaced by the second
directional derivative ``r''(x)[v, v]``, estimated as Transtrum does by
``(2/h)((r(x + h v) − r(x))/h − J v)``, ``h = 0.1`` (one residual evaluation, counted in
``nfev``; nested forward-mode AD was exact but several times slower per step);
``p = v + ½a``, scaled back onto the trust region if it leaves it, is used when
``2‖D a‖ <= 0.75 ‖D v‖``. It follows curved valleys (Bennett5) in far fewer steps.

Rounding-level steps: near a solution with non-zero residuals the cost difference of two
iterates is rounding noise while the Gauss–Newton steps still improve the parameters (linearly).
A Gauss–Newton step (λ = 0) whose predicted relative reduction is below ``1e-12`` is therefore
taken if the cost did not rise by more than ``1e-13`` relative, and the ftol tests do not stop
the iteration while such predicted reductions keep halving; it ends when the step is below
``xtol`` relative to ``‖D x‖`` or stagnates. The actual reduction is computed as
``½ (f − f₊)·(f + f₊)``, accurate where ``cost − cost₊`` would cancel.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> P = Residuals(lambda x: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]]),
...               torch.tensor([-1.2, 1.0], dtype=torch.float64), "auto")
>>> out = levenberg_marquardt(P, np.array([-1.2, 1.0]), ftol=1e-15, xtol=1e-15, gtol=1e-15)
>>> np.round(out.x, 12).tolist(), out.status > 0
([1.0, 1.0], True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._problem import Residuals
from ._trust import EPS, tr_step_svd
from .losses import Loss, cost_of, scale_for_robust_loss

__all__ = ["SolverOutput", "levenberg_marquardt"]

# float64 values; scaled by eps / 2.2e-16 for other dtypes
POLISH = 1e-12  # relative predicted reduction below which the cost's rounding noise dominates
NOISE = 1e-13  # relative cost increase tolerated for such a step (rounding of ½‖f‖²)


@dataclass
class SolverOutput:
    """What a solver hands back to :func:`jacobite.least_squares` (float64 NumPy)."""

    x: np.ndarray
    f: np.ndarray
    J: Any
    cost: float
    status: int
    message: str
    nit: int


MESSAGES = {
    -8: "stalled far from a minimum: the trust region shrank until its steps no longer changed "
        "the residuals (below their rounding), while the Gauss–Newton model still removes "
        "most of the cost; pass x_scale near the size of the solution (e.g. x_scale=1e20), "
        "start nearer to it, or rescale the problem",
    -7: "the residuals and the Jacobian differ in size by more than float64's range holds "
        "squared (about 2^960), so the convergence tests cannot be trusted; rescale the problem: "
        "solve for the unknowns in units near their expected size (x = s·y) and divide the "
        "residuals by their typical size",
    -2: "the line search found no decrease along the Gauss–Newton direction; use method='lm'",
    -6: "stopped on a plateau: the Jacobian is zero and the cost does not change nearby, so the "
        "residuals do not depend on x here (a relu, clamp or step that is off); start elsewhere "
        "or smooth the residual",
    -5: "stopped at a saddle point or maximum of the cost: the gradient vanishes but the cost "
        "falls along a direction the Gauss–Newton model cannot see; start elsewhere or raise "
        "max_nfev",
    -4: "stopped at a kink: the residuals are not differentiable here, AD's gradient (a "
        "subgradient) vanishes but the cost falls nearby, so x is not a minimum; start "
        "elsewhere, raise max_nfev or smooth the residual (e.g. sqrt(p**2 + eps**2) for |p|)",
    -3: "the Jacobian is not finite at the current point; the last finite point is returned",
    0: "the maximum number of function evaluations is exceeded; raise max_nfev",
    1: "gtol termination condition is satisfied",
    2: "ftol termination condition is satisfied",
    3: "xtol termination condition is satisfied",
    4: "both ftol and xtol termination conditions are satisfied",
}


def col_norms(J: Any) -> np.ndarray:
    """Euclidean norms of the columns of a dense or SciPy sparse matrix, each column divided by
    its largest entry first so that no square overflows or underflows (entries of ``1e±200``).

    >>> col_norms(np.array([[3e-200, 1.0], [4e-200, 0.0]])).tolist()
    [5e-200, 1.0]
    """
    if isinstance(J, np.ndarray):
        big = np.max(np.abs(J), axis=0, initial=0.0)
        if np.all(big < 2.0 ** 500) and np.all((big == 0) | (big > 2.0 ** -500)):
            return np.linalg.norm(J, axis=0)  # in range: the plain norms
        safe = np.where(big > 0, big, 1.0)
        return big * np.linalg.norm(J / safe, axis=0)
    big = np.asarray(abs(J).max(axis=0).todense()).ravel()
    if np.all(big < 2.0 ** 500) and np.all((big == 0) | (big > 2.0 ** -500)):
        return np.sqrt(np.asarray(J.multiply(J).sum(axis=0)).ravel())
    safe = np.where(big > 0, big, 1.0)
    Js = J.multiply(1.0 / safe[None, :]).tocsr()
    return big * np.sqrt(np.asarray(Js.multiply(Js).sum(axis=0)).ravel())


def printer(verbose: int) -> Callable[..., None]:
    """A progress printer: one line per iteration at ``verbose=2``, nothing otherwise."""
    if verbose < 2:
        return lambda *a: None
    print(f"{'iter':>6} {'nfev':>6} {'cost':>14} {'reduction':>12} {'step':>12} {'optim':>12}")

    def line(it: int, nfev: int, cost: float, red: float | None, step: float | None,
             opt: float) -> None:
        r = f"{red:12.4e}" if red is not None else " " * 12
        s = f"{step:12.4e}" if step is not None else " " * 12
        print(f"{it:6d} {nfev:6d} {cost:14.6e} {r} {s} {opt:12.4e}")

    return line


def levenberg_marquardt(P: Residuals, x0: np.ndarray, *, ftol: float, xtol: float, gtol: float,
                        max_nfev: int | None = None, x_scale: Any = "jac",
                        loss: Loss | None = None, geodesic: bool = True,
                        factor: float = 1.0, verbose: int = 0,
                        f0: np.ndarray | None = None, J0: Any = None,
                        eps: float = EPS) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` from ``x0`` by Levenberg–Marquardt (dense Jacobians).

    ``eps`` is the machine epsilon of the dtype the residuals are computed in: the
    machine-precision tests and the rounding-level thresholds scale with it."""
    polish_at, noise = POLISH * eps / EPS, NOISE * eps / EPS
    n = x0.size
    max_nfev = 100 * n if max_nfev is None else max_nfev
    x = x0.copy()
    f = P.f(x) if f0 is None else f0
    J = P.J(x) if J0 is None else J0
    cost = cost_of(f, loss)
    jac_scale = isinstance(x_scale, str)
    D = np.ones(n) if jac_scale else 1.0 / np.asarray(x_scale, dtype=float)
    show = printer(verbose)
    status: int | None = None
    delta = lam = 0.0
    it, first = 0, True
    red = step_norm = None
    last_pre = np.inf
    if not np.all(np.isfinite(J)):
        return SolverOutput(x, f, J, cost, -3, MESSAGES[-3], 0)
    while True:
        if loss is None:
            Jt, ft = J, f
        else:
            Jt, ft = scale_for_robust_loss(J, f, loss(f))
        cn = col_norms(Jt)
        g = Jt.T @ ft
        fnorm = float(np.linalg.norm(ft))
        # MINPACK's gtol: the largest cosine between f and a column of J
        with np.errstate(divide="ignore", invalid="ignore"):
            cos = np.where(cn > 0, np.abs(g) / (cn * fnorm), 0.0) if fnorm > 0 else cn * 0
        gnorm = float(np.max(cos)) if n else 0.0
        show(it, P.nfev, cost, red, step_norm, float(np.max(np.abs(g))))
        if gnorm <= max(gtol, eps) or cost == 0.0:
            status = 1
            break
        if P.nfev >= max_nfev:
            status = 0
            break
        if jac_scale:
            D = np.maximum(D, np.where(cn > 0, cn, 1.0)) if not first else np.where(cn > 0, cn,
                                                                                       1.0)
        if first:
            xnorm = float(np.linalg.norm(D * x))
            delta = factor * xnorm if xnorm > 0 else factor
        U, s, Vt = np.linalg.svd(Jt / D, full_matrices=False)
        V = Vt.T
        uf = U.T @ ft
        while True:  # inner loop: shrink the region until a step is accepted
            q, lam = tr_step_svd(uf, s, V, delta, lam if lam > 0 else None)
            p = q / D
            pnorm = float(np.linalg.norm(q))
            if first:
                delta = min(delta, pnorm)
                first = False
            Jq = Jt @ p
            # the model reduction, in MINPACK's stable form (valid for the damped step)
            pre = 0.5 * float(Jq @ Jq) + lam * pnorm * pnorm
            dirder = -(float(Jq @ Jq) + lam * pnorm * pnorm)
            if geodesic and lam > 0 and loss is None:
                p = _accelerate(P, x, p, U, s, V, D, lam, f, Jq)
            x_new = x + p
            f_new = P.f(x_new)
            if np.all(np.isfinite(f_new)):
                cost_new = cost_of(f_new, loss)
                act = _reduction(f, f_new, cost, cost_new, loss) / cost \
                    if cost_new < 100 * cost else -1.0
            else:
                cost_new, act = np.inf, -1.0
            prered = pre / cost
            dir_rel = dirder / (2 * cost)
            ratio = act / prered if prered != 0 else 0.0
            accepted = ratio >= 1e-4 and np.isfinite(cost_new) and cost_new <= cost
            # Below rounding level the cost cannot judge a step: a Gauss–Newton step (λ = 0,
            # inside the region) whose predicted reduction is that small is taken as long as the
            # cost did not rise beyond rounding, and the iteration goes on while the predicted
            # reductions keep falling (linear convergence on non-zero-residual problems).
            polish = (not accepted and lam == 0 and prered <= polish_at and act >= -noise
                      and np.isfinite(cost_new))
            if polish:
                delta = max(delta, pnorm / 0.5)
            elif ratio <= 0.25:
                if act >= 0 or not np.isfinite(cost_new):
                    temp = 0.5
                else:
                    temp = 0.5 * dir_rel / (dir_rel + 0.5 * act)
                if cost_new >= 100 * cost or not temp >= 0.1:
                    temp = 0.1
                delta = temp * min(delta, pnorm / 0.1)
                lam /= temp
            elif lam == 0 or ratio >= 0.75:
                delta = pnorm / 0.5
                lam *= 0.5
            falling = prered < 0.5 * last_pre
            if accepted or polish:
                red, step_norm = cost - cost_new, pnorm
                x, f, cost = x_new, f_new, cost_new
                it += 1
                if lam == 0:
                    last_pre = prered
            xnorm = float(np.linalg.norm(D * x))
            progressing = lam == 0 and (accepted or polish) and falling
            ok_f = abs(act) <= ftol and prered <= ftol and 0.5 * ratio <= 1 and not progressing
            ok_x = delta <= xtol * xnorm or ((accepted or polish) and lam == 0
                                             and pnorm <= xtol * xnorm)
            if ok_f or ok_x:
                status = 4 if ok_f and ok_x else (2 if ok_f else 3)
            elif P.nfev >= max_nfev:
                status = 0
            elif abs(act) <= eps and prered <= eps and 0.5 * ratio <= 1 and not progressing:
                status = 2
            elif delta <= eps * xnorm:
                status = 3
            if accepted or polish or status is not None:
                break
        if status is not None and not (accepted or polish):
            break
        J = P.J(x)
        if not np.all(np.isfinite(J)):
            status = -3
            break
        if status is not None:
            break
    return SolverOutput(x, f, J, cost, status, MESSAGES[status], it)


def _reduction(f: np.ndarray, f_new: np.ndarray, cost: float, cost_new: float,
               loss: Loss | None) -> float:
    """``cost − cost_new``; for the linear loss as ``½ (f − f_new)·(f + f_new)``, which keeps
    its relative accuracy when the two costs agree to many digits (near the solution, where the
    plain difference is rounding noise and would reject good steps)."""
    if loss is not None:
        return cost - cost_new
    return 0.5 * float((f - f_new) @ (f + f_new))


def _accelerate(P: Residuals, x: np.ndarray, v: np.ndarray, U: np.ndarray, s: np.ndarray,
                V: np.ndarray, D: np.ndarray, lam: float, f: np.ndarray, Jv: np.ndarray,
                alpha: float = 0.75) -> np.ndarray:
    """``v + ½a`` with the geodesic acceleration ``a`` (scaled back onto the trust region when
    it leaves it), or ``v`` when ``2‖D a‖ > α ‖D v‖``."""
    rvv = P.second_directional(x, v, f, Jv)
    if not np.all(np.isfinite(rvv)):
        return v
    ua = U.T @ rvv
    a = -(V @ (s * ua / (s * s + lam))) / D
    vn = float(np.linalg.norm(D * v))
    if 2 * np.linalg.norm(D * a) <= alpha * vn:
        w = v + 0.5 * a
        wn = float(np.linalg.norm(D * w))
        return w if wn <= vn else w * (vn / wn)  # stay inside the trust region
    return v
