"""Sampling images at pixel coordinates, and warping them.

``grid_sample`` reads normalised coordinates in ``[-1, 1]``; this module speaks pixels (``x``
right, ``y`` down, pixel centres at integers) and converts. With ``align_corners=False`` (the
default here) ``u = (2x + 1) / W - 1``, so ``±1`` are the outer edges of the border pixels; with
``align_corners=True`` ``u = 2x / (W - 1) - 1``, so ``±1`` are the centres of the border pixels.
Either way a pixel coordinate reads the same place; the choice only moves where ``"reflection"``
padding reflects (about the outer edges, or about the border pixels' centres).

>>> import torch
>>> img = torch.arange(12.0).reshape(3, 4)
>>> warp(img, "translation", torch.tensor([1.0, 0.0]))  # warped(p) = img(p + (1, 0))
tensor([[ 1.,  2.,  3.,  0.],
        [ 5.,  6.,  7.,  0.],
        [ 9., 10., 11.,  0.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from .. import _validate
from ..errors import ShapeError
from ._checks import floating, size_pair
from ._warps import Warp, get_warp

__all__ = ["MODES", "PADDINGS", "Batch", "pixel_grid", "prepare", "sample", "to_normalized",
           "warp"]

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")


def to_normalized(points: torch.Tensor, size: Sequence[int],
                  align_corners: bool = False) -> torch.Tensor:
    """Pixel points ``(..., 2)`` as ``grid_sample`` coordinates for an image of ``size = (H, W)``.

    >>> to_normalized(torch.tensor([[0.0, 0.0], [3.0, 1.0]]), (2, 4))
    tensor([[-0.7500, -0.5000],
            [ 0.7500,  0.5000]])
    """
    floating(points, "points", (1, 2, 3, 4), last=2, example="pixel (x, y) in the last axis")
    h, w = size_pair(size, "size")
    if _validate.boolean(align_corners, "align_corners"):
        scale = points.new_tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)])
        return points * scale - 1
    return (2 * points + 1) / points.new_tensor([w, h]) - 1


def pixel_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The ``(height * width, 2)`` pixel centres ``(x, y)``, row by row.

    >>> pixel_grid(2, 3).tolist()
    [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
    """
    height = _validate.positive_int(height, "height")
    width = _validate.positive_int(width, "width")
    dtype = _validate.floating_dtype(dtype)
    device = _validate.device(device if device is not None else "cpu")
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def sample(image: torch.Tensor, points: torch.Tensor, *, mode: str = "bilinear",
           padding_mode: str = "zeros", align_corners: bool = False) -> torch.Tensor:
    """``image`` ``(B, C, H, W)`` read at pixel ``points`` ``(B, Ho, Wo, 2)``: ``(B, C, Ho, Wo)``.

    >>> img = torch.tensor([[[[0.0, 10.0]]]])
    >>> sample(img, torch.tensor([[[[0.25, 0.0]]]]))
    tensor([[[[2.5000]]]])
    """
    floating(image, "image", (4,), example="(B, C, H, W)")
    floating(points, "points", (4,), last=2, example="(B, Ho, Wo, 2), pixel (x, y)")
    if points.shape[0] != image.shape[0]:
        raise ShapeError(f"points must have one batch row per image, {image.shape[0]}, got "
                         f"{points.shape[0]}; expand them with points.expand(B, -1, -1, -1)")
    mode = _validate.choice(mode, "mode", MODES)
    padding_mode = _validate.choice(padding_mode, "padding_mode", PADDINGS)
    align_corners = _validate.boolean(align_corners, "align_corners")
    grid = to_normalized(points.to(image.dtype), image.shape[-2:], align_corners)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode,
                         align_corners=align_corners)


