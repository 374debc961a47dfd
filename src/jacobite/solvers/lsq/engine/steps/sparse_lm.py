"""Levenberg–Marquardt steps for a sparse Jacobian: sparse direct solves, never densified.

For one problem whose Jacobian is a SciPy sparse matrix, the step solves the damped
Gauss–Newton system ``(J̃ᵀJ̃ + λ D²) p = −J̃ᵀf̃`` with SciPy's sparse LU (SuperLU). Where the
system is square and undamped (λ = 0) the step is the Newton step ``J̃ p = −f̃`` from the LU of
``J̃`` itself, which does not square the condition number. A (numerically) singular system
raises λ tenfold until it factors. The damping itself is the globalisation's
(:class:`~..damping.NielsenDamping`); column scaling and robust losses are as in
:mod:`.lm` (``D`` the running maximum of the column norms, Triggs' scaling).

>>> import numpy as np
>>> J = sp.csr_matrix(np.diag([2.0, 4.0]))
>>> p, lam = damped_step(J, np.array([2.0, 4.0]), np.array([4.0, 16.0]),
...                      sp.csr_matrix(J.T @ J), np.ones(2), 0.0)
>>> p.tolist(), lam
([-1.0, -1.0], 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ..protocols import Problem, Trial
from ..robust import RobustLoss
from ..state import State
from ..status import EPS64, Tolerances, gradient_test
from .gauss_newton import sparse_col_norms

__all__ = ["SparseLevenbergMarquardt", "damped_step"]



def _factor(A: Any) -> Any:
    """SuperLU of a sparse matrix, or ``None`` when it is (numerically) singular."""
    try:
        lu = spla.splu(sp.csc_matrix(A), permc_spec="MMD_AT_PLUS_A")
    except RuntimeError:  # "Factor is exactly singular"
        return None
    diag = np.abs(lu.U.diagonal())
    if diag.size and (not np.all(np.isfinite(diag)) or diag.min() <= EPS64 * diag.max()):
        return None
    return lu


def damped_step(J: Any, f: np.ndarray, g: np.ndarray, JtJ: Any, D: np.ndarray,
                lam: float) -> tuple[np.ndarray | None, float]:
    """The damped step for damping ``lam`` and the λ actually used (raised tenfold, up to 40
    times, while the system is singular); ``None`` when it never factors."""
    m, n = J.shape
    floor = 1e-8 * max(float(JtJ.diagonal().max(initial=0.0)), 1.0)
    if lam == 0.0 and m == n:
        lu = _factor(J)
        if lu is not None:
            p = -lu.solve(f)
            if np.all(np.isfinite(p)):
                return p, 0.0
        lam = floor
    for _ in range(40):
        lu = _factor(JtJ + sp.diags(lam * D * D)) if lam > 0 else _factor(JtJ)
        if lu is not None:
            p = -lu.solve(g)
            if np.all(np.isfinite(p)):
                return p, lam
        lam = max(10.0 * lam, floor)
    return None, lam


class SparseLevenbergMarquardt:
    """The sparse Levenberg–Marquardt step rule (one problem, see the module doc); pair it with
    :class:`~..damping.NielsenDamping`. ``jac_scale``: ``D`` from the column norms
    (``x_scale="jac"``), else the state's own ``D``."""

    def __init__(self, jac_scale: bool = True) -> None:
        self.jac_scale = jac_scale

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        J, f = state.J, state.f
        Jt, ft = (J, f) if state.loss is None else RobustLoss.scaled(J, f, state.loss(f))
        Jt = sp.csr_matrix(Jt)
        cn = sparse_col_norms(Jt)
        fn = ft[0].numpy()
        g = torch.from_numpy(np.asarray(Jt.T @ fn).ravel())[None]
        ok = gradient_test(ft, g, cn, tol.gtol, tol.eps)
        if self.jac_scale:
            c = torch.where(cn > 0, cn, 1.0)
            seen = state.extra.get("lm_scaled")
            state.D = c if seen is None else torch.maximum(state.D, c)
            state.extra["lm_scaled"] = fresh
        JtJ = sp.csr_matrix(Jt.T @ Jt)
        top = max(float(JtJ.diagonal().max(initial=0.0)), EPS64)
        state.extra["sparse_lm"] = (Jt, fn, g[0].numpy(), JtJ)
        state.extra["damping_top"] = torch.tensor([top], dtype=torch.float64)
        state.g = g
        return ok

    def propose(self, state: State, problem: Problem) -> Trial:
        del problem  # the step needs no evaluation
        Jt, fn, g, JtJ = state.extra["sparse_lm"]
        D = state.D[0].numpy()
        p, lam = damped_step(Jt, fn, g, JtJ, D, float(state.lam[0]))
        failed = p is None
        if p is None:
            p = np.zeros_like(D)
        Jp = np.asarray(Jt @ p).ravel()
        gp = float(g @ p)
        def one(v: float) -> torch.Tensor:
            return torch.tensor([v], dtype=torch.float64)

        return Trial(p=torch.from_numpy(p)[None], pnorm=one(float(np.linalg.norm(D * p))),
                     predicted=one(-(gp + 0.5 * float(Jp @ Jp))), slope=one(gp), lam=one(lam),
                     extra={"failed": torch.tensor([failed])})
