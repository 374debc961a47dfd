"""Truthful statuses for a batch: is a problem the tests stopped really at a minimum?

The convergence tests can stop a problem where it is not at a minimum: steps below the
residuals' rounding far from the solution, a column scaling far from the solution's, or a valley
along which the cost keeps falling towards a minimum at infinity (nearly dependent parameters).
:func:`escape` checks every problem reported converged with one SVD of its scaled Jacobian and,
only where that is in doubt, a few batched evaluations along the Gauss–Newton step. The batch
solver lets the problems it finds go on once from the lower point; a second such stop is
reported with status −8 and :data:`NOT_MINIMUM`.

>>> import torch
>>> from jacobite.solvers.lsq.engine.problem import BatchResiduals
>>> P = BatchResiduals(lambda x: x - 1.0, torch.zeros(2, 1, dtype=torch.float64))
>>> x = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
>>> f = P.f(x)
>>> far, lower, evals = escape(P, x, f, 0.5 * (f * f).sum(1), P.J(x), f, None,
...                            torch.tensor([1, 3]))
>>> far.tolist(), lower.flatten().tolist()  # problem 1 is not at its minimum
([False, True], [1.0, 1.0])
"""

from __future__ import annotations

from typing import Any

import torch

from .problem import BatchResiduals
from .state import cost_of
from .steps.lm import col_norms

__all__ = ["NOT_MINIMUM", "escape"]

NOT_MINIMUM = ("stopped where the cost still falls along the Gauss–Newton direction, so x is not "
               "a minimum (the parameters are nearly dependent here, or the cost keeps falling "
               "along a valley towards a minimum at infinity); bound or reparametrise the "
               "parameters, start elsewhere, or raise max_nfev")


def escape(P: BatchResiduals, x: torch.Tensor, f: torch.Tensor, cost: torch.Tensor,
           Jt: torch.Tensor, ft: torch.Tensor, rho: Any, status: torch.Tensor,
           limit: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which converged problems are not at a minimum, a lower point for each, and the residual
    evaluations spent per problem.

    A converged status stands where the Gauss–Newton model has nothing left to remove: the
    residuals' component in the range of ``J̃`` (its columns scaled to unit norm, for a fair
    rank cut) is at most ``limit`` of their norm. Elsewhere the cost is tried along the
    Gauss–Newton step at lengths ``1, 1/4, …, 4⁻²⁰`` (one batched evaluation each, while a
    problem is still searching): a step above the rounding of ``x`` that lowers the cost by
    more than ``10⁻¹⁰`` of it (far above the rounding of the reduction, computed as
    ``½ (f − f₊)·(f + f₊)``) shows that the tests stopped the problem short of a minimum;
    else what is left is rounding and the status stands."""
    cn = col_norms(Jt)
    cn = torch.where(cn > 0, cn, 1.0)  # the range of J̃ on its scaled columns: a fair rank cut
    U, s, Vh = torch.linalg.svd(Jt / cn[:, None, :], full_matrices=False)
    keep = s > s[:, :1] * torch.finfo(s.dtype).eps * max(Jt.shape[1:])
    uf = (U.mT @ ft[..., None])[..., 0] * keep
    fn = torch.linalg.vector_norm(ft, dim=-1)
    suspect = (status > 0) & (torch.linalg.vector_norm(uf, dim=-1) > limit * fn) & (fn > 0)
    evals = torch.zeros_like(status)
    if not bool(suspect.any()):
        return suspect, x, evals
    p = -(Vh.mT @ (uf / torch.where(keep, s, 1.0))[..., None])[..., 0] / cn
    pn, xn = (torch.linalg.vector_norm(v, dim=-1) for v in (p, x))
    big = pn > torch.finfo(x.dtype).eps ** 0.5 * xn.clamp_min(1e-8)  # not a rounding-level step
    searching = suspect & big
    far = torch.zeros_like(suspect)
    x_new = x
    for a in (4.0 ** -i for i in range(21)):
        if not bool(searching.any()):
            break
        xt = torch.where(searching[:, None], x + a * p, x)
        f_try = P.f(xt)
        evals = evals + searching
        ok = torch.isfinite(f_try).all(-1)
        f_try = torch.where(ok[:, None], f_try, 0.0)
        c_try = cost_of(f_try, rho)
        red = cost - c_try if rho is not None else 0.5 * ((f - f_try) * (f + f_try)).sum(-1)
        lower = searching & ok & (red > 1e-10 * cost)
        x_new = torch.where(lower[:, None], xt, x_new)
        far, searching = far | lower, searching & ~lower
    return far, x_new, evals
