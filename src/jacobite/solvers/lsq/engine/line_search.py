"""The line-search globalisation: Armijo backtracking along the trial direction, per problem.

The step length starts at 1 and is halved, for each problem separately, until
``cost(x + t p) <= cost(x) + c₁ t ∇cost·p`` (a point with non-finite residuals fails the test),
the evaluation budget is spent or ``t < 10⁻¹⁰``; all problems still searching are evaluated
together. A point with a lower cost is taken, and so is one with the same cost when the model
itself predicts a relative reduction of at most ``ftol`` (the step is below the rounding of the
cost but still refines ``x``). After a step the cost test ``cost − cost₊ <= ftol · cost`` and
the step test ``‖t p‖ <= xtol (xtol + ‖x₊‖)`` apply. A problem that finds no such point stops:
status 0 when the budget is spent, 3 (xtol) when the full step is below ``xtol`` relative to
``x`` (below the rounding of ``x``), 2 (ftol) when the model predicts a relative reduction
below the rounding of the cost (``1e-12 · eps/eps₆₄``, as the trust region's rounding-level
steps), which the cost cannot confirm, else −9 (no decrease found) — an unchanged cost alone is
never convergence.

>>> Armijo().c1
0.0001
"""

from __future__ import annotations

import torch

from .protocols import Problem, Trial
from .state import State, cost_of
from .status import FTOL, LINE_SEARCH, MAX_NFEV, RUNNING, XTOL, Tolerances, converged_on
from .trust_region import EPS64, POLISH

__all__ = ["Armijo"]


class Armijo:
    """Armijo backtracking (see the module doc); ``c1`` is the sufficient-decrease constant."""

    rowwise = True  #: holds no per-problem tensors: the loop may split a batch by rows

    def __init__(self, c1: float = 1e-4, t_min: float = 1e-10) -> None:
        self.c1, self.t_min = c1, t_min

    def prepare(self, state: State, fresh: torch.Tensor) -> None:
        del state, fresh  # no radius to set

    def advance(self, state: State, trial: Trial, problem: Problem,
                tol: Tolerances) -> torch.Tensor:
        run = state.running
        cost, x = state.cost, state.x
        t = torch.ones_like(cost)
        searching = run
        x_new, f_new, cost_new = x, state.f, cost
        while True:
            x_try = torch.where(searching[:, None], x + t[:, None] * trial.p, x_new)
            f_try = problem.f(x_try)
            state.nfev = state.nfev + searching
            ok = torch.isfinite(f_try).all(-1)
            c_try = torch.where(ok, cost_of(torch.where(ok[:, None], f_try, 0.0), state.loss),
                                torch.inf)
            x_new = torch.where(searching[:, None], x_try, x_new)
            f_new = torch.where(searching[:, None], f_try, f_new)
            cost_new = torch.where(searching, c_try, cost_new)
            done = ((c_try <= cost + self.c1 * t * trial.slope) | (state.nfev >= tol.max_nfev)
                    | (t < self.t_min))
            searching = searching & ~done
            if not bool(searching.any()):
                break
            t = torch.where(searching, 0.5 * t, t)
        safe = torch.where(cost > 0, cost, 1.0)
        predicted = trial.predicted / safe
        flat = predicted <= tol.ftol
        moved = run & ((cost_new < cost) | (flat & (cost_new == cost)))
        tiny = trial.pnorm <= tol.xtol * (tol.xtol + torch.linalg.vector_norm(x, dim=-1))
        # a predicted reduction below the cost's own rounding cannot be confirmed by it
        unseen = predicted <= max(POLISH * tol.eps / EPS64, tol.eps)
        stuck = torch.where(state.nfev >= tol.max_nfev, MAX_NFEV, torch.where(
            tiny, XTOL, torch.where(unseen, FTOL, LINE_SEARCH)))
        act = cost - cost_new
        step = t * trial.pnorm
        state.x = torch.where(moved[:, None], x_new, x)
        state.f = torch.where(moved[:, None], f_new, state.f)
        state.cost = torch.where(moved, cost_new, cost)
        state.nit = state.nit + moved
        xnorm = torch.linalg.vector_norm(state.x, dim=-1)
        st = converged_on(act <= tol.ftol * cost, step <= tol.xtol * (tol.xtol + xnorm))
        st = torch.where(moved, st, stuck)
        state.status = torch.where(run & (st != RUNNING), st, state.status)
        return moved
