"""Batched Levenberg–Marquardt for one pyramid level of :func:`~jacobite.vision.align`.

The residual of pair ``b`` is ``r_b = warp(source_b, θ_b) − target_b`` over the target's
pixels; the Jacobian's block ``J_b`` (``C·P × p``) comes from
:func:`~jacobite.vision.warp_jacobian`, and each step solves the ``p × p`` system
``(A_b + λ_b diag A_b) δ_b = −g_b`` with ``A_b = J_bᵀ W_b J_b`` and ``g_b = J_bᵀ W_b r_b`` (in
float64). ``W_b`` holds the mask, the pixels whose sample point lies inside the source, and the
robust loss's IRLS weights ``ρ'(r²/s²)``. Every pair keeps its own damping ``λ_b`` and stops on
its own; only the pairs still running are evaluated.

>>> import torch
>>> loss_weights("huber", torch.tensor([0.5, 2.0, -4.0]), 1.0)
tensor([1.0000, 0.5000, 0.2500])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._jacobian import warp_jacobian
from ._sample import pixel_grid
from ._warps import MatrixWarp

__all__ = ["LOSSES", "LevelResult", "loss_value", "loss_weights", "solve_level"]

#: robust losses ``ρ(z)`` of the scaled squared residual ``z = r² / s²``
LOSSES = ("linear", "huber", "soft_l1", "cauchy")


def loss_value(loss: str, r: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """``s² ρ(r² / s²)`` elementwise (``ρ(z) = z`` for ``"linear"``).

    >>> loss_value("cauchy", torch.tensor([0.0, 1.0]), 1.0)
    tensor([0.0000, 0.6931])
    """
    if loss == "linear":
        return r * r
    z = (r / scale) ** 2
    if loss == "huber":
        rho = torch.where(z <= 1, z, 2 * z.clamp_min(1).sqrt() - 1)
    elif loss == "soft_l1":
        rho = 2 * ((1 + z).sqrt() - 1)
    else:
        rho = torch.log1p(z)
    return rho * scale**2


def loss_weights(loss: str, r: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """The IRLS weights ``ρ'(r² / s²)``."""
    if loss == "linear":
        return torch.ones_like(r)
    z = (r / scale) ** 2
    if loss == "huber":
        return torch.where(z <= 1, torch.ones_like(z), z.clamp_min(1).rsqrt())
    if loss == "soft_l1":
        return (1 + z).rsqrt()
    return 1 / (1 + z)


@dataclass
class LevelResult:
    """Where each pair ended on one level."""

    params: torch.Tensor  # (B, p)
    iterations: torch.Tensor  # (B,) int64
    code: torch.Tensor  # (B,) int64: 0 converged, 1 max_iterations, 2 diverged
    cost: torch.Tensor  # (B,) float64


class _Eval:
    """Residuals, weights and normal equations of some pairs at some parameters."""

    def __init__(self, lvl: Level, idx: torch.Tensor, params: torch.Tensor) -> None:
        src, tgt, mask = lvl.source[idx], lvl.target[idx], lvl.mask[idx]
        J = warp_jacobian(src, lvl.model, params, size=tgt.shape[-2:])
        with torch.no_grad():
            n, c = tgt.shape[:2]
            pts = lvl.warp.apply(params, lvl.points)  # (n, P, 2)
            h, w = src.shape[-2:]
            inside = ((pts[..., 0] >= 0) & (pts[..., 0] <= w - 1) & (pts[..., 1] >= 0)
                      & (pts[..., 1] <= h - 1))
            wmask = (mask * inside.to(mask.dtype)).double()  # (n, P)
            assert J.warped is not None
            r = (J.warped - tgt).reshape(n, c, -1).double()
            base = wmask[:, None, :].expand_as(r)
            self.coverage = wmask.sum(-1) / mask.double().sum(-1).clamp_min(1e-300)
            scale = lvl.scale[idx][:, None, None]
            self.cost = 0.5 * (base * loss_value(lvl.loss, r, scale)).sum((1, 2))
            wts = (base * loss_weights(lvl.loss, r, scale)).reshape(n, -1)
            blocks = J.blocks().double()  # (n, C·P, p)
            self.g = torch.einsum("bm,bmj->bj", wts * r.reshape(n, -1), blocks)
            self.A = torch.einsum("bmi,bmj->bij", blocks * wts[..., None], blocks)
            self.params = params


