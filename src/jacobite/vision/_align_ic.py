"""Inverse-compositional alignment (Baker–Matthews) on one pyramid level.

The forward-additive iteration (:mod:`._align_solve`) linearises ``source(W(p; θ + δ))`` and so
needs the source's gradients at the warped points, and the Jacobian blocks, anew at every
step. The inverse-compositional one swaps the roles: it asks for the increment ``Δθ`` whose
warp, applied to the *target*, matches the warped source, ``target(W(p; Δθ)) ≈
source(W(p; θ))``, and linearises that at ``Δθ = 0``. The Jacobian ``J = ∇target · ∂W/∂θ(p; 0)``
is then the same at every step: it is formed once per level (central differences of the
target, one-sided on its border, times the coordinate map's Jacobian at the identity), with
``A = Jᵀ W J``. Each step reads the source once (no backward pass), forms ``g = Jᵀ W r`` (one
``(N × p)ᵀ (N)`` product a pair), solves the damped ``p × p`` system and composes the current
warp with the inverse of the increment's: ``H(θ) ← H(θ) · H(Δθ)⁻¹``. This needs the models
to form a group, which every matrix model does.

The weights ``W`` hold the target's mask, the pixels whose sample point lies inside the
source, and the robust loss's IRLS weights. The mask lives on the target, where ``J`` does, so
it enters ``A`` once; pixels that leave the source are taken out of ``A`` by subtracting their
rows' products (usually a thin border), and a robust loss, whose weights change every step,
re-forms ``Jᵀ W J`` from the fixed ``J``. ``J`` is kept as its per-pixel factors ``f`` (rows
``f ⊗ z``, :mod:`._align_normal`), so ``g`` and ``A`` are weighted factor products against
the monomials of the pixel position, like the forward-additive ones. A target pixel's
gradient is read from its neighbours, so an occluder or an outlier in the target spoils the
rows around it too: the mask and the IRLS weights are eroded (each pixel takes the least
weight of its 3 × 3 neighbourhood) before they weigh the rows, and the level's cost is taken
over the eroded mask.

>>> import torch
>>> from jacobite.vision import warp
>>> ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
>>> img = (torch.sin(xs / 4) * torch.cos(ys / 5))[None, None]
>>> lvl = InverseLevel(img, warp(img, "translation", torch.tensor([0.5, -0.25])),
...                    torch.ones(1, 1600), "translation", "linear", torch.ones(1), 20, 1e-4)
>>> [round(v, 3) for v in solve_level(lvl, torch.zeros(1, 2)).params[0].tolist()]
[0.5, -0.25]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._align_grid import read_source
from ._align_normal import factors, gram, moment
from ._align_pyramid import from_matrix
from ._align_solve import Evaluation, Level, solve_level

__all__ = ["GROUPS", "InverseLevel", "solve_level"]

#: the models whose warps form a group (composition and inverse stay in the model)
GROUPS = ("translation", "euclidean", "similarity", "affine", "homography")


class InverseLevel(Level):
    """One level with the inverse-compositional parametrisation: the target's Jacobian (its
    per-pixel factors, :mod:`._align_normal`) and ``Jᵀ M J`` over the mask ``M`` formed once
    (float64)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mask = erode(self.mask, *self.target.shape[-2:])
        tgt = self.target.double()
        n, c, h, w = tgt.shape
        gy, gx = torch.gradient(tgt, dim=(-2, -1))  # central inside, one-sided on the border
        G = torch.stack([gx, gy], -1).reshape(n, c, h * w, 2)
        self.zero = self.warp.identity(1, torch.float64, self.target.device)
        self.factors = factors(G, self, self.zero)  # J's rows are f ⊗ z: k of (n, C, P)
        self.hessian = gram(self.factors, self, self.zero, self.mask[:, None, :])

    def evaluate(self, idx: torch.Tensor | None, params: torch.Tensor) -> Evaluation:
        return _InverseEval(self, idx, params)

    def update(self, params: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``H(θ) · H(Δθ)⁻¹`` with the increment ``Δθ = −delta`` (``delta`` is the step the
        shared iteration solves for: ``−A⁻¹ g``)."""
        if self.model == "translation":
            return (params.double() + delta).to(params.dtype)
        inv, info = torch.linalg.inv_ex(self.warp.matrix(-delta))
        inv = torch.where((info == 0)[:, None, None], inv, torch.nan)  # a singular increment
        return from_matrix(self.model, self.warp.matrix(params.double()) @ inv).to(params.dtype)


def erode(weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per pixel the least of ``weights`` ``(..., P)`` over its 3 × 3 neighbourhood (inside
    the image): a pixel counts only as much as the pixels its target gradient is read from.
    Uniform weights come back as they are.

    >>> erode(torch.tensor([[1.0, 1, 1, 0, 1, 1]]), 2, 3)
    tensor([[1., 0., 0., 0., 0., 0.]])
    """
    if bool(weights.amin() == weights.amax()):
        return weights
    planes = F.pad(weights.reshape(-1, 1, height, width), (1, 1, 1, 1), mode="replicate")
    rows = torch.minimum(torch.minimum(planes[..., :-2], planes[..., 1:-1]), planes[..., 2:])
    out = torch.minimum(torch.minimum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])
    return out.reshape(weights.shape)


class _InverseEval(Evaluation):
    """The pairs ``idx`` at ``params``: one read of the source, ``g = Jᵀ W r`` from the
    level's fixed factors, and ``A``."""

    def __init__(self, lvl: InverseLevel, idx: torch.Tensor | None,
                 params: torch.Tensor) -> None:
        src, tgt, mask, scale = lvl.pairs(idx)
        f, A = ((lvl.factors, lvl.hessian) if idx is None
                else ([t[idx] for t in lvl.factors], lvl.hessian[idx]))
        n, c, h, w = tgt.shape
        warped, inside = read_source(src, lvl.model, params, (h, w))
        r = (warped.reshape(n, c, -1) - tgt.reshape(n, c, -1)).double()
        wts = self.weigh(lvl, scale, mask, inside, r)
        self.g = moment(f, lvl, lvl.zero, wts * r)
        if lvl.loss != "linear":  # the IRLS weights change A
            self.A = gram(f, lvl, lvl.zero, wts)
        else:  # less the rows that left the source (usually a thin border, often none)
            out = (mask > 0) & ~inside
            self.A = A - gram(f, lvl, lvl.zero, (mask * out)[:, None, :]) if bool(
                out.any()) else A
        self.params = params

    def irls(self, lvl: Level, weights: torch.Tensor) -> torch.Tensor:
        n, c = weights.shape[:2]
        return erode(weights, *lvl.target.shape[-2:]).reshape(n, c, -1)
