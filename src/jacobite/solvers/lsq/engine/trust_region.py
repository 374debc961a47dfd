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
such predictions keep halving (linear convergence near a non-zero-residual solution). Such a
step whose prediction is no smaller than the last one has stagnated (two steps that undo each
other within the cost's rounding): the cost test counts it as passed.

Convergence (per problem, MINPACK's tests, see :mod:`.status`): the cost test needs the
predicted and actual relative reductions at most ``ftol`` (ratio ≤ 2); the step test the radius
or an accepted undamped step at most ``xtol · ‖D x‖``. With ``ftol`` and ``xtol`` floored at
``eps`` (:class:`~.status.Tolerances`) these include MINPACK's tests at machine precision, which
count as convergence here.

>>> tr = TrustRegion(factor=100.0)
>>> tr.factor, tr.polish
(100.0, True)
"""

from __future__ import annotations

import torch

from .protocols import Problem, Trial
from .state import State, cost_of
from .status import EPS64, MAX_NFEV, RUNNING, Tolerances

__all__ = ["NOISE", "POLISH", "TrustRegion", "reduction"]

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

    rowwise = True  #: holds no per-problem tensors: the loop may split a batch by rows

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
        every = bool(run.all())  # then no row needs to be kept as it was

        def keep(new: torch.Tensor, old: torch.Tensor, mask: torch.Tensor = run
                 ) -> torch.Tensor:
            if every and mask is run:
                return new
            return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)

        lam, pnorm, cost = trial.lam, trial.pnorm, state.cost
        delta = state.delta
        clamp = state.extra.pop("tr_clamp", None)
        if clamp is not None:  # the first radius is cut to the first step
            delta = keep(torch.minimum(delta, pnorm), delta, clamp & run)
            if not every:
                state.extra["tr_clamp"] = clamp & ~run
        x_new = keep(state.x + trial.p, state.x)
        f_new = problem.f(x_new)
        state.nfev = state.nfev + run
        # non-finite residuals give a non-finite cost: rejected (act = -1) like a cost rise
        cost_new = cost_of(f_new, state.loss)
        fin = torch.isfinite(cost_new)
        cost_new = torch.where(fin, cost_new, torch.inf)
        red = reduction(state.f, f_new, cost, cost_new, state.loss is not None)
        # a RUNNING problem has cost > 0 (a zero cost passes the gradient test)
        act = torch.where(fin & (cost_new < 100 * cost), red / cost, -1.0)
        prered = trial.predicted / cost
        ratio = torch.where(prered != 0, act / prered, 0.0)
        accepted = (ratio >= 1e-4) & (cost_new <= cost)
        undamped = lam == 0
        rejected_gn = undamped & ~accepted
        if self.polish and bool(rejected_gn.any()):
            scale = tol.eps / EPS64
            polish = rejected_gn & (prered <= POLISH * scale) & (act >= -NOISE * scale) & fin
            moved = (accepted | polish) & run
        else:
            polish, moved = torch.zeros_like(accepted), accepted & run
        shrink = ~polish & (ratio <= 0.25)
        grow = ~polish & ~shrink & (undamped | (ratio >= 0.75))
        twice = pnorm / 0.5
        delta_new = torch.where(grow, twice, torch.where(polish, torch.maximum(delta, twice),
                                                         delta))
        lam_new = torch.where(grow, 0.5 * lam, lam)
        if bool(shrink.any()):  # MINPACK's factor temp in [0.1, 0.5]
            dir_rel = trial.slope / (2 * cost)
            temp = torch.where((act >= 0) | ~fin, 0.5, 0.5 * dir_rel / (dir_rel + 0.5 * act))
            temp = torch.where((cost_new >= 100 * cost) | ~(temp >= 0.1), 0.1, temp)
            delta_new = torch.where(shrink, temp * torch.minimum(delta, pnorm / 0.1), delta_new)
            lam_new = torch.where(shrink, lam / temp, lam_new)
        state.delta = keep(delta_new, state.delta)
        state.lam = keep(lam_new, state.lam)
        last = state.extra.get("tr_last_pre")
        falling = prered < 0.5 * last if last is not None else torch.ones_like(moved)
        if bool(moved.all()):
            state.x, state.f, state.cost = x_new, f_new, cost_new
        else:
            state.x = keep(x_new, state.x, moved)
            state.f = keep(f_new, state.f, moved)
            state.cost = keep(cost_new, cost, moved)
        state.nit = state.nit + moved
        new_gn = moved & undamped
        state.extra["tr_last_pre"] = torch.where(
            new_gn, prered, last if last is not None else torch.inf)
        # MINPACK's tests; with ftol, xtol >= eps they include its machine-precision ones
        xtol_x = tol.xtol * torch.linalg.vector_norm(state.D * state.x, dim=-1)
        ok_cost = ((act.abs() <= tol.ftol) & (prered <= tol.ftol) & (ratio <= 2.0)
                   & ~(new_gn & falling))
        if last is not None:  # a rounding-level step that predicts no less than the last one:
            ok_cost = ok_cost | (polish & (prered >= last))  # the steps have stagnated
        ok_step = (state.delta <= xtol_x) | (new_gn & (pnorm <= xtol_x))
        code = 2 * ok_cost + 3 * ok_step - (ok_cost & ok_step).long()  # 2, 3 or 4 (both)
        out = torch.where(state.nfev >= tol.max_nfev, MAX_NFEV, RUNNING)
        state.status = keep(torch.where(code > 0, code, out), state.status)
        return moved
