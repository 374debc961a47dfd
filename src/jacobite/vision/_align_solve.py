"""Batched Levenberg–Marquardt for one pyramid level of :func:`~jacobite.vision.align`.

The residual of pair ``b`` is ``r_b = warp(source_b, θ_b) − target_b`` over the target's
pixels; its Jacobian is a :class:`~jacobite.vision.WarpJacobian` (per-pixel image gradients
from one backward pass of ``grid_sample``, times the coordinate map's Jacobian, which is a
constant of the level for the models linear in ``θ``), whose block ``J_b`` (``C·P × p``) gives
the ``p × p`` system ``(A_b + λ_b diag A_b) δ_b = −g_b`` with ``A_b = J_bᵀ W_b J_b`` and
``g_b = J_bᵀ W_b r_b`` (in float64). ``W_b`` holds the mask, the pixels whose sample point lies
inside the source, and the robust loss's IRLS weights ``ρ'(r²/s²)``. Every pair keeps its own
damping ``λ_b`` and stops on its own; only the pairs still running are evaluated.

>>> import torch
>>> loss_weights("huber", torch.tensor([0.5, 2.0, -4.0]), 1.0)
tensor([1.0000, 0.5000, 0.2500])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._jacobian import WarpJacobian, image_gradients
from ._sample import pixel_grid
from ._warps import MatrixWarp

__all__ = ["LOSSES", "LevelResult", "inside_source", "loss_value", "loss_weights",
           "solve_level"]

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


def inside_source(pts: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Which source points ``(n, P, 2)`` lie inside a ``height × width`` source's pixel
    centres: ``(n, P)`` booleans.

    >>> inside_source(torch.tensor([[[0.0, 0.0], [2.5, 0.0]]]), 1, 3)
    tensor([[ True, False]])
    """
    return ((pts >= 0) & (pts <= pts.new_tensor([width - 1, height - 1]))).all(-1)


def _factors(lvl: Level, src: torch.Tensor,
             params: torch.Tensor) -> tuple[WarpJacobian, torch.Tensor]:
    """The warp Jacobian's factors at ``params``: per-pixel image gradients from one backward
    pass of ``grid_sample`` and the coordinate map's Jacobian (a constant of the level for the
    models linear in ``θ``), with the warped image; and the source points ``(n, P, 2)``."""
    n, c = src.shape[:2]
    h, w = lvl.target.shape[-2:]
    hs, ws = src.shape[-2:]
    pts = lvl.warp.apply(params, lvl.points)  # (n, P, 2)
    # grid_sample's coordinates (align_corners=False): u = (2 x + 1) / W - 1
    scale = pts.new_tensor([2 / ws, 2 / hs])

    def read(plane: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        grid = (where * scale + (scale / 2 - 1)).reshape(n * c, h, w, 2)
        return F.grid_sample(plane, grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)

    grad, out = image_gradients(read, src, pts)  # d/d(pixel x, y)
    jac = (lvl.constant_jacobian.expand(n, -1, -1, -1) if lvl.constant_jacobian is not None
           else lvl.warp.jacobian(params, lvl.points))
    J = WarpJacobian(grad, jac, out.reshape(n, c, h, w))
    return J, pts


def _blocks(J: WarpJacobian, lvl: Level) -> torch.Tensor:
    """``J.blocks()`` in float64. A translation's blocks are the image gradients; with a
    coordinate Jacobian shared by the pairs (the models linear in ``θ``), one matrix product per
    pixel over all pairs; otherwise two broadcast products (the per-pixel ``1 × 2`` times
    ``2 × p`` products written out)."""
    G = J.image_gradient.double()  # (n, C, P, 2)
    n = G.shape[0]
    if lvl.model == "translation":  # the coordinate Jacobian is the identity
        return G.reshape(n, -1, 2)
    M = lvl.constant_jacobian64  # (1, P, 2, p), or None where it depends on θ
    if M is not None:  # one (n·C × 2) @ (2 × p) product per pixel, batched over the pixels
        c, P, p = G.shape[1], M.shape[1], M.shape[-1]
        out = torch.bmm(G.permute(2, 0, 1, 3).reshape(P, n * c, 2), M[0])
        return out.reshape(P, n, c, p).permute(1, 2, 0, 3).reshape(n, c * P, p)
    M = J.coordinate_jacobian.double()  # (n, P, 2, p)
    out = G[..., :1] * M[:, None, :, 0, :] + G[..., 1:] * M[:, None, :, 1, :]
    return out.reshape(n, -1, M.shape[-1])


#: similarity parameters as affine ones, ``θ_affine = T θ``
_SIMILARITY = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0],
                            [1, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)
