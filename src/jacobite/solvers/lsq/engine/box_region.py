"""The trust-region globalisation of the bounded methods (``"trf"``, ``"dogbox"``), per problem.

SciPy's rule for its bounded methods, batched: a trial point is taken wherever it lowers the
cost; the radius becomes ``¼`` of the step where the ratio of actual to predicted reduction is
below ``¼``, doubles where the ratio is above ``¾`` and the step reached the trust region's
boundary, and is otherwise kept; a non-finite residual at the trial point shrinks the radius the
same way without a test. The damping that warm-starts the next trust-region solve scales
inversely with the radius.

The step rule proposes the trial *point* (``Trial.extra["x"]``, already inside the box: strictly
for ``"trf"``, on a bound it lands on for ``"dogbox"``), whether the step reached the trust
region's boundary (``extra["boundary"]``) and its size in ``x`` (``extra["step_norm"]``);
``Trial.pnorm`` is its size in the variables the radius bounds. The first radius comes from the
rule too (``State.extra["delta0"]``).

Convergence per problem (SciPy's tests): the cost test needs the actual reduction below
``ftol · cost`` with a ratio above ``¼`` (a rejected step never passes it); the step test a step
below ``xtol (xtol + ‖x‖)``; a radius below ``eps · ‖D x‖`` (nothing left to try) counts as
the step test.

>>> BoxTrustRegion().name
'box trust region'
"""

from __future__ import annotations

import torch

from .loop import merge_rows
from .protocols import Problem, Trial
from .state import State, cost_of
from .status import MAX_NFEV, RUNNING, XTOL, Tolerances, converged_on
from .trust_region import reduction

__all__ = ["BoxTrustRegion"]


class BoxTrustRegion:
    """SciPy's trust region for ``"trf"`` and ``"dogbox"`` (see the module doc)."""

    name = "box trust region"

    def prepare(self, state: State, fresh: torch.Tensor) -> None:
        started = state.extra.get("box_started")
        first = fresh if started is None else fresh & ~started
        if bool(first.any()):
            state.delta = torch.where(first, state.extra["delta0"], state.delta)
            state.extra["box_started"] = first if started is None else started | first

    def advance(self, state: State, trial: Trial, problem: Problem,
                tol: Tolerances) -> torch.Tensor:
        run = state.running
        x_new = merge_rows(run, trial.extra["x"], state.x)
        f_new = problem.f(x_new)
        state.nfev = state.nfev + run
        finite = torch.isfinite(f_new).all(-1)
        all_finite = bool(finite.all())
        f_safe = f_new if all_finite else torch.where(finite[:, None], f_new, 0.0)
        cost, delta, pnorm, pred = state.cost, state.delta, trial.pnorm, trial.predicted
        cost_new = cost_of(f_safe, state.loss)
        act = reduction(state.f, f_safe, cost, cost_new, state.loss is not None)
        if not all_finite:
            cost_new = torch.where(finite, cost_new, torch.inf)
            act = torch.where(finite, act, -torch.inf)
        ratio = torch.where(pred > 0, act / pred, ((pred == 0) & (act == 0)).to(act.dtype))
        shrink = (ratio < 0.25) | ~finite
        grow = (ratio > 0.75) & trial.extra["boundary"]
        delta_new = torch.where(shrink, 0.25 * pnorm, torch.where(grow, 2.0 * delta, delta))
        xnorm = torch.linalg.vector_norm(state.x, dim=-1)
        ok_f = (act < tol.ftol * cost) & (ratio > 0.25)
        ok_x = trial.extra["step_norm"] < tol.xtol * (tol.xtol + xnorm)
        st = converged_on(ok_f & finite, ok_x & finite)
        going = run & (st == RUNNING)
        scale = torch.where(going & finite & (delta_new > 0), delta / delta_new, 1.0)
        accepted = run & finite & (act > 0)
        state.delta = torch.where(going, delta_new, delta)
        state.lam = state.lam * scale
        state.x = merge_rows(accepted, x_new, state.x)
        state.f = merge_rows(accepted, f_new, state.f)
        state.cost = torch.where(accepted, cost_new, cost)
        state.nit = state.nit + accepted
        tiny = state.delta <= tol.eps * torch.linalg.vector_norm(state.x * state.D, dim=-1)
        st = torch.where(going & finite & tiny, XTOL, st)
        out = ~accepted & (state.nfev >= tol.max_nfev)
        st = torch.where((st == RUNNING) & out, MAX_NFEV, st)
        state.status = torch.where(run, st, state.status)
        return accepted
