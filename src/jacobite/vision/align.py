"""Image alignment by Gauss–Newton / Levenberg–Marquardt on the structured warp Jacobian.

:func:`align` finds the parameters ``θ`` of a matrix model for which the warped source matches
the target, ``source(W(p; θ)) ≈ target(p)`` at every target pixel ``p``, by minimising
``½ Σ_p w_p ρ((warp(source, θ) − target)_p²)`` coarse to fine. Each step solves the ``p × p``
normal equations of the structured Jacobian of :func:`~jacobite.vision.warp_jacobian` (image
gradients times the coordinate map's Jacobian; see :mod:`._align_solve`); the pyramid halves
the images with 2 × 2 averages and carries the parameters between levels exactly (see
:mod:`._align_pyramid`). Conventions: pixel coordinates (``x`` right, ``y`` down, pixel
centres at integers) and a matrix mapping *target* points to *source* points, as everywhere in
:mod:`jacobite.vision`.

Two linearisations (``method``). ``"forward_additive"``, the default, linearises the warped
source at the current parameters (its gradients at the warped points, one backward pass of
the sampler a step, ``θ ← θ + δ``): Gauss–Newton on the cost itself, converging
quadratically to its minimum. ``"inverse_compositional"`` (Baker–Matthews) linearises the
target at the identity once per level, so a step only reads the source
(:mod:`._align_ic`); but it converges linearly, its fixed point under noise solves
``Σ J_target W r = 0`` rather than minimising the cost, and an outlier or occluder in the
target spoils the Jacobian rows around it (an outlier in the source spoils the
forward-additive rows instead). On the benchmark cases (a 10 px translation of a 256²
photograph, 128² homographies with corners moved 8 px, 64 affine pairs 64²) the
two methods took the same time to within 20 %, either one ahead from run to run (1 thread,
CPU time, a shared machine): the forward-additive steps, formed from the gradients' factors,
are cheap enough to pay for their backward pass, and there are fewer of them. The
forward-additive errors were equal or smaller (1e-5 against 1e-4 px on the photograph's
homography, and smaller under noise), so it is the default. The
inverse-compositional iteration did reach the 10 px translation of a photograph with no
pyramid at all, where the forward-additive one needed the default four levels (on
``camera()`` with one to three levels it stopped at a local minimum 6 to 9 px short, which the
``no_match`` test does not catch: the residual there keeps under half of the target's
variance).

Why the normal equations are formed here rather than handed to
:func:`jacobite.least_squares`: a 128² level has N = 16,384 residuals and p ≤ 8 parameters.
``least_squares(residual, x0, jac=..., method="lm", batch=True)`` reaches the same
parameters (a test checks it), but it needs the dense ``N × p`` Jacobian at every Jacobian
evaluation (2.5 ms for a homography level, against 1.5 ms for a whole evaluation here, which
forms ``A`` and ``g`` from the gradient factors), factors it by an SVD, and takes 3 to 5
Jacobians where this iteration takes 2 evaluations (its last step, shorter than ``tol``, is
not evaluated); with float32 images its tolerances stop at float32's resolution only after 10
Jacobians and 40 to 140 residual evaluations. Measured on the finest level of a 128²
homography (1 thread, CPU time): 4 ms here against 16 ms (``xtol=1e-4``,
``geodesic=False``) to 28 ms (its defaults) in float64, and 4 ms against 67 to 183 ms in
float32 — beyond the factor of two that would make it worth routing through.

>>> import torch
>>> from jacobite.vision import align, warp
>>> ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
>>> source = torch.sin(xs / 5) * torch.cos(ys / 7)
>>> target = warp(source, "translation", torch.tensor([1.5, -0.75]))
>>> res = align(source, target, "translation")
>>> res.status, [round(v, 3) for v in res.params[0].tolist()]
(['converged'], [1.5, -0.75])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import _validate
from ..errors import DtypeError, InvalidOptionError, ShapeError, UnsupportedOperationError
from ._align_grid import read_source
from ._align_ic import GROUPS, InverseLevel
from ._align_pyramid import auto_levels, downsample, rescale
from ._align_solve import LOSSES, Level, solve_level
from ._checks import floating
from ._warps import WARPS, MatrixWarp

__all__ = ["METHODS", "NO_MATCH", "STATUSES", "AlignResult", "align"]

#: the values of ``align(..., method=...)``
METHODS = ("forward_additive", "inverse_compositional")

#: the values of :attr:`AlignResult.status`
STATUSES = ("converged", "max_iterations", "diverged", "no_match")

#: a converged pair whose residual keeps more than this share of the target's variance over
#: the compared pixels is reported as ``"no_match"``
NO_MATCH = 0.75


@dataclass
class AlignResult:
    """What :func:`align` found, one row per image pair.

    Attributes:
        matrix: ``(B, 3, 3)`` pixel-coordinate matrices mapping target points to source points
            (``target(p) ≈ source(matrix · p)``), float64.
        params: ``(B, p)`` the model's parameters (in the images' dtype).
        warped: ``(B, C, H, W)`` the source warped onto the target's grid.
        iterations: ``(B, levels)`` int64, the steps taken on each level, coarsest first.
        status: per pair ``"converged"`` (the last step moved no image corner by more than
            ``tol`` pixels, or no step lowers the cost any more), ``"max_iterations"`` (the
            finest level spent ``max_iter`` steps) or ``"diverged"`` (the iteration went
            non-finite or would warp less than a quarter of the target inside the source) or
            ``"no_match"`` (it converged, but the residual keeps more than ``NO_MATCH`` = 75 %
            of the target's variance over the compared pixels: a stationary point that does
            not align the images, as for unrelated images, or a flat target).
        cost: ``(B,)`` float64, ``½ Σ w ρ(r²)`` at the last parameters evaluated on the finest
            level (the final step, shorter than ``tol``, is taken without evaluating it); with
            ``method="inverse_compositional"`` ``w`` is the mask eroded over 3 × 3 pixels.
        levels: the number of pyramid levels used.
    """

    matrix: torch.Tensor
    params: torch.Tensor
    warped: torch.Tensor
    iterations: torch.Tensor
    status: list[str]
    cost: torch.Tensor
    levels: int

    @property
    def converged(self) -> torch.Tensor:
        """``(B,)`` bool: ``status == "converged"``."""
        return torch.tensor([s == "converged" for s in self.status])


def _batched(t: torch.Tensor) -> torch.Tensor:
    return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape))


def _mask(mask: Any, b: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return like.new_ones(b, 1, h, w)
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3):
        floating(mask, "mask", (2, 3), example="(H, W) or (B, H, W) of the target's pixels")
    if mask.dtype != torch.bool:
        floating(mask, "mask", (2, 3), finite=True, example="(H, W) or (B, H, W)")
    if mask.shape[-2:] != (h, w) or (mask.dim() == 3 and mask.shape[0] not in (1, b)):
        raise ShapeError(f"mask must be (H, W) = ({h}, {w}) or (B, H, W) = ({b}, {h}, {w}) "
                         f"over the target's pixels, got {tuple(mask.shape)}")
    m = mask.to(device=like.device, dtype=like.dtype)
    if bool((m < 0).any()):
        raise InvalidOptionError("mask weights must be >= 0; pass a bool mask or weights >= 0")
    return m.reshape(-1, 1, h, w).expand(b, 1, h, w)


def _check(source: Any, target: Any, model: Any, params0: Any) -> tuple[torch.Tensor, ...]:
    example = "(H, W), (C, H, W) or (B, C, H, W)"
    floating(source, "source", (2, 3, 4), finite=True, example=example)
    floating(target, "target", (2, 3, 4), finite=True, example=example)
    if target.dtype != source.dtype or target.device != source.device:
        raise DtypeError(f"source and target must share dtype and device, got {source.dtype} on "
                         f"{source.device} and {target.dtype} on {target.device}; convert one "
                         f"with .to(other)")
    src, tgt = _batched(source), _batched(target)
    if src.shape[:2] != tgt.shape[:2]:
        raise ShapeError(f"source and target must have the same batch and channel sizes (B, C), "
                         f"got {tuple(src.shape[:2])} and {tuple(tgt.shape[:2])}; pass one "
                         f"source per target")
    if min(src.shape[-2:]) < 2 or min(tgt.shape[-2:]) < 2:
        raise ShapeError(f"source and target need at least 2 x 2 pixels, got "
                         f"{tuple(source.shape)} and {tuple(target.shape)}")
    name = _validate.choice(model, "model", WARPS)
    p = MatrixWarp(name).num_params
    if params0 is None:
        prm = src.new_zeros(src.shape[0], p)
    else:
        floating(params0, "params0", (1, 2), finite=True, example=f"({p},) or (B, {p})")
        if params0.shape[-1] != p or (params0.dim() == 2 and params0.shape[0] not in (1,
                                                                                      src.shape[0])):
            raise ShapeError(f"params0 for the {name} model must be ({p},) or (B, {p}) with B = "
                             f"{src.shape[0]}, got {tuple(params0.shape)}")
        prm = params0.detach().to(src).reshape(-1, p).expand(src.shape[0], p).clone()
    return src.detach(), tgt.detach(), prm


def align(source: torch.Tensor, target: torch.Tensor, model: str = "homography", *,
          params0: torch.Tensor | None = None, pyramid: int | None = None,
          loss: str = "linear", loss_scale: float | None = None,
          mask: torch.Tensor | None = None, max_iter: int = 50,
          tol: float = 1e-3, method: str = "forward_additive") -> AlignResult:
    """Align ``source`` to ``target``: the parameters with ``warp(source, model, θ) ≈ target``.

    Args:
        source, target: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` floating images with the
            same ``B`` and ``C`` (``B`` pairs aligned at once, each with its own damping and
            stopping); the sizes may differ, the result lives on the target's grid.
        model: ``"translation"``, ``"euclidean"``, ``"similarity"``, ``"affine"`` or
            ``"homography"`` (parameters as in :mod:`jacobite.vision`).
        params0: the start, ``(p,)`` or ``(B, p)``; default the identity.
        pyramid: the number of levels (1: no pyramid); default as many as keep the coarsest
            image's short side at 32 pixels or more.
        loss: ``"linear"`` (least squares) or a robust loss, ``"huber"``, ``"soft_l1"``,
            ``"cauchy"``, applied by iteratively reweighted least squares.
        loss_scale: the residual size where the robust loss turns on; default per pair and
            level, 1.345 × the residuals' normalised median absolute deviation at the level's
            start.
        mask: ``(H, W)`` or ``(B, H, W)`` over the target's pixels, bool or weights ≥ 0: the
            pixels that count. Pixels whose sample point falls outside the source never count.
        max_iter: the most steps per level.
        tol: stop when a step moves no image corner by more than ``tol`` pixels (on the
            coarser levels, which only prepare the start of the next, ``max(tol, 0.1)``).
        method: ``"forward_additive"`` (the default: the source's gradients and the Jacobian
            at every step, ``θ ← θ + δ``) or ``"inverse_compositional"`` (the target's
            Jacobian and ``Jᵀ W J`` once per level, one read of the source per step, the warp
            composed with the inverse of the increment; see the module doc for the
            trade-off). Both apply to every model (each forms a group).

    Returns:
        an :class:`AlignResult`; a pair that does not converge is reported in ``status``, not
        raised.

    >>> from jacobite.vision import warp
    >>> img = torch.rand(1, 1, 48, 48, dtype=torch.float64)
    >>> img = torch.nn.functional.avg_pool2d(img, 5, 1, 2)  # a smooth texture
    >>> theta = torch.tensor([0.01, 0.02, 0.8, -0.01, 0.0, -0.5], dtype=torch.float64)
    >>> res = align(img, warp(img, "affine", theta), "affine", pyramid=1)
    >>> res.status, bool((res.params - theta).abs().max() < 1e-3)
    (['converged'], True)
    """
    src, tgt, prm = _check(source, target, model, params0)
    name = str(model)
    b, _, h, w = tgt.shape
    wmask = _mask(mask, b, h, w, tgt)
    if pyramid is None:
        levels = auto_levels(*map(min, zip(src.shape[-2:], tgt.shape[-2:], strict=True)))
    else:
        levels = _validate.positive_int(pyramid, "pyramid")
    loss = _validate.choice(loss, "loss", LOSSES)
    fixed_scale = None if loss_scale is None else _validate.positive_float(loss_scale,
                                                                           "loss_scale")
    max_iter = _validate.positive_int(max_iter, "max_iter")
    tol = _validate.positive_float(tol, "tol")
    kind = _level_kind(_validate.choice(method, "method", METHODS), name)
    small = min(*src.shape[-2:], *tgt.shape[-2:])
    if small >> (levels - 1) < 2:
        raise InvalidOptionError(f"pyramid={levels} leaves fewer than 2 x 2 pixels at the "
                                 f"coarsest level of a {small}-pixel side; pass pyramid <= "
                                 f"{auto_levels(small, small, 2)}")
    images = [(src, tgt, wmask)]
    for _ in range(levels - 1):
        s, t, m = images[-1]
        images.append((downsample(s), downsample(t),
                       downsample(m) if mask is not None else m[..., ::2, ::2]))
        prm = rescale(name, prm, coarser=True)
    iterations, res = [], None
    for depth in range(levels - 1, -1, -1):
        s, t, m = images[depth]
        scale = _loss_scale(loss, fixed_scale, s, t, m, name, prm)
        lvl = kind(s, t, m.reshape(b, -1), name, loss, scale, max_iter,
                   tol if depth == 0 else max(tol, 0.1))
        res = solve_level(lvl, prm)
        iterations.append(res.iterations)
        prm = res.params if depth == 0 else rescale(name, res.params, coarser=False)
    assert res is not None
    warped, unexplained = _final(src, tgt, wmask, name, prm)
    code = torch.where((res.code == 0) & (unexplained > NO_MATCH), 3, res.code)
    return AlignResult(MatrixWarp(name).matrix(prm.double()), prm, warped,
                       torch.stack(iterations, -1), [STATUSES[int(c)] for c in code],
                       res.cost, levels)


def _level_kind(method: str, model: str) -> type[Level]:
    if method == "forward_additive":
        return Level
    if model not in GROUPS:
        raise UnsupportedOperationError(
            f"method='inverse_compositional' composes warps, which needs a model whose warps "
            f"form a group {GROUPS}; use method='forward_additive' for {model!r}")
    return InverseLevel


def _final(src: torch.Tensor, tgt: torch.Tensor, mask: torch.Tensor, name: str,
           prm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The source warped onto the target's grid, and per pair the residual's share of the
    target's variance over the compared pixels."""
    b, c, h, w = tgt.shape
    warped, inside = read_source(src, name, prm, (h, w))
    wt = (mask.reshape(b, -1) * inside).double()[:, None]  # (b, 1, P), shared by the channels
    t = tgt.reshape(b, c, -1).double()
    r = warped.reshape(b, c, -1).double() - t
    count = wt.sum(-1)  # (b, 1)
    mean = (wt * t).sum(-1, keepdim=True) / count[..., None].clamp_min(1e-300)
    total = (c * count[:, 0]).clamp_min(1e-300)
    var = (wt * (t - mean) ** 2).sum((1, 2)) / total
    share = (wt * r * r).sum((1, 2)) / total / var.clamp_min(1e-300)
    return warped, torch.where(var > 0, share, torch.inf)  # a flat target: nothing to align by


def _loss_scale(loss: str, fixed: float | None, src: torch.Tensor, tgt: torch.Tensor,
                mask: torch.Tensor, name: str, prm: torch.Tensor) -> torch.Tensor:
    b = tgt.shape[0]
    if fixed is not None or loss == "linear":
        return torch.full((b,), fixed or 1.0, dtype=torch.float64, device=tgt.device)
    with torch.no_grad():
        warped, _ = read_source(src, name, prm, (tgt.shape[-2], tgt.shape[-1]))
        r = (warped - tgt).double().reshape(b, -1)
        keep = (mask > 0).expand_as(tgt).reshape(b, -1)
        keep = keep | ~keep.any(-1, keepdim=True)  # nothing masked in: every pixel
        v = torch.where(keep, r, torch.nan)  # the median of the kept residuals, per pair
        mid = v.nanmedian(-1, keepdim=True).values
        mad = (v - mid).abs().nanmedian(-1).values
        spread = tgt.double().reshape(b, -1).std(-1)
    return torch.maximum(1.345 * 1.4826 * mad, 1e-6 * spread + 1e-12)
