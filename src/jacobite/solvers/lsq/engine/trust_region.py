"""The trust-region globalisation: MINPACK's acceptance and radius update, per problem.

A trial step is accepted where the ratio of actual to predicted reduction is at least
``10⁻⁴`` and the cost did not rise. The radius shrinks by ``temp ∈ [0.1, 0.5]`` (MINPACK's
quadratic interpolation along the step) where the ratio is at most ¼, and becomes twice the
step where the ratio is at least ¾ or the step was undamped; the damping of the next trial
scales inversely. The first radius is ``factor · ‖D x₀‖`` (``factor`` where that is 0), cut
to the length of the first step.

The actual reduction of the linear loss is ``½ (f − f₊)·(f + f₊)``, accurate where the two costs
agree to many digits. Below rounding level the cost cannot judge a step: an undamped step whose
relative predicted reduction is below ``1e-12 · eps/eps₆₄`` is taken ("polished") when the cost
did not rise by more than ``1e-13 · eps/eps₆₄`` relative, and the cost test does not stop while
such predictions keep halving (linear convergence near a non-zero-residual solution).

Convergence (per problem, MINPACK's tests, see :mod:`.status`): the cost test needs the
predicted and actual relative reductions at most ``ftol`` (ratio ≤ 2); the step test the radius
or an accepted undamped step at most ``xtol · ‖D x‖``; at machine precision (``eps``) both count
as convergence.

>>> tr = TrustRegion(factor=100.0)
>>> tr.factor, tr.polish
(100.0, True)
"""

from __future__ import annotations

import torch

from .protocols import Problem, Trial
from .state import State, cost_of
from .status import FTOL, MAX_NFEV, RUNNING, XTOL, Tolerances, converged_on

__all__ = ["NOISE", "POLISH", "TrustRegion", "reduction"]

EPS64 = float(torch.finfo(torch.float64).eps)
POLISH = 1e-12  #: relative predicted reduction below which the cost's rounding dominates (f64)
NOISE = 1e-13  #: relative cost increase tolerated for such a step (rounding of ½‖f‖², f64)


def reduction(f: torch.Tensor, f_new: torch.Tensor, cost: torch.Tensor,
              cost_new: torch.Tensor, robust: bool) -> torch.Tensor:
    """``cost − cost_new`` per problem; for the linear loss as ``½ (f − f₊)·(f + f₊)``, which
    keeps its relative accuracy where the costs agree to many digits.

    >>> f = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    >>> g = torch.tensor([[1.0, 1.0 - 2 ** -40]], dtype=torch.float64)
    >>> reduction(f, g, cost_of(f, None), cost_of(g, None), False).item() == 2 ** -40 - 2 ** -81
    True
    """
    if robust:
        return cost - cost_new
    return 0.5 * ((f - f_new) * (f + f_new)).sum(-1)


class TrustRegion:
    """MINPACK's trust region (see the module doc).

    Args:
        factor: the first radius relative to ``‖D x₀‖``.
        polish: take rounding-level undamped steps (see the module doc).
    """

    def __init__(self, factor: float = 1.0, polish: bool = True) -> None:
        self.factor, self.polish = factor, polish

    def prepare(self, state: State, fresh: torch.Tensor) -> None:
        started = state.extra.get("tr_started")
        first = fresh if started is None else fresh & ~started
        if bool(first.any()):
            xn = torch.linalg.vector_norm(state.D * state.x, dim=-1)
            d0 = torch.where(xn > 0, self.factor * xn, self.factor)
            state.delta = torch.where(first, d0, state.delta)
            state.extra["tr_started"] = first if started is None else started | first
            clamp = state.extra.get("tr_clamp")
            state.extra["tr_clamp"] = first if clamp is None else clamp | first

    def advance(self, state: State, trial: Trial, problem: Problem,
                tol: Tolerances) -> torch.Tensor:
        run = state.running
        lam, pnorm = trial.lam, trial.pnorm
        clamp = state.extra.get("tr_clamp")
        delta = state.delta
        if clamp is not None:  # the first radius is cut to the first step
            delta = torch.where(clamp & run, torch.minimum(delta, pnorm), delta)
            state.extra["tr_clamp"] = clamp & ~run
        x_new = torch.where(run[:, None], state.x + trial.p, state.x)
        f_new = problem.f(x_new)
        state.nfev = state.nfev + run
        cost = state.cost
        ok_f = torch.isfinite(f_new).all(-1)
        cost_new = torch.where(ok_f, cost_of(torch.where(ok_f[:, None], f_new, 0.0), state.loss),
                               torch.inf)
        fin = torch.isfinite(cost_new)
        red = reduction(state.f, torch.where(ok_f[:, None], f_new, 0.0), cost, cost_new,
                        state.loss is not None)
        safe = torch.where(cost > 0, cost, 1.0)
        act = torch.where(fin & (cost_new < 100 * cost), red / safe, -1.0)
        prered = trial.predicted / safe
        dir_rel = trial.slope / (2 * safe)
        ratio = torch.where(prered != 0, act / torch.where(prered != 0, prered, 1.0), 0.0)
        accepted = (ratio >= 1e-4) & fin & (cost_new <= cost)
        scale = tol.eps / EPS64
        undamped = lam == 0
        polish = (~accepted & undamped & (prered <= POLISH * scale) & (act >= -NOISE * scale)
                  & fin) if self.polish else torch.zeros_like(accepted)
        shrink = ~polish & (ratio <= 0.25)
        temp = torch.where((act >= 0) | ~fin, 0.5, 0.5 * dir_rel / (dir_rel + 0.5 * act))
        temp = torch.where((cost_new >= 100 * cost) | ~(temp >= 0.1), 0.1, temp)
        grow = ~polish & ~shrink & (undamped | (ratio >= 0.75))
        delta_new = torch.where(polish, torch.maximum(delta, pnorm / 0.5), torch.where(
            shrink, temp * torch.minimum(delta, pnorm / 0.1), torch.where(grow, pnorm / 0.5,
                                                                          delta)))
        lam_new = torch.where(shrink, lam / temp, torch.where(grow, 0.5 * lam, lam))
        state.delta = torch.where(run, delta_new, state.delta)
        state.lam = torch.where(run, lam_new, state.lam)
        last = state.extra.get("tr_last_pre")
        last = torch.full_like(cost, torch.inf) if last is None else last
        falling = prered < 0.5 * last
        moved = (accepted | polish) & run
        state.x = torch.where(moved[:, None], x_new, state.x)
        state.f = torch.where(moved[:, None], f_new, state.f)
        state.cost = torch.where(moved, cost_new, cost)
        state.nit = state.nit + moved
        state.extra["tr_last_pre"] = torch.where(moved & undamped, prered, last)
        xnorm = torch.linalg.vector_norm(state.D * state.x, dim=-1)
        progressing = undamped & moved & falling
        flat = (0.5 * ratio <= 1) & ~progressing
        ok_cost = (act.abs() <= tol.ftol) & (prered <= tol.ftol) & flat
        ok_step = (state.delta <= tol.xtol * xnorm) | (moved & undamped
                                                       & (pnorm <= tol.xtol * xnorm))
        st = converged_on(ok_cost, ok_step)
        st = torch.where((st == RUNNING) & (state.nfev >= tol.max_nfev), MAX_NFEV, st)
        eps = tol.eps
        st = torch.where((st == RUNNING) & (act.abs() <= eps) & (prered <= eps) & flat, FTOL, st)
        st = torch.where((st == RUNNING) & (state.delta <= eps * xnorm), XTOL, st)
        state.status = torch.where(run, st, state.status)
        return moved
