"""Trust-region reflective steps for box bounds (Branch, Coleman & Li 1999; SciPy's ``"trf"``).

The variables of each problem are rescaled by Coleman and Li's vector ``v`` (the distance to the
bound the negative gradient points at, :func:`..box.cl_scaling`) and by ``x_scale``: in the
"hat" variables ``x = d ∘ x̂``, ``d = √v / scale_inv``, the bounded problem looks unconstrained and
its trust-region model is ``q̂(p̂) = ½ p̂ᵀ (Ĵᵀ Ĵ + diag(ĉ)) p̂ + ĝᵀ p̂`` with ``Ĵ = J d``,
``ĝ = d ∘ g`` and ``ĉ = g ∘ dv / scale_inv``. Its trust-region solution is Moré's damped step on
the SVD of ``[Ĵ; diag(√ĉ)]`` (for a SciPy sparse ``J``, one problem: the exact step in the
two-dimensional subspace of ``ĝ`` and an LSMR Gauss–Newton step, :mod:`..sparse`). A solution
that leaves the box is replaced by the best (lowest model value) of three steps,
:func:`select_step`: the step truncated just inside the bound it crosses, its reflection off
that bound, and the scaled gradient step; all three stay strictly feasible (a step-back factor
``θ`` keeps them off the bounds).

Everything here is batched: ``B`` problems, each with its own box, radius and model.

>>> import torch
>>> o = torch.ones(1, 1, dtype=torch.float64)
>>> step, step_h, pred = select_step(0 * o, 1 * o, 0 * o, -o, 2 * o, 2 * o, o, 2 * o[:, 0],
...                                  -o, o, 0.995 * o[:, 0])
>>> round(step.item(), 6), round(pred.item(), 6)
(0.995, 0.499987)
"""

from __future__ import annotations

from typing import Any

import torch

from ..box import (
    cl_scaling,
    evaluate_quadratic,
    in_bounds,
    make_strictly_feasible,
    minimize_quadratic_1d,
    quadratic_1d,
    step_to_bound,
)
from ..loop import merge_rows
from ..protocols import Problem, Trial
from ..robust import model
from ..sparse import lsmr_subspace, sp_diags, sparse_col_norms, subspace_step
from ..state import State
from ..status import Tolerances
from .lm import col_norms, more_step

__all__ = ["Reflective", "hat_scaling", "jac_scale_update", "merge_fresh", "select_step",
           "to_trust_boundary", "transpose_times"]


