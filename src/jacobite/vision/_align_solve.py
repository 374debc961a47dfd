"""Batched Levenberg–Marquardt for one pyramid level of :func:`~jacobite.vision.align`.

The residual of pair ``b`` is ``r_b = warp(source_b, θ_b) − target_b`` over the target's
pixels; its Jacobian has the structure of a :class:`~jacobite.vision.WarpJacobian` (per-pixel
image gradients from one backward pass of ``grid_sample``, times the coordinate map's
Jacobian), whose block ``J_b`` (``C·P × p``) gives the ``p × p`` system
``(A_b + λ_b diag A_b) δ_b = −g_b`` with ``A_b = J_bᵀ W_b J_b`` and ``g_b = J_bᵀ W_b r_b``
(in float64, formed from the gradients without forming ``J_b``: :mod:`._align_normal`).
A level is a forward-additive :class:`Level` (``θ ← θ + δ``) or an inverse-compositional one
(:mod:`._align_ic`); the iteration here takes either. ``W_b`` holds the mask, the pixels
whose sample point lies inside the source, and the robust loss's IRLS weights ``ρ'(r²/s²)``.
Every pair keeps its own damping ``λ_b`` and stops on its own; only the pairs still running
are evaluated.

>>> import torch
>>> loss_weights("huber", torch.tensor([0.5, 2.0, -4.0]), 1.0)
tensor([1.0000, 0.5000, 0.2500])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from ._align_grid import sample, source_grid
from ._align_normal import normal_equations
from ._jacobian import image_gradients
from ._sample import pixel_grid
from ._warps import MatrixWarp

__all__ = ["LOSSES", "LevelResult", "loss_value", "loss_weights",
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


def _factors(lvl: Level, src: torch.Tensor,
             params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pixel image gradients ``(n, C, P, 2)`` (in pixels) at ``params`` from one backward
    pass of ``grid_sample``, the warped image ``(n, C, h, w)`` and which target pixels
    ``(n, P)`` read inside the source."""
    n, c = src.shape[:2]
    h, w = lvl.target.shape[-2:]
    hs, ws = src.shape[-2:]
    grid, inside = source_grid(lvl.model, params, h, w, (hs, ws))
    grad, out = image_gradients(lambda plane, where: sample(plane, where.reshape(-1, h, w, 2)),
                                src, grid.reshape(n, h * w, 2))
    # d/d(pixel x) = d/du · du/dx with u = (2 x + 1) / Ws − 1
    return grad * grad.new_tensor([2 / ws, 2 / hs]), out.reshape(n, c, h, w), inside


class Evaluation:
    """Cost, normal equations and coverage of some pairs at some parameters (the fields
    that the iteration keeps, subsets and merges)."""

    FIELDS = ("coverage", "cost", "pixel_cost", "compared", "g", "A", "params")
    coverage: torch.Tensor  # (n,) the share of the mask's weight sampled inside the source
    cost: torch.Tensor  # (n,) float64
    pixel_cost: torch.Tensor  # (n, P) float64: each target pixel's share of cost, 0 outside
    compared: torch.Tensor  # (n, P) bool: the pixels in the cost (weighted, inside the source)
    g: torch.Tensor  # (n, p) float64
    A: torch.Tensor  # (n, p, p) float64
    params: torch.Tensor  # (n, p)

    def weigh(self, lvl: Level, scale: torch.Tensor, mask: torch.Tensor, inside: torch.Tensor,
              r: torch.Tensor) -> torch.Tensor:
        """Set ``coverage`` and ``cost`` from the residuals ``r`` ``(n, C, P)`` (float64) and
        return the IRLS weights ``(n, C, P)``, zero outside the mask and the source."""
        wmask = mask * inside  # (n, P), float64
        self.compared = wmask > 0
        self.coverage = wmask.sum(-1) / mask.sum(-1).clamp_min(1e-300)
        base = wmask[:, None, :].expand_as(r)
        s = scale[:, None, None]
        rho = loss_value(lvl.loss, r, s)
        self.pixel_cost = 0.5 * wmask * rho.sum(1)
        self.cost = self.pixel_cost.sum(-1)
        if lvl.loss == "linear":
            return base
        return base * self.irls(lvl, loss_weights(lvl.loss, r, s))

    def irls(self, lvl: Level, weights: torch.Tensor) -> torch.Tensor:
        """The robust loss's weights ``(n, C, P)`` as the step uses them."""
        return weights


