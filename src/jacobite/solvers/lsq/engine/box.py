"""Box-constraint geometry for batched least squares (torch, batch-first).

Every function works on a batch of ``B`` problems at once: points, steps, gradients and the bounds
``lb``, ``ub`` are ``(B, n)`` tensors (one box per problem; ``±inf`` where a side is open), and a
per-problem scalar is a ``(B,)`` tensor. Nothing loops over the batch in Python; a problem never
sees another's numbers. The quadratic helpers describe the Gauss–Newton model
``q(s) = ½ sᵀ (JᵀJ + diag(c)) s + gᵀ s`` with ``J`` a ``(B, m, n)`` tensor (or, for one
problem, a SciPy sparse matrix).

>>> import torch
>>> x = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
>>> t, hits = step_to_bound(x, torch.tensor([[1.0, 1.0]], dtype=torch.float64),
...                         torch.zeros(1, 2, dtype=torch.float64),
...                         torch.tensor([[1.0, 2.0]], dtype=torch.float64))
>>> t.tolist(), hits.tolist()
([0.5], [[1, 0]])
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "cl_scaling",
    "evaluate_quadratic",
    "find_active",
    "in_bounds",
    "make_strictly_feasible",
    "minimize_quadratic_1d",
    "quadratic_1d",
    "step_to_bound",
]


def in_bounds(x: torch.Tensor, lb: torch.Tensor, ub: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: every entry of the problem's point lies in its box (bounds included)."""
    return ((x >= lb) & (x <= ub)).all(dim=-1)


def step_to_bound(x: torch.Tensor, s: torch.Tensor, lb: torch.Tensor,
                  ub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest ``t >= 0`` (per problem) with ``x + t s`` in the box, and which bounds stop it.

    Returns ``(t, hits)``: ``t`` is ``(B,)`` (``inf`` where ``s = 0`` or only open sides lie
    ahead), ``hits`` is ``(B, n)`` int64 with ``-1`` / ``+1`` where the lower / upper bound is
    reached at ``t`` and ``0`` elsewhere.

    >>> import torch
    >>> z = torch.zeros(1, 1, dtype=torch.float64)
    >>> step_to_bound(z, -torch.ones(1, 1, dtype=torch.float64), z - 2, z + 1)[0].tolist()
    [2.0]
    """
    moving = s != 0
    safe = torch.where(moving, s, torch.ones_like(s))
    per = torch.maximum((lb - x) / safe, (ub - x) / safe)
    per = torch.where(moving, per, torch.full_like(per, torch.inf))
    t = per.amin(dim=-1)
    hits = (per == t[:, None]).to(torch.int64) * torch.sign(s).to(torch.int64)
    return t, hits


def find_active(x: torch.Tensor, lb: torch.Tensor, ub: torch.Tensor,
                rtol: float = 1e-10) -> torch.Tensor:
    """``(B, n)`` int64: ``-1`` where ``x`` sits on (within ``rtol`` of) its lower bound, ``+1`` on
    its upper bound, ``0`` inside; ``rtol = 0`` asks for ``x <= lb`` / ``x >= ub`` exactly."""
    active = torch.zeros(x.shape, dtype=torch.int64, device=x.device)
    if rtol == 0:
        active = torch.where(x <= lb, -1, active)
        return torch.where(x >= ub, 1, active)
    lo, up = x - lb, ub - x
    lo_tol = rtol * torch.clamp(lb.abs(), min=1.0)
    up_tol = rtol * torch.clamp(ub.abs(), min=1.0)
    active = torch.where(lb.isfinite() & (lo <= torch.minimum(up, lo_tol)), -1, active)
    return torch.where(ub.isfinite() & (up <= torch.minimum(lo, up_tol)), 1, active)


def make_strictly_feasible(x: torch.Tensor, lb: torch.Tensor, ub: torch.Tensor) -> torch.Tensor:
    """``x`` with every entry on or beyond a bound moved one ulp inside it (the midpoint where
    the box is too narrow for that); entries strictly inside are returned unchanged."""
    out = torch.where(x <= lb, torch.nextafter(lb, ub), x)
    out = torch.where(x >= ub, torch.nextafter(ub, lb), out)
    tight = (out < lb) | (out > ub)
    return torch.where(tight, 0.5 * (lb + ub), out)


def cl_scaling(x: torch.Tensor, g: torch.Tensor, lb: torch.Tensor,
               ub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coleman and Li's scaling ``(v, dv)``: ``v`` is the distance to the bound the negative
    gradient points at (``1`` where that side is open or ``g = 0``), ``dv`` its derivative in
    ``x`` (``±1`` or ``0``)."""
    up = (g < 0) & ub.isfinite()
    down = (g > 0) & lb.isfinite()
    one = torch.ones_like(x)
    v = torch.where(up, ub - x, torch.where(down, x - lb, one))
    dv = torch.where(up, -one, torch.where(down, one, torch.zeros_like(x)))
    return v, dv


def _bmv(J: Any, s: torch.Tensor) -> torch.Tensor:
    """``J s`` per problem: ``J`` ``(B, m, n)``, or a SciPy sparse matrix for one problem."""
    if isinstance(J, torch.Tensor):
        return (J @ s.unsqueeze(-1)).squeeze(-1)
    from .sparse import matvec

    return matvec(J, s)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=-1)


def quadratic_1d(J: Any, g: torch.Tensor, s: torch.Tensor,
                 diag: torch.Tensor | None = None, s0: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coefficients ``(a, b, c)``, each ``(B,)``, of ``t ↦ q(s0 + t s) = a t² + b t + c`` for the
    model ``q`` of ``J``, ``g`` and ``diag`` (``s0 = 0``: ``c = 0``)."""
    Js = _bmv(J, s)
    a = _dot(Js, Js)
    if diag is not None:
        a = a + _dot(s * diag, s)
    a = 0.5 * a
    b = _dot(g, s)
    if s0 is None:
        return a, b, torch.zeros_like(b)
    Js0 = _bmv(J, s0)
    b = b + _dot(Js0, Js)
    c = 0.5 * _dot(Js0, Js0) + _dot(g, s0)
    if diag is not None:
        b = b + _dot(s0 * diag, s)
        c = c + 0.5 * _dot(s0 * diag, s0)
    return a, b, c


def minimize_quadratic_1d(a: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                          c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per problem, the minimiser and minimum of ``a t² + b t + c`` over ``[lo, hi]`` (finite
    ends): the better end, or the stationary point where it lies strictly inside. Ties go to
    ``lo``, then ``hi``."""
    c = torch.zeros_like(a) if c is None else c
    safe_a = torch.where(a != 0, a, torch.ones_like(a))
    ext = -0.5 * b / safe_a
    inside = (a != 0) & (lo < ext) & (ext < hi)
    ts = torch.stack([lo, hi, torch.where(inside, ext, lo)], dim=-1)
    ys = ts * (a[:, None] * ts + b[:, None]) + c[:, None]
    k = ys.argmin(dim=-1, keepdim=True)
    return ts.gather(-1, k).squeeze(-1), ys.gather(-1, k).squeeze(-1)


def evaluate_quadratic(J: Any, g: torch.Tensor, s: torch.Tensor,
                       diag: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)``: the model value ``½ sᵀ (JᵀJ + diag) s + gᵀ s`` per problem."""
    Js = _bmv(J, s)
    q = _dot(Js, Js)
    if diag is not None:
        q = q + _dot(s * diag, s)
    return 0.5 * q + _dot(s, g)
