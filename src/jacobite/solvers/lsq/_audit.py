"""The check a least-squares stop passes before it is called a success.

A method stops with a SciPy status (1 gtol, 2 ftol, 3 xtol, 4 ftol and xtol) when its tests
pass. Where the cost is not zero and the solver either never moved or stopped where the
Jacobian is rank deficient, the stop may be a kink, a saddle or maximum, or a plateau rather than
a minimum (:mod:`jacobite.solvers._certify`). :func:`audited` probes the cost there along the
directions the Gauss–Newton model cannot see and

* keeps the status when no probe finds a lower cost (a minimum as far as local probes tell);
* goes on from the lowest probe point when one is lower (at most ``RESTARTS`` times), the final
  message saying where it had stopped;
* reports −4 (kink) or −5 (saddle or maximum) when it cannot go on (``max_nfev`` spent, or
  ``RESTARTS`` reached) and −6 (plateau) when the Jacobian is zero and the cost flat nearby.

An ftol or xtol stop (unbounded) where the Gauss–Newton step is far above the rounding of ``x``
and its model removes more than half the cost is a stall (the trust region shrank below the
rounding of the residuals, not onto a minimum) when the cost at the Gauss–Newton point is below
half: the method goes on once from there, and reports −8 if it stalls again.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq import least_squares
>>> res = least_squares(lambda p: p.abs() - 1, torch.zeros(1))
>>> res.x.tolist(), res.success, "kink" in res.message
([1.0], True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._certify import Verdict, blind_directions, probe, zero_columns
from .._scipy import issparse
from ._problem import Residuals
from ._trust import clip_strictly
from .engine.single import SolverOutput
from .engine.status import MESSAGES
from .losses import Loss, cost_of, scale_for_robust_loss

__all__ = ["RESTARTS", "audited"]

RESTARTS = 3
STALL_ITER = 100  # LSQR steps the stall check may take
DENSE_STALL_SIZE = 4_000_000  # entries of a dense J above which the stall check uses LSQR too
_STATUS = {"kink": -4, "saddle": -5, "plateau": -6}
_WHAT = {"kink": "a kink (the residuals are not differentiable there)",
         "saddle": "a saddle point or maximum of the cost"}


def _directions(J: Any, first: bool) -> np.ndarray:
    if issparse(J):  # no SVD of a sparse Jacobian: its zero columns only
        from .engine.steps.gauss_newton import sparse_col_norms

        n = J.shape[1]
        zero = np.flatnonzero(sparse_col_norms(J)[0].numpy() == 0)
        return np.array(zero_columns(zero, n)).reshape(-1, n)
    return blind_directions(np.asarray(J), first=first)


def _verdict(P: Residuals, out: SolverOutput, loss: Loss | None,
             clip: Callable[[np.ndarray], np.ndarray] | None, first: bool,
             eps: float) -> Verdict:
    J, f = out.J, out.f
    dirs = _directions(J, first)
    if not dirs.size:
        return Verdict("minimum")
    Jt, ft = (J, f) if loss is None else scale_for_robust_loss(J, f, loss(f))
    g = np.asarray(Jt.T @ ft).ravel()
    zero = (J.count_nonzero() == 0) if issparse(J) else not np.any(J)
    return probe(lambda y: cost_of(P.f(y), loss), out.x, out.cost, g, dirs, jac_zero=zero,
                 clip=clip, eps=eps)


def audited(P: Residuals, out: SolverOutput, run: Callable[[np.ndarray], SolverOutput],
            loss: Loss | None, lb: np.ndarray, ub: np.ndarray, max_nfev: int | None,
            eps: float) -> SolverOutput:
    """``out`` if its stop is a minimum as far as probes tell; else the run continued from a
    lower probe point (``run(x)`` restarts the method), or a failure status that names the
    stop. ``max_nfev``: the evaluation budget the method had (``None``: unlimited here);
    ``eps``: the machine epsilon of the dtype the residuals are computed in."""
    bounded = bool(np.isfinite(lb).any() or np.isfinite(ub).any())
    clip = (lambda y: clip_strictly(y, lb, ub)) if bounded else None
    nit, notes = 0, []
    for attempt in range(RESTARTS + 1):
        if out.status <= 0 or not out.cost > 0:
            break
        v = _verdict(P, out, loss, clip, first=out.nit == 0, eps=eps)
        if v.kind == "minimum":
            break
        status = _STATUS[v.kind]
        spent = max_nfev is not None and P.nfev >= max_nfev
        if v.kind == "plateau" or v.x is None or attempt == RESTARTS or spent:
            out = SolverOutput(out.x, out.f, out.J, out.cost, status, MESSAGES[status], out.nit)
            break
        where = np.array2string(out.x[:6], precision=6)
        notes.append(f"it had stopped at {_WHAT[v.kind]} at x = {where}, where the gradient "
                     "vanishes but a nearby point has a lower cost, and went on from there")
        nit += out.nit
        out = run(v.x)
    if notes:
        msg = out.message + "; " + "; ".join(notes)
        out = SolverOutput(out.x, out.f, out.J, out.cost, out.status, msg, out.nit + nit)
    for attempt in range(2):  # a stall goes on once from the Gauss–Newton point, then fails
        p = _stall_step(out, loss) if not bounded else None
        if p is None or not cost_of(P.f(out.x + p), loss) < 0.5 * out.cost:
            break  # the model was wrong there: a stop on the cost, as far as this tells
        if attempt:
            out = SolverOutput(out.x, out.f, out.J, out.cost, -8, MESSAGES[-8], out.nit)
            break
        out = run(out.x + p)
    return out


def _stall_step(out: SolverOutput, loss: Loss | None) -> np.ndarray | None:
    """The Gauss–Newton step ``p`` (least squares of ``J p = −f``) when an ftol / xtol stop
    looks like a stall: ``p`` is far above the rounding of ``x`` and the linear model says it
    removes more than half the cost. Then the trust region had only shrunk below the rounding
    of the residuals (a solution of size ``1e20`` sought from 0), not onto a minimum."""
    if out.status not in (2, 3, 4) or not out.cost > 0:
        return None
    Jt, ft = (out.J, out.f) if loss is None else scale_for_robust_loss(out.J, out.f,
                                                                        loss(out.f))
    ff = float(ft @ ft)
    if not (0 < ff < np.inf):
        return None
    m, n = Jt.shape
    if issparse(Jt) or m * n > DENSE_STALL_SIZE:
        from scipy.sparse.linalg import lsqr

        # a bounded number of LSQR steps: its residual falls monotonically, so a stall (the
        # model removing most of the cost) shows within them, while a converged solve of a
        # large ill-conditioned system (a 2-D Laplacian) is not made to pay a full solve
        p = lsqr(Jt, -ft, atol=1e-10, btol=1e-10, iter_lim=min(4 * n + 20, STALL_ITER))[0]
    else:
        p = np.linalg.lstsq(np.asarray(Jt), -ft, rcond=None)[0]
    Jp = np.asarray(Jt @ p).ravel()
    big = float(np.max(np.abs(p))) > 1e-8 * float(np.max(np.abs(out.x)))  # ∞-norms: no overflow
    return p if big and float(Jp @ Jp) > 0.5 * ff else None
