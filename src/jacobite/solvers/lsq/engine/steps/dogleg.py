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

import torch

from ..box import in_bounds, minimize_quadratic_1d, quadratic_1d, step_to_bound

__all__ = ["active_set", "dogleg_step", "newton_step"]


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


def cauchy_coefficients(J: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