@dataclass
class Level:
    """One level's images ``(B, C, H, W)``, target-pixel mask ``(B, P)`` and options."""

    source: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    model: str
    loss: str
    scale: torch.Tensor  # (B,) robust loss scale
    max_iter: int
    tol: float
    min_coverage: float = 0.25

    def __post_init__(self) -> None:
        self.warp = MatrixWarp(self.model)
        h, w = self.target.shape[-2:]
        self.points = pixel_grid(h, w, self.target.dtype, self.target.device)
        corners = [[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]]
        self.corners = torch.tensor(corners, dtype=torch.float64, device=self.target.device)


def _motion(lvl: Level, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The largest corner displacement between the maps of parameters ``a`` and ``b``."""
    pa = lvl.warp.apply(a.double(), lvl.corners)
    pb = lvl.warp.apply(b.double(), lvl.corners)
    return (pa - pb).norm(dim=-1).amax(-1)


def _step(e: _Eval, lam: torch.Tensor) -> torch.Tensor:
    d = torch.diagonal(e.A, dim1=-2, dim2=-1)
    floor = d.amax(-1, keepdim=True).clamp_min(1e-300) * 1e-12
    damp = (1 + lam[:, None]) * d.clamp_min(0) + floor
    A = e.A - torch.diag_embed(d) + torch.diag_embed(damp)
    return -torch.linalg.solve(A, e.g[..., None])[..., 0]


def solve_level(lvl: Level, params: torch.Tensor) -> LevelResult:
    """Run every pair's LM iteration on ``lvl`` from ``params`` ``(B, p)``."""
    nb = params.shape[0]
    dev = params.device
    params = params.clone()
    its = torch.zeros(nb, dtype=torch.int64, device=dev)
    code = torch.ones(nb, dtype=torch.int64, device=dev)  # max_iterations until shown otherwise
    lam = torch.full((nb,), 1e-4, dtype=torch.float64, device=dev)
    active = torch.arange(nb, device=dev)
    cur = _Eval(lvl, active, params)
    cost = cur.cost.clone()
    bad = ~torch.isfinite(cost) | (cur.coverage < lvl.min_coverage)
    code[bad] = 2
    keep = ~bad
    active, cur = active[keep], _subset(cur, keep)
    while active.numel():
        delta = _step(cur, lam[active])
        trial = (cur.params.double() + delta).to(params.dtype)
        new = _Eval(lvl, active, trial)
        its[active] += 1
        finite = torch.isfinite(new.cost) & torch.isfinite(delta).all(-1)
        accept = finite & (new.cost <= cur.cost) & (new.coverage >= lvl.min_coverage)
        moved = _motion(lvl, trial, cur.params)
        small = moved <= lvl.tol
        lam[active] = torch.where(accept, lam[active] * 0.1, lam[active] * 10).clamp(1e-12, 1e12)
        cur = _merge(cur, new, accept)
        params[active] = cur.params
        cost[active] = cur.cost
        lost = ~torch.isfinite(delta).all(-1) | (new.coverage < lvl.min_coverage) & (~accept)
        stuck = lam[active] >= 1e12
        done = small | stuck | lost | (its[active] >= lvl.max_iter)
        code[active] = torch.where(small | (stuck & ~lost), 0,
                                   torch.where(lost, 2, code[active]))
        keep = ~done
        active, cur = active[keep], _subset(cur, keep)
    return LevelResult(params, its, code, cost)


_FIELDS = ("coverage", "cost", "g", "A", "params")


def _subset(e: _Eval, keep: torch.Tensor) -> _Eval:
    out = _Eval.__new__(_Eval)
    for k in _FIELDS:
        setattr(out, k, getattr(e, k)[keep])
    return out


def _merge(old: _Eval, new: _Eval, accept: torch.Tensor) -> _Eval:
    out = _Eval.__new__(_Eval)
    for k in _FIELDS:
        a, b = getattr(old, k), getattr(new, k)
        m = accept.reshape(-1, *([1] * (a.dim() - 1)))
        setattr(out, k, torch.where(m, b, a))
    return out