def hat_scaling(g: torch.Tensor, scale_inv: torch.Tensor, v: torch.Tensor, dv: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hat-variable scaling ``d``, the model's diagonal ``ĉ`` and the hat gradient ``ĝ``
    from the gradient ``g``, Coleman and Li's ``(v, dv)`` and the inverse variable scale
    ``scale_inv`` (all ``(B, n)``); ``v`` is taken in the ``x_scale`` variables where
    ``dv ≠ 0``."""
    v = torch.where(dv != 0, v * scale_inv, v)
    d = v.sqrt() / scale_inv
    return d, g * dv / scale_inv, d * g


def to_trust_boundary(p: torch.Tensor, r: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the ``t >= 0`` with ``‖p + t r‖ = delta`` for ``p`` inside the trust region
    (the larger root, computed without cancellation); ``0`` where ``r = 0``."""
    a = (r * r).sum(-1)
    b = (p * r).sum(-1)
    c = (p * p).sum(-1) - delta * delta
    disc = torch.clamp(b * b - a * c, min=0.0).sqrt()
    q = -(b + torch.copysign(disc, b))
    ok = (a > 0) & (q != 0)
    one = torch.ones_like(a)
    t1 = q / torch.where(ok, a, one)
    t2 = c / torch.where(ok, q, one)
    return torch.where(ok, torch.maximum(t1, t2), torch.zeros_like(a))


def select_step(x: torch.Tensor, Jh: Any, diag_h: torch.Tensor, g_h: torch.Tensor,
                p: torch.Tensor, p_h: torch.Tensor, d: torch.Tensor, delta: torch.Tensor,
                lb: torch.Tensor, ub: torch.Tensor, theta: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The trust-region reflective step per problem: ``(step, step_h, predicted_reduction)``.

    ``p = d ∘ p̂`` is the trust-region solution; where ``x + p`` stays in the box it is taken.
    Elsewhere the lowest-model of the truncated step (``θ`` times the way to the bound), the
    reflected step (along ``p̂`` with the hit components' signs flipped, from the bound to
    ``θ`` times the next bound or to the trust-region boundary) and the scaled steepest-descent
    step. Shapes: ``(B, n)`` vectors, ``Jh`` ``(B, m, n)``, ``delta`` and ``theta`` ``(B,)``.
    """
    inside = in_bounds(x + p, lb, ub)
    p_value0 = evaluate_quadratic(Jh, g_h, p_h, diag_h)
    if bool(inside.all()):  # every trust-region step stays in its box
        return p, p_h, -p_value0

    p_stride, hits = step_to_bound(x, p, lb, ub)
    p_stride = torch.where(inside | ~p_stride.isfinite(), torch.ones_like(p_stride), p_stride)
    r_h = torch.where(hits != 0, -p_h, p_h)
    r = d * r_h
    pt, pt_h = p * p_stride[:, None], p_h * p_stride[:, None]

    to_tr = to_trust_boundary(pt_h, r_h, delta)
    to_bound, _ = step_to_bound(x + pt, r, lb, ub)
    r_stride = torch.minimum(to_bound, to_tr)
    movable = r_stride > 0
    safe = torch.where(movable, r_stride, torch.ones_like(r_stride))
    lo = torch.where(movable, (1 - theta) * p_stride / safe, torch.zeros_like(safe))
    hi = torch.where(r_stride == to_bound, theta * to_bound, to_tr)
    hi = torch.where(movable, hi, -torch.ones_like(hi))
    r_ok = lo <= hi
    lo_s = torch.where(r_ok, lo, torch.zeros_like(lo))
    hi_s = torch.where(r_ok & hi.isfinite(), hi, lo_s)
    a, b, c = quadratic_1d(Jh, g_h, r_h, diag_h, s0=pt_h)
    t, r_value = minimize_quadratic_1d(a, b, lo_s, hi_s, c)
    r_value = torch.where(r_ok, r_value, torch.full_like(r_value, torch.inf))
    r_h = pt_h + t[:, None] * r_h
    r = d * r_h

    pt, pt_h = pt * theta[:, None], pt_h * theta[:, None]
    p_value = evaluate_quadratic(Jh, g_h, pt_h, diag_h)

    ag_h = -g_h
    ag = d * ag_h
    gnorm = torch.linalg.vector_norm(ag_h, dim=-1)
    ag_tr = delta / torch.clamp(gnorm, min=torch.finfo(gnorm.dtype).tiny)
    ag_bound, _ = step_to_bound(x, ag, lb, ub)
    ag_stride = torch.where(ag_bound < ag_tr, theta * ag_bound, ag_tr)
    a, b, _ = quadratic_1d(Jh, g_h, ag_h, diag_h)
    t_ag, ag_value = minimize_quadratic_1d(a, b, torch.zeros_like(ag_stride), ag_stride)
    ag_h, ag = ag_h * t_ag[:, None], ag * t_ag[:, None]

    take_p = (p_value < r_value) & (p_value < ag_value)
    take_r = ~take_p & (r_value < p_value) & (r_value < ag_value)
    step = torch.where(take_p[:, None], pt, torch.where(take_r[:, None], r, ag))
    step_h = torch.where(take_p[:, None], pt_h, torch.where(take_r[:, None], r_h, ag_h))
    value = torch.where(take_p, p_value, torch.where(take_r, r_value, ag_value))
    step = torch.where(inside[:, None], p, step)
    step_h = torch.where(inside[:, None], p_h, step_h)
    return step, step_h, -torch.where(inside, p_value0, value)


def merge_fresh(fresh: torch.Tensor, new: tuple[Any, ...], old: tuple[Any, ...] | None
                ) -> tuple[Any, ...]:
    """The rows of ``new`` (a tuple of per-problem tensors) where ``fresh``, else of ``old``."""
    if old is None or bool(fresh.all()):
        return new
    return tuple(merge_rows(fresh, a, b) for a, b in zip(new, old, strict=True))


def jac_scale_update(state: State, fresh: torch.Tensor, Jt: Any, key: str) -> None:
    """``D``: the column norms of ``J̃`` (zero columns counting as 1) at a problem's first
    Jacobian, their running maximum after (SciPy's ``x_scale="jac"``)."""
    cn = col_norms(Jt) if isinstance(Jt, torch.Tensor) else sparse_col_norms(Jt)
    c = torch.where(cn > 0, cn, 1.0)
    seen = state.extra.get(key)
    grown = c if seen is None else torch.where(seen[:, None], torch.maximum(state.D, c), c)
    state.D = merge_rows(fresh, grown, state.D)
    state.extra[key] = fresh if seen is None else seen | fresh


def scaled_model(state: State, fresh: torch.Tensor, jac_scale: bool,
                 key: str) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The bounded rules' common start of a refresh: Triggs' robust model ``(J̃, f̃)``, the
    gradient ``J̃ᵀ f̃``, and (``jac_scale``) ``D`` updated from ``J̃``'s column norms
    (:func:`jac_scale_update`, its seen-mask kept under ``key``)."""
    Jt, ft = model(state.J, state.f, state.loss)
    g = transpose_times(Jt, ft)
    if jac_scale:
        jac_scale_update(state, fresh, Jt, key)
    return Jt, ft, g


class Reflective:
    """The trust-region reflective step rule (``"trf"``) for per-problem boxes ``lb``, ``ub``
    (``(B, n)``, ``±inf`` for open sides); pair it with
    :class:`~..box_region.BoxTrustRegion`. ``jac_scale``: ``D`` from the column norms
    (``x_scale="jac"``), else the ``D = 1 / x_scale`` the state starts with."""

    def __init__(self, lb: torch.Tensor, ub: torch.Tensor, jac_scale: bool = True) -> None:
        self.lb, self.ub, self.jac_scale = lb, ub, jac_scale

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        Jt, ft, g = scaled_model(state, fresh, self.jac_scale, "trf_seen")
        x, D = state.x, state.D
        v, dv = cl_scaling(x, g, self.lb, self.ub)
        gnorm = (g * v).abs().amax(-1) if state.n else g.new_zeros(state.B)
        d, diag_h, g_h = hat_scaling(g, D, v, dv)
        started = state.extra.get("box_started")
        if started is None or not bool(started.all()):  # the first radius, SciPy's choice
            v_hat = torch.where(dv != 0, v * D, v)
            delta0 = torch.linalg.vector_norm(x * D / v_hat.sqrt(), dim=-1)
            delta0 = torch.where(delta0 > 0, delta0, 1.0)
            state.extra["delta0"] = merge_rows(fresh, delta0, state.extra.get("delta0", delta0))
        else:
            delta0 = state.delta
        theta = torch.clamp(1 - gnorm, min=0.995)
        if isinstance(Jt, torch.Tensor):
            Jh = Jt * d[:, None, :]
            aug = torch.cat([Jh, torch.diag_embed(diag_h.sqrt())], dim=1)
            U, s, Vh = torch.linalg.svd(aug, full_matrices=False)
            uf = (U[:, : state.m].mT @ ft[..., None])[..., 0]
            solver: tuple[Any, ...] = (s, Vh.mT, uf)
        else:
            Jh = Jt @ sp_diags(d[0])
            now = torch.where(state.delta > 0, state.delta, delta0)
            solver = lsmr_subspace(Jh, ft, g_h, diag_h, now)
        new = (Jh, diag_h, g_h, d, theta, *solver)
        state.extra["trf"] = merge_fresh(fresh, new, state.extra.get("trf"))
        state.extra["optimality"] = merge_rows(fresh, gnorm, state.extra.get("optimality", gnorm))
        state.g = merge_rows(fresh, g, state.g)
        return (gnorm < tol.gtol) | (state.cost == 0)

    def propose(self, state: State, problem: Problem) -> Trial:
        Jh, diag_h, g_h, d, theta, *solver = state.extra["trf"]
        delta = state.delta
        if isinstance(Jh, torch.Tensor):
            s, V, uf = solver
            p_h, lam = more_step(uf, s, V, delta, state.lam, m=state.n)
            pn = torch.linalg.vector_norm(p_h, dim=-1)
            fit = (lam > 0) & (pn > 0)
            p_h = torch.where(fit[:, None], p_h * (delta / torch.where(fit, pn, 1.0))[:, None],
                              p_h)
        else:
            S, BS, gS = solver
            p_h, lam = subspace_step(S, BS, gS, delta), torch.zeros_like(delta)
        step, step_h, pred = select_step(state.x, Jh, diag_h, g_h, d * p_h, p_h, d, delta,
                                         self.lb, self.ub, theta)
        x_new = make_strictly_feasible(state.x + step, self.lb, self.ub)
        hn = torch.linalg.vector_norm(step_h, dim=-1)
        return Trial(p=step, pnorm=hn, predicted=pred, slope=(state.g * step).sum(-1), lam=lam,
                     extra={"x": x_new, "boundary": hn > 0.95 * delta,
                            "step_norm": torch.linalg.vector_norm(step, dim=-1)})


def transpose_times(J: Any, f: torch.Tensor) -> torch.Tensor:
    """``Jᵀ f`` per problem (``J`` ``(B, m, n)`` or, for one problem, SciPy sparse)."""
    if isinstance(J, torch.Tensor):
        return (J.mT @ f[..., None])[..., 0]
    return torch.as_tensor(J.T @ f[0].numpy(), dtype=f.dtype)[None]
