"""The one solver loop: a step rule and a globalisation advance every RUNNING problem of a batch.

One pass of :func:`solve`:

1. for the problems whose Jacobian changed (``fresh``), the step rule rebuilds its model
   (gradient, scaling, factorisation) and answers the gradient test (status 1); a problem whose
   evaluation budget is spent stops (status 0); the globalisation prepares (first radius);
2. the step rule proposes a trial step for every problem;
3. the globalisation evaluates the trial points, accepts or rejects per problem, updates the
   radius or step length and writes the status of problems that a test stops;
4. the Jacobian is evaluated for the problems that moved (a non-finite one stops the problem
   with status −3 at its new point).

A problem whose Jacobian is not finite at the start stops with status −3; one whose residuals
are finite but whose cost overflows (``½‖f‖² > 1.8e308``) with status −7, since no step can be
judged by an infinite cost.

Problems that stopped keep their rows: their ``x``, ``f``, ``J`` and counters do not change.
The loop does no per-problem Python work; its cost per pass is a fixed number of batched tensor
operations plus the problem's evaluations. Once at most half of a batch still runs, the running
rows are gathered into a batch of their own (for step rules and globalisations that declare
``rowwise``: they keep no per-problem tensors outside the state), so late passes cost what their
running problems cost; every row is computed as it would be in the whole batch.

>>> import torch
>>> from jacobite.solvers.lsq.engine.state import State
>>> from jacobite.solvers.lsq.engine.status import Tolerances
>>> from jacobite.solvers.lsq.engine.steps.lm import LevenbergMarquardt
>>> from jacobite.solvers.lsq.engine.trust_region import TrustRegion
>>> class Shifted:  # f_b(x) = x - b for problems b = 0, 1, 2
...     c = torch.arange(3.0, dtype=torch.float64)[:, None]
...     def f(self, x): return x - self.c
...     def J(self, x): return torch.eye(1, dtype=x.dtype).expand(x.shape[0], 1, 1).clone()
>>> x0 = torch.full((3, 1), 5.0, dtype=torch.float64)
>>> P = Shifted()
>>> s = solve(P, State.start(x0, P.f(x0), P.J(x0)), LevenbergMarquardt(), TrustRegion(),
...           Tolerances.make(1e-15, 1e-15, 1e-15, 3, eps=2.0 ** -52, max_nfev=400))
>>> s.x.flatten().tolist(), (s.status > 0).tolist()
([0.0, 1.0, 2.0], [True, True, True])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from .protocols import Globalisation, Problem, StepRule
from .state import State
from .status import GTOL, MAX_NFEV, NONFINITE_JAC, RANGE, RUNNING, Tolerances, settle

__all__ = ["COMPACT_MIN", "all_finite", "merge_rows", "solve"]

COMPACT_MIN = 16  #: batches of fewer problems are not split by running rows


def all_finite(J: Any) -> torch.Tensor:
    """(B,) mask: every entry of each problem's Jacobian is finite (a SciPy sparse ``J`` is one
    problem)."""
    if isinstance(J, torch.Tensor):
        return torch.isfinite(J).flatten(1).all(-1)
    import numpy as np

    return torch.tensor([bool(np.all(np.isfinite(J.data)))])


def merge_rows(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """Rows of ``new`` where ``mask`` (B,) holds, else of ``old`` (any trailing shape). Without a
    copy when the mask is all true or all false (always so for one problem)."""
    if not isinstance(new, torch.Tensor) or mask.shape[0] == 1:
        return new if bool(mask[0]) else old
    if bool(mask.all()):
        return new
    return torch.where(mask.view(-1, *([1] * (new.dim() - 1))), new, old)


def solve(problem: Problem, state: State, rule: StepRule, globalisation: Globalisation,
          tol: Tolerances, *, verbose: int = 0) -> State:
    """Advance every RUNNING problem of ``state`` until each has a final status; returns the
    same (updated) state. ``verbose=2`` prints a line per pass for a single problem."""
    show = _printer(verbose if state.B == 1 else 0)
    state.status = settle(state.status, ~all_finite(state.J), NONFINITE_JAC)
    # finite residuals whose cost overflows: no step can be judged by it
    state.status = settle(state.status, ~torch.isfinite(state.cost), RANGE)
    _run(problem, state, rule, globalisation, tol, state.running, show, verbose)
    return state


def _run(problem: Problem, state: State, rule: StepRule, globalisation: Globalisation,
         tol: Tolerances, fresh: torch.Tensor, show: Callable[[State], None],
         verbose: int) -> None:
    """The passes of :func:`solve` from a state whose problems ``fresh`` need a refresh. Once
    at most half of a batch still runs, those rows go on as a batch of their own (when the
    state, the step rule and the globalisation allow it), so that a pass costs what its running
    problems cost."""
    rowwise = (state.B >= COMPACT_MIN and getattr(rule, "rowwise", False)
               and getattr(globalisation, "rowwise", False))
    while True:
        if rowwise:
            running = state.running
            k = int(running.sum())
            if 0 < k <= state.B // 2:
                idx = torch.nonzero(running)[:, 0]
                part = state.rows(idx)
                if part is not None:
                    _run(_Rows.of(problem, state.x, idx), part, rule, globalisation,
                         replace(tol, ftol=tol.ftol[idx], xtol=tol.xtol[idx],
                                 gtol=tol.gtol[idx], max_nfev=tol.max_nfev[idx]),
                         fresh[idx], show, verbose)
                    state.put_rows(idx, part)
                    return
                rowwise = False
        if bool(fresh.any()):
            ok = rule.refresh(state, fresh, tol)
            stop = torch.where(ok, GTOL, torch.where(state.nfev >= tol.max_nfev, MAX_NFEV,
                                                     RUNNING))
            if verbose >= 2:  # the line shows the pass before its budget test
                state.status = settle(state.status, fresh & ok, GTOL)
                show(state)
            state.status = torch.where(fresh & (state.status == RUNNING), stop, state.status)
            globalisation.prepare(state, fresh & state.running)
        running = state.running
        if not bool(running.any()):
            return
        trial = rule.propose(state, problem)
        moved = globalisation.advance(state, trial, problem, tol)
        if bool(moved.any()):
            J = problem.J(state.x)
            state.J = merge_rows(moved, J, state.J)
            state.njev = state.njev + moved
            if not _finite(J):
                bad = moved & ~all_finite(state.J)
                state.status = torch.where(bad, NONFINITE_JAC, state.status)
        fresh = moved & state.running


class _Rows:
    """The problems ``idx`` of ``problem``: its own ``rows(idx)`` where it has one (per-problem
    data split with the batch), else the whole batch evaluated at ``x`` with the rows ``idx``
    replaced, and those rows kept."""

    def __init__(self, problem: Problem, x: torch.Tensor, idx: torch.Tensor) -> None:
        self.problem, self.x, self.idx = problem, x, idx

    @staticmethod
    def of(problem: Problem, x: torch.Tensor, idx: torch.Tensor) -> Problem:
        take = getattr(problem, "rows", None)
        part = take(idx) if take is not None else None
        return part if part is not None else _Rows(problem, x, idx)

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return self.problem.f(self.x.index_copy(0, self.idx, x)).index_select(0, self.idx)

    def J(self, x: torch.Tensor) -> Any:
        J = self.problem.J(self.x.index_copy(0, self.idx, x))
        return J.index_select(0, self.idx)


def _finite(J: Any) -> bool:
    """Whether every entry of a dense or SciPy sparse Jacobian is finite; may answer ``False``
    for finite entries whose sum overflows (the caller then tests problem by problem)."""
    if isinstance(J, torch.Tensor):
        return bool(torch.isfinite(J.sum()))
    return bool(all_finite(J).all())


def _printer(verbose: int) -> Callable[[State], None]:
    """One line per pass at ``verbose=2``: iteration, evaluations, cost, optimality."""
    if verbose < 2:
        return lambda state: None
    print(f"{'iter':>6} {'nfev':>6} {'cost':>14} {'optim':>12}")

    def line(state: State) -> None:
        print(f"{int(state.nit[0]):6d} {int(state.nfev[0]):6d} {float(state.cost[0]):14.6e} "
              f"{float(state.g[0].abs().max()) if state.n else 0.0:12.4e}")

    return line
