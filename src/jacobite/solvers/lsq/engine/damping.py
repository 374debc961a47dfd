"""Nielsen's damping: the globalisation of the sparse Levenberg–Marquardt steps, per problem.

The damping starts at λ = 0 (Newton / Gauss–Newton steps, quadratic convergence where they
work), shrinks by ``max(1/3, 1 − (2ρ − 1)³)`` after an accepted damped step (ρ the ratio of
actual to predicted reduction) and drops back to 0 below ``1e-12 · max diag(J̃ᵀJ̃)``; after a
rejected step it grows by ``ν = 2, 4, 8, …`` (from ``1e-3 · max diag(J̃ᵀJ̃)`` when it was 0). A
step is accepted where ρ > 10⁻⁴ and the cost did not rise; an undamped step whose predicted
relative reduction is below rounding is taken where the cost did not rise beyond rounding, as
in :mod:`.trust_region`.

Convergence: the step test ``‖D p‖ <= xtol (xtol + ‖D x‖)``; the cost test (an accepted step
with actual and predicted relative reductions at most ``ftol``, or a predicted one below
``eps``); a damping beyond ``1e16 · max diag(J̃ᵀJ̃)`` or a system that never factors stops with
status 3 (the step has shrunk to nothing).

>>> NielsenDamping().nu0
2.0
"""

from __future__ import annotations

import torch

from .protocols import Problem, Trial
from .state import State, cost_of
from .status import EPS64, FTOL, MAX_NFEV, RUNNING, XTOL, Tolerances
from .trust_region import NOISE, POLISH, reduction

__all__ = ["NielsenDamping"]


class NielsenDamping:
    """Nielsen's damping update (see the module doc)."""

    nu0 = 2.0

    def prepare(self, state: State, fresh: torch.Tensor) -> None:
        del state, fresh  # the damping starts at λ = 0 (the state's own)

    def advance(self, state: State, trial: Trial, problem: Problem,
                tol: Tolerances) -> torch.Tensor:
        run = state.running
        failed = trial.extra.get("failed", torch.zeros_like(run))
        tries = run & ~failed
        top = state.extra["damping_top"]
        nu = state.extra.get("damping_nu", torch.full_like(state.cost, self.nu0))
        lam, cost, pred = trial.lam, state.cost, trial.predicted
        x_new = torch.where(tries[:, None], state.x + trial.p, state.x)
        f_new = problem.f(x_new) if bool(tries.any()) else state.f
        state.nfev = state.nfev + tries
        cost_new = cost_of(f_new, state.loss)
        fin = torch.isfinite(cost_new)
        act = torch.where(fin, reduction(state.f, f_new, cost, cost_new, state.loss is not None),
                          -torch.inf)
        ratio = torch.where(pred > 0, act / pred, -1.0)
        accepted = tries & fin & (ratio > 1e-4) & (cost_new <= cost)
        scale = tol.eps / EPS64
        polish = (tries & ~accepted & fin & (lam == 0) & (pred <= POLISH * scale * cost)
                  & (act >= -NOISE * scale * cost))
        moved = accepted | polish
        xnorm = torch.linalg.vector_norm(state.D * state.x, dim=-1)
        good = accepted & (lam > 0)
        shrunk = lam * torch.clamp_min(1 - (2 * ratio - 1) ** 3, 1 / 3)
        shrunk = torch.where(shrunk < 1e-12 * top, 0.0, shrunk)
        raised = torch.where(lam > 0, lam * nu, 1e-3 * top)
        new_lam = torch.where(good, shrunk, torch.where(moved, lam, raised))
        state.lam = torch.where(run, new_lam, state.lam)
        state.extra["damping_nu"] = torch.where(good, self.nu0, torch.where(
            run & ~moved, 2 * nu, nu))
        state.x = torch.where(moved[:, None], x_new, state.x)
        state.f = torch.where(moved[:, None], f_new, state.f)
        state.cost = torch.where(moved, cost_new, cost)
        state.nit = state.nit + moved
        small_x = trial.pnorm <= tol.xtol * (tol.xtol + xnorm)
        now = state.cost  # the tests on the cost compare with the cost after the step
        small_f = moved & (act.abs() <= tol.ftol * now) & (pred <= tol.ftol * now)
        code = 2 * small_f + 3 * small_x - (small_f & small_x).long()
        st = torch.where(code > 0, code, RUNNING)
        st = torch.where((st == RUNNING) & moved & (pred <= tol.eps * now), FTOL, st)
        st = torch.where((st == RUNNING) & (state.nfev >= tol.max_nfev), MAX_NFEV, st)
        st = torch.where((st == RUNNING) & (state.lam > 1e16 * top), XTOL, st)
        st = torch.where(run & failed, XTOL, st)
        state.status = torch.where(run, st, state.status)
        return moved
