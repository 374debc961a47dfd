"""``x = T⁻¹(y)`` for a batched invertible map: vectorised Newton, :func:`jacobite.root` as backup.

All samples take Newton steps together (per-sample Jacobians by :func:`jacobite.batch_jacobian`,
one batched ``solve``, a per-sample backtracking on ``‖T(x) − y‖``). Samples still unsolved
after the iteration limit go to :func:`jacobite.root` one at a time; one that root cannot solve
raises :class:`~jacobite.errors.ConvergenceError`. Under ``torch.func.vmap`` (no values can be
read) the iteration count is fixed and an unsolved sample becomes NaN, never a wrong number.
A last Newton step taken with autograd on (the Jacobian held fixed) makes ``x`` differentiable
in ``y`` and in whatever ``T`` closes over, to first order (the implicit function rule).

>>> import torch
>>> y = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
>>> x = invert(lambda v: v + 0.1 * v ** 3, y)
>>> torch.allclose(x + 0.1 * x ** 3, y)
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..._validate import under_vmap
from ...dense import batch_jacobian
from ...errors import ConvergenceError

__all__ = ["invert"]

Map = Callable[[torch.Tensor], torch.Tensor]


def _one(T: Map) -> Map:
    return lambda xi: T(xi[None])[0]


def _tolerance(y: torch.Tensor) -> torch.Tensor:
    eps = torch.finfo(y.dtype).eps
    return 16 * eps * (1 + y.abs().amax(-1))


def invert(T: Map, y: torch.Tensor, *, max_iter: int = 50) -> torch.Tensor:
    """Solve ``T(x) = y`` for each row of ``y`` (shape ``(B, D)``), started at ``x = y``."""
    vmapped = under_vmap(y)
    with torch.no_grad():
        yd = y.detach()
        x = yd.clone()
        r = T(x) - yd
        norm = r.abs().amax(-1)
        tol = _tolerance(yd)
        for _ in range(max_iter):
            if not vmapped and bool((norm <= tol).all()):
                break
            step = _newton_step(batch_jacobian(_one(T), x, check_finite=False), r)
            t = torch.ones_like(norm)
            for _ in range(12):  # per-sample backtracking on the max-norm residual
                cand = x - t[..., None] * step
                rc = T(cand) - yd
                nc = rc.abs().amax(-1)
                better = nc < norm
                x = torch.where(better[..., None], cand, x)
                r = torch.where(better[..., None], rc, r)
                norm = torch.where(better, nc, norm)
                t = torch.where(better, torch.zeros_like(t), t / 2)
                if not vmapped and bool((t == 0).all()):
                    break
        solved = norm <= tol
        if vmapped:
            x = torch.where(solved[..., None], x, torch.full_like(x, torch.nan))
        elif not bool(solved.all()):
            for i in (~solved).nonzero()[:, 0].tolist():
                x[i] = _by_root(T, yd[i])
    J = batch_jacobian(_one(T), x, check_finite=False).detach()
    return x - _newton_step(J, T(x) - y)


def _newton_step(J: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``J⁻¹ r`` per sample; zero where ``J`` is singular or the step is not finite."""
    step, info = torch.linalg.solve_ex(J, r[..., None])
    step = step[..., 0]
    ok = (info == 0)[..., None] & torch.isfinite(step)
    return torch.where(ok, step, torch.zeros_like(step))


def _by_root(T: Map, yi: torch.Tensor) -> torch.Tensor:
    from ...solvers import root  # loaded on use: SciPy comes with the solvers

    def residual(x: torch.Tensor) -> torch.Tensor:
        return T(x[None].to(yi.dtype))[0].to(x.dtype) - yi.to(x.dtype)

    res = root(residual, yi)
    if not res.success:
        raise ConvergenceError(
            f"could not invert the transform at y = {yi.tolist()}: Newton's method and root "
            f"({res.message}) both failed; pass inverse=… (a batched T⁻¹) or check that the "
            f"transform is invertible there")
    return res.x.to(yi.dtype)
