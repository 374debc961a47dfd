"""Dogleg steps in a rectangular trust region (Voglis & Lagaris 2004; SciPy's ``"dogbox"``).

The trust region is the box ``|sᵢ| <= Δ · scaleᵢ`` (``scale = 1 / scale_inv``), so its
intersection with the bounds is again a box, and the step follows the dogleg path of the
Gauss–Newton model inside it: the Cauchy point (the minimiser of the model along ``-g`` within
the box), then straight towards the Gauss–Newton point until the first face of the box. A
variable that sits on a bound its negative gradient pushes against is *active*: it is frozen
(its column of ``J`` and its gradient entry zeroed) until the gradient lets it leave.

Everything here is batched: ``B`` problems, each with its own box, radius and active set; the
active variables of a problem are masked, never sliced out, so the batch keeps one shape.

>>> import torch
>>> o = torch.ones(1, 1, dtype=torch.float64)
>>> s, hits, tr_hit = dogleg_step(0 * o, 3 * o, -o, 0.5 * o[:, 0], -o[:, 0], 10 * o, -o, 2 * o)
>>> s.tolist(), hits.tolist(), tr_hit.tolist()
([[2.0]], [[1]], [False])
"""

from __future__ import annotations

from typing import Any

import torch

from ..box import (
    evaluate_quadratic,
    find_active,
    in_bounds,
    minimize_quadratic_1d,
    quadratic_1d,
    step_to_bound,
)
from ..loop import merge_rows
from ..protocols import Problem, Trial
from ..sparse import lsmr_newton
from ..state import State
from ..status import Tolerances
from .reflective import merge_fresh, scaled_model

__all__ = ["Dogbox", "active_set", "dogleg_step", "newton_step"]

#: Relative distance to a bound within which a variable counts as on it (as in SciPy's
#: ``active_mask``).
NEAR = 1e-10