class _Eval(Evaluation):
    """The forward-additive evaluation: image gradients at the parameters, one backward pass
    of the sampler."""

    def __init__(self, lvl: Level, idx: torch.Tensor | None, params: torch.Tensor) -> None:
        src, tgt, mask, scale = lvl.pairs(idx)
        G, warped, inside = _factors(lvl, src, params)
        n, c = tgt.shape[:2]
        r = (warped - tgt).reshape(n, c, -1).double()
        wts = self.weigh(lvl, scale, mask, inside, r)
        self.A, self.g = normal_equations(G, lvl, params, wts, r)
        self.params = params


@dataclass
class Level:
    """One level's images ``(B, C, H, W)``, target-pixel mask ``(B, P)`` and options; the
    forward-additive parametrisation (``θ ← θ + δ``)."""

    source: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor  # (B, P) weights, kept in float64
    model: str
    loss: str
    scale: torch.Tensor  # (B,) robust loss scale
    max_iter: int
    tol: float
    min_coverage: float = 0.25

    def __post_init__(self) -> None:
        self.warp = MatrixWarp(self.model)
        self.mask = self.mask.double()
        h, w = self.target.shape[-2:]
        corners = [[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]]
        self.corners = torch.tensor(corners, dtype=torch.float64, device=self.target.device)

    @cached_property
    def points(self) -> torch.Tensor:
        """The target's pixel centres ``(P, 2)``."""
        h, w = self.target.shape[-2:]
        return pixel_grid(h, w, self.target.dtype, self.target.device)

    @cached_property
    def monomials(self) -> torch.Tensor:
        """``(P, 6)``: ``x², xy, x, y², y, 1`` of the target's pixels, float64."""
        x, y = self.points.double().unbind(-1)
        return torch.stack([x * x, x * y, x, y * y, y, torch.ones_like(x)], -1)

    def pairs(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Source, target, mask and loss scale of the pairs ``idx`` (all for ``None``)."""
        if idx is None:
            return self.source, self.target, self.mask, self.scale
        return self.source[idx], self.target[idx], self.mask[idx], self.scale[idx]

    def evaluate(self, idx: torch.Tensor | None, params: torch.Tensor) -> Evaluation:
        """The pairs ``idx`` (all for ``None``) at ``params``."""
        return _Eval(self, idx, params)

    def update(self, params: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The parameters after the step ``delta`` (float64) solved for at ``params``."""
        return (params.double() + delta).to(params.dtype)


def _motion(lvl: Level, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The largest corner displacement between the maps of parameters ``a`` and ``b``."""
    pa = lvl.warp.apply(a.double(), lvl.corners)
    pb = lvl.warp.apply(b.double(), lvl.corners)
    return (pa - pb).norm(dim=-1).amax(-1)


def _descends(cur: Evaluation, new: Evaluation) -> torch.Tensor:
    """``(n,)``: whether the trial ``new`` costs no more than ``cur`` over the target pixels
    compared at both parameters.

    The full sums run over different pixel sets (a pixel whose sample leaves the source drops
    out of the cost), so comparing them rewards a step for pushing pixels out of the overlap:
    the iteration could lower its sum that way and settle far from the images' match. The
    mean over each set's own pixels would still reward dropping the worst-matched pixels, and
    charging the pixels outside a fixed price biases the minimum towards more overlap. Over
    the pixels that both parameters compare the test is a plain descent test of one function,
    the one the Gauss–Newton step linearises there: neither losing nor gaining pixels counts,
    and a step short enough to keep the set is accepted exactly when it lowers the cost.

    >>> class E:
    ...     def __init__(self, cost, compared):
    ...         self.pixel_cost, self.compared = torch.tensor([cost]), torch.tensor([compared])
    >>> # the trial drops the worst pixel and matches the one kept worse: rejected
    >>> bool(_descends(E([1.0, 9.0], [True, True]), E([2.0, 0.0], [True, False]))[0])
    False
    """
    both = cur.compared & new.compared
    return (new.pixel_cost * both).sum(-1) <= (cur.pixel_cost * both).sum(-1)


def _step(e: Evaluation, lam: torch.Tensor) -> torch.Tensor:
    d = torch.diagonal(e.A, dim1=-2, dim2=-1)
    floor = (d.amax(-1, keepdim=True) * 1e-12).clamp_min(1e-300)
    damp = (1 + lam[:, None]) * d.clamp_min(0) + floor
    A = e.A.diagonal_scatter(damp, dim1=-2, dim2=-1)
    return -torch.linalg.solve(A, e.g[..., None])[..., 0]


def solve_level(lvl: Level, params: torch.Tensor) -> LevelResult:
    """Run every pair's LM iteration on ``lvl`` from ``params`` ``(B, p)``.

    A pair stops when its next step would move no image corner by more than ``lvl.tol``
    pixels (the step is taken, unevaluated: converged), when no damping makes a step lower
    its cost over the pixels compared before and after it (converged: a minimum to working
    precision; see :func:`_descends`), when it leaves the overlap or goes
    non-finite (diverged), or after ``lvl.max_iter`` steps.
    """
    nb = params.shape[0]
    dev = params.device
    params = params.clone()
    its = torch.zeros(nb, dtype=torch.int64, device=dev)
    code = torch.ones(nb, dtype=torch.int64, device=dev)  # max_iterations until shown otherwise
    cur = lvl.evaluate(None, params)
    cost = cur.cost.clone()
    run = _Running(torch.arange(nb, device=dev), cur,
                   torch.full((nb,), 1e-4, dtype=torch.float64, device=dev),
                   torch.zeros(nb, dtype=torch.int64, device=dev))
    bad = ~torch.isfinite(cost) | (cur.coverage < lvl.min_coverage)
    if bool(bad.any()):
        code[bad] = 2
        run = run.keep(~bad)
    while run.active.numel():
        cur = run.cur
        delta = _step(cur, run.lam)
        trial = lvl.update(cur.params, delta)
        finite = torch.isfinite(delta).all(-1) & torch.isfinite(trial).all(-1)
        small = finite & (_motion(lvl, trial, cur.params) <= lvl.tol)
        if bool(small.any()):  # converged: take the last, tiny step
            done = run.active[small]
            params[done], code[done], its[done] = trial[small], 0, run.its[small] + 1
            cost[done] = cur.cost[small]
            run = run.keep(~small)
            trial, finite = trial[~small], finite[~small]
            if not run.active.numel():
                break
            cur = run.cur
        new = lvl.evaluate(None if run.active.numel() == nb else run.active, trial)
        run.its = run.its + 1
        accept = (finite & torch.isfinite(new.cost) & _descends(cur, new)
                  & (new.coverage >= lvl.min_coverage))
        run.lam = torch.where(accept, run.lam * 0.1, run.lam * 10).clamp(1e-12, 1e12)
        run.cur = cur = _merge(cur, new, accept)
        lost = ~finite | (new.coverage < lvl.min_coverage)  # never accepted
        stuck = (run.lam >= 1e12) & ~lost
        stop = stuck | lost | (run.its >= lvl.max_iter)
        if bool(stop.any()):
            done = run.active[stop]
            params[done], cost[done], its[done] = cur.params[stop], cur.cost[stop], run.its[stop]
            code[done] = torch.where(stuck[stop], 0, torch.where(lost[stop], 2, 1))
            run = run.keep(~stop)
    return LevelResult(params, its, code, cost)


@dataclass
class _Running:
    """The pairs still iterating (``active``: their rows in the batch) with their evaluation
    at the current parameters, damping and step count, one row per pair."""

    active: torch.Tensor
    cur: Evaluation
    lam: torch.Tensor
    its: torch.Tensor

    def keep(self, keep: torch.Tensor) -> _Running:
        return _Running(self.active[keep], _subset(self.cur, keep), self.lam[keep],
                        self.its[keep])


def _subset(e: Evaluation, keep: torch.Tensor) -> Evaluation:
    out = Evaluation.__new__(Evaluation)
    for k in Evaluation.FIELDS:
        setattr(out, k, getattr(e, k)[keep])
    return out


def _merge(old: Evaluation, new: Evaluation, accept: torch.Tensor) -> Evaluation:
    if bool(accept.all()):
        return new
    out = Evaluation.__new__(Evaluation)
    for k in Evaluation.FIELDS:
        a, b = getattr(old, k), getattr(new, k)
        m = accept.reshape(-1, *([1] * (a.dim() - 1)))
        setattr(out, k, torch.where(m, b, a))
    return out