# A_affine[3k + i, 3l + j] = Σ w g_k g_l z_i z_j with z = (x, y, 1): which of the three
# gradient products (gx², gx gy, gy²) and which of the six monomials (x², xy, x, y², y, 1)
_KL = torch.tensor([[0, 1], [1, 2]])
_IJ = torch.tensor([[0, 1, 2], [1, 3, 4], [2, 4, 5]])
_ROW = torch.arange(6)
_A_KL = _KL[_ROW[:, None] // 3, _ROW[None, :] // 3]
_A_IJ = _IJ[_ROW[:, None] % 3, _ROW[None, :] % 3]


def _normal_equations(J: WarpJacobian, lvl: Level, wts: torch.Tensor,
                      r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``A = Jᵀ W J`` ``(n, p, p)`` and ``g = Jᵀ W r`` ``(n, p)`` in float64 (``wts``, ``r``:
    ``(n, C, P)``).

    For the affine model the Jacobian row of a pixel is ``g ⊗ z`` (image gradient ``g``,
    ``z = (x, y, 1)``), so ``A = Σ w (g gᵀ) ⊗ (z zᵀ)``: three weighted gradient products per
    pixel against six monomials of the pixel position, one ``(3 × P) @ (P × 6)`` product a
    pair; a similarity is an affine map ``θ_affine = T θ``, so ``A = Tᵀ A_affine T``. Other
    models form the blocks and multiply them.
    """
    n = wts.shape[0]
    if lvl.monomials is None:
        blocks = _blocks(J, lvl)  # (n, C·P, p): the structured Jacobian, one block a pair
        wts, r = wts.reshape(n, -1), r.reshape(n, -1)
        g = torch.bmm((wts * r)[:, None, :], blocks)[:, 0]
        return torch.bmm(blocks.transpose(1, 2), blocks * wts[..., None]), g
    G = J.image_gradient.double()  # (n, C, P, 2)
    gx, gy = G[..., 0], G[..., 1]
    prods = torch.stack([(wts * gx * gx).sum(1), (wts * gx * gy).sum(1),
                         (wts * gy * gy).sum(1)], dim=1)  # (n, 3, P)
    q = prods @ lvl.monomials  # (n, 3, 6)
    A = q[:, _A_KL, _A_IJ]
    wr = wts * r
    b = torch.stack([(wr * gx).sum(1), (wr * gy).sum(1)], dim=1)  # (n, 2, P)
    g = (b @ lvl.monomials[:, [2, 4, 5]]).reshape(n, 6)  # against z = (x, y, 1)
    if lvl.model == "similarity":
        T = _SIMILARITY.to(A.device)
        return T.T @ A @ T, g @ T
    return A, g


class _Eval:
    """Residuals, weights and normal equations of some pairs at some parameters."""

    def __init__(self, lvl: Level, idx: torch.Tensor | None, params: torch.Tensor) -> None:
        if idx is None:
            src, tgt, mask, scale = lvl.source, lvl.target, lvl.mask, lvl.scale
        else:
            src, tgt, mask, scale = (lvl.source[idx], lvl.target[idx], lvl.mask[idx],
                                     lvl.scale[idx])
        J, pts = _factors(lvl, src, params)
        n, c = tgt.shape[:2]
        inside = inside_source(pts, *src.shape[-2:])
        wmask = (mask * inside.to(mask.dtype)).double()  # (n, P)
        assert J.warped is not None
        r = (J.warped - tgt).reshape(n, c, -1).double()
        base = wmask[:, None, :].expand_as(r)
        self.coverage = wmask.sum(-1) / mask.double().sum(-1).clamp_min(1e-300)
        if lvl.loss == "linear":
            wts = base.reshape(n, -1)
            self.cost = 0.5 * (wts * (r * r).reshape(n, -1)).sum(-1)
        else:
            s = scale[:, None, None]
            self.cost = 0.5 * (base * loss_value(lvl.loss, r, s)).sum((1, 2))
            wts = (base * loss_weights(lvl.loss, r, s)).reshape(n, -1)
        self.A, self.g = _normal_equations(J, lvl, wts.reshape(n, c, -1), r)
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
        linear = self.model in ("translation", "similarity", "affine")
        zero = self.warp.identity(1, self.target.dtype, self.target.device)
        self.constant_jacobian = self.warp.jacobian(zero, self.points) if linear else None
        self.constant_jacobian64 = (None if self.constant_jacobian is None
                                    else self.constant_jacobian.double())
        self.monomials: torch.Tensor | None = None  # (P, 6): x², xy, x, y², y, 1
        if self.model in ("similarity", "affine"):
            x, y = self.points.double().unbind(-1)
            self.monomials = torch.stack([x * x, x * y, x, y * y, y, torch.ones_like(x)], -1)
        corners = [[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]]
        self.corners = torch.tensor(corners, dtype=torch.float64, device=self.target.device)


def _motion(lvl: Level, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The largest corner displacement between the maps of parameters ``a`` and ``b``."""
    pa = lvl.warp.apply(a.double(), lvl.corners)
    pb = lvl.warp.apply(b.double(), lvl.corners)
    return (pa - pb).norm(dim=-1).amax(-1)


def _step(e: _Eval, lam: torch.Tensor) -> torch.Tensor:
    d = torch.diagonal(e.A, dim1=-2, dim2=-1)
    floor = (d.amax(-1, keepdim=True) * 1e-12).clamp_min(1e-300)
    damp = (1 + lam[:, None]) * d.clamp_min(0) + floor
    A = e.A.diagonal_scatter(damp, dim1=-2, dim2=-1)
    return -torch.linalg.solve(A, e.g[..., None])[..., 0]


def solve_level(lvl: Level, params: torch.Tensor) -> LevelResult:
    """Run every pair's LM iteration on ``lvl`` from ``params`` ``(B, p)``.

    A pair stops when its next step would move no image corner by more than ``lvl.tol``
    pixels (the step is taken, unevaluated: converged), when no damping makes a step lower
    its cost (converged: a minimum to working precision), when it leaves the overlap or goes
    non-finite (diverged), or after ``lvl.max_iter`` steps.
    """
    nb = params.shape[0]
    dev = params.device
    params = params.clone()
    its = torch.zeros(nb, dtype=torch.int64, device=dev)
    code = torch.ones(nb, dtype=torch.int64, device=dev)  # max_iterations until shown otherwise
    lam = torch.full((nb,), 1e-4, dtype=torch.float64, device=dev)
    active = torch.arange(nb, device=dev)
    cur = _Eval(lvl, None, params)
    cost = cur.cost.clone()
    bad = ~torch.isfinite(cost) | (cur.coverage < lvl.min_coverage)
    code[bad] = 2
    active, cur = _keep(active, cur, ~bad)
    while active.numel():
        delta = _step(cur, lam[active])
        trial = (cur.params.double() + delta).to(params.dtype)
        finite = torch.isfinite(delta).all(-1)
        small = finite & (_motion(lvl, trial, cur.params) <= lvl.tol)
        if bool(small.any()):  # converged: take the last, tiny step
            done = active[small]
            params[done], code[done] = trial[small], 0
            its[done] += 1
            active, cur = _keep(active, cur, ~small)
            delta, trial, finite = delta[~small], trial[~small], finite[~small]
            if not active.numel():
                break
        new = _Eval(lvl, None if active.numel() == nb else active, trial)
        its[active] += 1
        accept = (finite & torch.isfinite(new.cost) & (new.cost <= cur.cost)
                  & (new.coverage >= lvl.min_coverage))
        lam[active] = torch.where(accept, lam[active] * 0.1, lam[active] * 10).clamp(1e-12, 1e12)
        cur = _merge(cur, new, accept)
        params[active] = cur.params
        cost[active] = cur.cost
        lost = ~finite | (new.coverage < lvl.min_coverage)  # never accepted
        stuck = (lam[active] >= 1e12) & ~lost
        code[active] = torch.where(stuck, 0, torch.where(lost, 2, code[active]))
        active, cur = _keep(active, cur, ~(stuck | lost | (its[active] >= lvl.max_iter)))
    return LevelResult(params, its, code, cost)


def _keep(active: torch.Tensor, cur: _Eval, keep: torch.Tensor) -> tuple[torch.Tensor, _Eval]:
    return (active, cur) if bool(keep.all()) else (active[keep], _subset(cur, keep))


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