def active_set(on_bound: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(B, n)`` bool: the variables on a bound (``on_bound`` ``-1`` / ``+1``) that the
    negative gradient pushes further out."""
    return on_bound * g < 0


def newton_step(J: torch.Tensor, f: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """The minimum-norm Gauss–Newton step ``argmin ‖J s + f‖`` over the free variables (``0`` on
    the others), singular values below ``eps · s_max`` dropped; ``J`` ``(B, m, n)``."""
    mask = free.to(J.dtype)
    Jf = J * mask[:, None, :]
    U, s, Vh = torch.linalg.svd(Jf, full_matrices=False)
    eps = torch.finfo(J.dtype).eps
    keep = s > eps * s[:, :1]
    uf = (U.transpose(-1, -2) @ f.unsqueeze(-1)).squeeze(-1)
    coef = torch.where(keep, uf / torch.where(keep, s, torch.ones_like(s)), torch.zeros_like(s))
    return -(Vh.transpose(-1, -2) @ coef.unsqueeze(-1)).squeeze(-1) * mask


def cauchy_coefficients(J: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` of the model ``a t² + b t`` along ``-g`` (``g`` zero on active variables)."""
    a, b, _ = quadratic_1d(J, g, -g)
    return a, b


def dogleg_step(x: torch.Tensor, newton: torch.Tensor, g: torch.Tensor, a: torch.Tensor,
                b: torch.Tensor, tr_bounds: torch.Tensor, lb: torch.Tensor, ub: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The dogleg step in ``{s : lb <= x + s <= ub, |s| <= tr_bounds}`` per problem.

    ``newton`` is the Gauss–Newton step, ``g`` the gradient and ``(a, b)`` the model along
    ``-g``. Returns ``(step, bound_hits, tr_hit)``: ``bound_hits`` ``(B, n)`` int64 is ``-1`` /
    ``+1`` where the step lands on an original lower / upper bound, ``tr_hit`` ``(B,)`` whether
    it stopped on the trust region's face.
    """
    lb_c, ub_c = lb - x, ub - x
    lb_t = torch.maximum(lb_c, -tr_bounds)
    ub_t = torch.minimum(ub_c, tr_bounds)
    orig_l, orig_u = lb_t == lb_c, ub_t == ub_c
    tr_l, tr_u = lb_t == -tr_bounds, ub_t == tr_bounds

    inside = in_bounds(newton, lb_t, ub_t)
    zero = torch.zeros_like(x)
    to_bounds, _ = step_to_bound(zero, -g, lb_t, ub_t)
    to_bounds = torch.where(to_bounds.isfinite(), to_bounds, torch.zeros_like(to_bounds))
    t, _ = minimize_quadratic_1d(a, b, torch.zeros_like(a), to_bounds)
    cauchy = -t[:, None] * g
    diff = newton - cauchy
    size, hits = step_to_bound(cauchy, diff, lb_t, ub_t)
    size = torch.where(size.isfinite(), size, torch.zeros_like(size))
    lo, up = hits < 0, hits > 0
    bound_hits = torch.where(lo & orig_l, -1, torch.where(up & orig_u, 1, 0))
    tr_hit = ((lo & tr_l) | (up & tr_u)).any(-1)
    step = cauchy + size[:, None] * diff
    step = torch.where(inside[:, None], newton, step)
    bound_hits = torch.where(inside[:, None], 0, bound_hits)
    return step, bound_hits, tr_hit & ~inside


class Dogbox:
    """The dogleg-in-a-box step rule (``"dogbox"``) for per-problem boxes ``lb``, ``ub``
    (``(B, n)``, ``±inf`` for open sides); pair it with
    :class:`~..box_region.BoxTrustRegion`. A SciPy sparse Jacobian (one problem) takes its
    Gauss–Newton step from LSMR. ``jac_scale``: ``D`` from the column norms
    (``x_scale="jac"``), else the ``D = 1 / x_scale`` the state starts with. The trust region
    of a problem is the box ``|sᵢ| <= Δ / Dᵢ``."""

    def __init__(self, lb: torch.Tensor, ub: torch.Tensor, jac_scale: bool = True) -> None:
        self.lb, self.ub, self.jac_scale = lb, ub, jac_scale

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        Jt, ft, g = scaled_model(state, fresh, self.jac_scale, "dogbox_seen")
        x = state.x
        pending = state.extra.get("dogbox_pending")
        at = torch.where(x == self.lb, -1, torch.where(x == self.ub, 1, 0))
        on_bound = at if pending is None else merge_rows(fresh, pending, state.extra["on_bound"])
        near = find_active(x, self.lb, self.ub, NEAR)  # crept up to a bound without landing
        on_bound = torch.where(on_bound == 0, near, on_bound)
        state.extra["on_bound"] = on_bound
        free = ~active_set(on_bound, g)
        gf = torch.where(free, g, 0.0)
        gnorm = gf.abs().amax(-1) if state.n else g.new_zeros(state.B)
        if isinstance(Jt, torch.Tensor):
            Jf = Jt * free[:, None, :].to(Jt.dtype)
            newton = newton_step(Jt, ft, free)
        else:  # sparse (one problem): LSMR; J s needs no masking, s is 0 off the free set
            Jf, newton = Jt, lsmr_newton(Jt, ft, 1.0 / state.D, free)
        a, b = cauchy_coefficients(Jf, gf)
        started = state.extra.get("box_started")
        if started is None or not bool(started.all()):  # the first radius, SciPy's choice
            delta0 = (x * state.D).abs().amax(-1) if state.n else g.new_zeros(state.B)
            delta0 = torch.where(delta0 > 0, delta0, 1.0)
            state.extra["delta0"] = merge_rows(fresh, delta0, state.extra.get("delta0", delta0))
        state.extra["dogbox"] = merge_fresh(fresh, (Jf, gf, newton, a, b, free),
                                       state.extra.get("dogbox"))
        state.extra["optimality"] = merge_rows(fresh, gnorm, state.extra.get("optimality", gnorm))
        state.g = merge_rows(fresh, g, state.g)
        return (gnorm < tol.gtol) | (state.cost == 0)

    def propose(self, state: State, problem: Problem) -> Trial:
        Jf, gf, newton, a, b, free = state.extra["dogbox"]
        x, delta, D = state.x, state.delta, state.D
        step, hits, tr_hit = dogleg_step(x, newton, gf, a, b, delta[:, None] / D, self.lb,
                                         self.ub)
        pred = -evaluate_quadratic(Jf, gf, step)
        on_bound = torch.where(free, hits, state.extra["on_bound"])
        state.extra["dogbox_pending"] = on_bound
        x_new = torch.minimum(torch.maximum(x + step, self.lb), self.ub)
        x_new = torch.where(on_bound < 0, self.lb, torch.where(on_bound > 0, self.ub, x_new))
        pnorm = (step * D).abs().amax(-1) if state.n else delta.new_zeros(state.B)
        return Trial(p=step, pnorm=pnorm, predicted=pred, slope=(gf * step).sum(-1),
                     lam=torch.zeros_like(delta),
                     extra={"x": x_new, "boundary": tr_hit,
                            "step_norm": torch.linalg.vector_norm(step, dim=-1)})
