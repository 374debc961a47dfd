"""The Jacobian of a warped image with respect to the warp's parameters, by its structure.

``warped[b, c, q] = image[b, c](W(p_q; θ_b))``, so by the chain rule row ``(b, c, q)`` of the
Jacobian is the ``1 × 2`` image gradient ``∇I[b, c, q]`` (the derivative of ``grid_sample`` with
respect to its sample point, from one backward pass) times the ``2 × p`` Jacobian of the
coordinate map at ``p_q`` (closed form, or ``p`` forward-mode products for a coordinate function).
:class:`WarpJacobian` keeps the two factors and multiplies through them; ``to_dense`` forms
the block-diagonal ``(B·C·Ho·Wo) × (B·p)`` matrix.

>>> import torch
>>> img = torch.arange(16.0).reshape(4, 4)
>>> J = warp_jacobian(img, "translation", torch.zeros(2))
>>> J.shape
(16, 2)
>>> J.to_dense()[5]  # interior pixel: d/dx = 1, d/dy = 4
tensor([1., 4.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import _validate
from ..errors import ShapeError
from ..operators import JacobianOperator
from ._checks import floating
from ._sample import prepare
from ._warps import Warp

__all__ = ["WarpJacobian", "image_gradients", "warp_jacobian"]


class WarpJacobian(JacobianOperator):
    """``blockdiag_b(G_b M_b)``: per image ``b``, the per-pixel image gradients ``G``
    (``image_gradient``, ``(B, C, P, 2)``) times the coordinate map's Jacobian ``M``
    (``coordinate_jacobian``, ``(B, P, 2, p)``). Rows are ordered like the warped image
    ``(B, C, Ho, Wo)`` flattened, columns like the parameters ``(B, p)`` flattened;
    with ``shared=True`` one parameter vector serves every image, and the operator is the
    ``(B·C·Ho·Wo) × p`` stack of the blocks instead. ``warped`` holds the warped image the
    gradients were taken at.

    >>> G = torch.ones(1, 1, 3, 2)
    >>> M = torch.eye(2).expand(1, 3, 2, 2)
    >>> WarpJacobian(G, M).mv(torch.tensor([1.0, 2.0]))
    tensor([3., 3., 3.])
    """

    def __init__(self, image_gradient: torch.Tensor, coordinate_jacobian: torch.Tensor,
                 warped: torch.Tensor | None = None, *, shared: bool = False) -> None:
        floating(image_gradient, "image_gradient", (4,), last=2, example="(B, C, P, 2)")
        floating(coordinate_jacobian, "coordinate_jacobian", (4,), example="(B, P, 2, p)")
        b, c, p, _ = image_gradient.shape
        if coordinate_jacobian.shape[:3] != (b, p, 2):
            raise ShapeError(f"coordinate_jacobian must have shape (B, P, 2, p) = ({b}, {p}, 2, "
                             f"p) to match image_gradient {tuple(image_gradient.shape)}, got "
                             f"{tuple(coordinate_jacobian.shape)}")
        if warped is not None:
            floating(warped, "warped", (2, 3, 4), example="the warped image")
        shared = _validate.boolean(shared, "shared")
        n = coordinate_jacobian.shape[-1]
        self.shared = bool(shared)
        cols = n if self.shared else b * n
        super().__init__((b * c * p, cols), image_gradient.dtype, image_gradient.device)
        self.image_gradient = image_gradient
        self.coordinate_jacobian = coordinate_jacobian
        self.warped = warped

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        b, n = self.coordinate_jacobian.shape[0], self.coordinate_jacobian.shape[-1]
        W = V.reshape(1, n, -1).expand(b, n, -1) if self.shared else V.reshape(b, n, -1)
        t = torch.einsum("bqkj,bjm->bqkm", self.coordinate_jacobian, W)
        return torch.einsum("bcqk,bqkm->bcqm", self.image_gradient, t).reshape(-1, V.shape[1])

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        b, c, p, _ = self.image_gradient.shape
        s = torch.einsum("bcqk,bcqm->bqkm", self.image_gradient, U.reshape(b, c, p, -1))
        out = torch.einsum("bqkj,bqkm->bjm", self.coordinate_jacobian, s)
        return (out.sum(0) if self.shared else out).reshape(-1, U.shape[1])

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._mm(v[:, None])[:, 0]

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self._rmm(u[:, None])[:, 0]

    def blocks(self) -> torch.Tensor:
        """The per-image Jacobians ``(B, C·Ho·Wo, p)``."""
        b, c, p, _ = self.image_gradient.shape
        return torch.einsum("bcqk,bqkj->bcqj", self.image_gradient,
                            self.coordinate_jacobian).reshape(b, c * p, -1)

    def _to_dense(self) -> torch.Tensor:
        blocks = self.blocks()
        if self.shared:
            return blocks.reshape(-1, blocks.shape[-1])
        return blocks[0] if blocks.shape[0] == 1 else torch.block_diag(*blocks)


def warp_jacobian(image: torch.Tensor, warp: str | Warp | Any, params: torch.Tensor, *,
                  size: Sequence[int] | None = None, mode: str = "bilinear",
                  padding_mode: str = "zeros", align_corners: bool = False) -> WarpJacobian:
    """``∂ warp(image, warp, params) / ∂ params`` as a :class:`WarpJacobian`.

    Arguments as in :func:`~jacobite.vision.warp`; the image is a constant. The image
    gradients come from one backward pass of ``grid_sample`` (so they are its derivative
    exactly, borders and padding included), the coordinate map's Jacobian in closed form for
    the named models and :class:`~jacobite.vision.ThinPlateSpline`, by ``jacfwd`` for a
    coordinate function. ``J.warped`` is the warped image.

    >>> img = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    >>> J = warp_jacobian(img, "homography", torch.zeros(2, 8, dtype=torch.float64))
    >>> J.shape, J.warped.shape
    ((384, 16), torch.Size([2, 3, 8, 8]))
    """
    b = prepare(image, warp, params, size, mode, padding_mode, align_corners)
    img, prm = b.image.detach(), b.params.detach()
    pts = b.points()
    with torch.no_grad():
        src = b.warp.apply(prm, pts)
    grad, out = image_gradients(b.read, img, src)
    with torch.no_grad():
        jac = b.warp.jacobian(prm, pts)
    return WarpJacobian(grad, jac, out.reshape(b.out_shape), shared=b.shared)


def image_gradients(read: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    image: torch.Tensor, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The derivative of ``read(plane, points)`` with respect to the source points ``src``
    ``(B, P, 2)`` for every channel of ``image`` ``(B, C, H, W)``: ``(B, C, P, 2)``, with the
    samples read ``(B·C, 1, Ho, Wo)``. One backward pass gives every pixel's gradient (output
    ``(b, c, q)`` reads point ``(b, q)`` only), per channel by folding the channels into the
    batch.

    >>> img = torch.arange(6.0).reshape(1, 1, 2, 3)
    >>> read = lambda im, p: im[..., 0, :2] * p[..., 0]  # stands for a sampler
    >>> image_gradients(read, img, torch.ones(1, 2, 2))[0][0, 0].tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """
    nb, nc = image.shape[:2]
    lead = src.repeat_interleave(nc, dim=0) if nc > 1 else src
    with torch.enable_grad():
        where = lead.detach().requires_grad_(True)
        out = read(image.reshape(nb * nc, 1, *image.shape[2:]), where)
        (grad,) = torch.autograd.grad(out, where, torch.ones_like(out))
    return grad.reshape(nb, nc, -1, 2), out.detach()