class Batch:
    """A checked warping problem: the image as ``(B, C, H, W)``, the parameters as ``(B, p)``,
    the warp, the output size, the sampling options and the result's shape."""

    def __init__(self, image: Any, warp: Any, params: Any, size: Any, mode: Any,
                 padding_mode: Any, align_corners: Any) -> None:
        floating(image, "image", (2, 3, 4), example="(H, W), (C, H, W) or (B, C, H, W)")
        if image.shape[-1] < 1 or image.shape[-2] < 1:
            raise ShapeError(f"image must have at least one pixel, got shape "
                             f"{tuple(image.shape)}")
        floating(params, "params", (1, 2), finite=True, example="(p,) or (B, p)")
        self.warp: Warp = get_warp(warp, params.shape[-1])
        if params.shape[-1] != self.warp.num_params:
            raise ShapeError(f"the {self.warp.name} warp takes {self.warp.num_params} parameters: "
                             f"pass params of shape ({self.warp.num_params},) or (B, "
                             f"{self.warp.num_params}), got {tuple(params.shape)}")
        img = image.reshape((1,) * (4 - image.dim()) + tuple(image.shape))
        prm = params.reshape(-1, params.shape[-1]).to(device=image.device, dtype=image.dtype)
        b = max(img.shape[0], prm.shape[0])
        if img.shape[0] not in (1, b) or prm.shape[0] not in (1, b):
            raise ShapeError(f"{img.shape[0]} images and {prm.shape[0]} parameter rows: pass as "
                             f"many of each, or one of either")
        self.image, self.params = img.expand(b, *img.shape[1:]), prm.expand(b, -1)
        self.shared = prm.shape[0] == 1 < b  # one parameter row for several images
        self.size = size_pair(tuple(image.shape[-2:]) if size is None else size, "size")
        self.mode = _validate.choice(mode, "mode", MODES)
        self.padding_mode = _validate.choice(padding_mode, "padding_mode", PADDINGS)
        self.align_corners = _validate.boolean(align_corners, "align_corners")
        batched = image.dim() == 4 or params.dim() == 2
        lead = (b, img.shape[1]) if batched else tuple(image.shape[:-2])
        self.out_shape = (*lead, *self.size)

    def points(self) -> torch.Tensor:
        """The target pixel centres ``(Ho * Wo, 2)``."""
        return pixel_grid(*self.size, dtype=self.image.dtype, device=self.image.device)

    def read(self, image: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """``image`` ``(B', C', H, W)`` at source points ``(B', Ho * Wo, 2)``."""
        grid = to_normalized(src, image.shape[-2:], self.align_corners)
        return F.grid_sample(image, grid.reshape(src.shape[0], *self.size, 2), mode=self.mode,
                             padding_mode=self.padding_mode, align_corners=self.align_corners)


def prepare(image: Any, warp: Any, params: Any, size: Any = None, mode: Any = "bilinear",
            padding_mode: Any = "zeros", align_corners: Any = False) -> Batch:
    """Check the arguments of :func:`warp` / ``warp_jacobian`` (typed errors naming the fix)."""
    return Batch(image, warp, params, size, mode, padding_mode, align_corners)


def warp(image: torch.Tensor, model: str | Warp | Any, params: torch.Tensor, *,
         size: Sequence[int] | None = None, mode: str = "bilinear", padding_mode: str = "zeros",
         align_corners: bool = False) -> torch.Tensor:
    """The warped image ``warped(p) = image(W(p; params))`` on a ``size`` grid of target pixels.

    ``image``: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``; ``model``: a name of
    :data:`~jacobite.vision.WARPS`, a :class:`~jacobite.vision.Warp`, or a function
    ``fn(θ, points)``; ``params``: ``(p,)`` or ``(B, p)`` (one row per image, or one for all).
    The result has the image's shape (with ``(B, C, Ho, Wo)`` whenever the image or the
    parameters are batched) and is differentiable in the image and the parameters.

    >>> img = torch.arange(16.0).reshape(4, 4)
    >>> warp(img, "affine", torch.tensor([0.0, 0, 0, 0, 0, 1]))[:2]
    tensor([[ 4.,  5.,  6.,  7.],
            [ 8.,  9., 10., 11.]])
    """
    b = prepare(image, model, params, size, mode, padding_mode, align_corners)
    src = b.warp.apply(b.params, b.points())
    return b.read(b.image, src).reshape(b.out_shape)
