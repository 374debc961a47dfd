"""Image warps and their Jacobians, in pixel coordinates.

Points are ``(x, y)`` pixel coordinates: ``x`` to the right, ``y`` down, pixel centres at
integers. A warp maps *target* points to the *source* points they read:
``warped(p) = source(W(p; θ))``; for the matrix models ``W(p) = H p`` in homogeneous
coordinates, with the homography ``H = I + [[θ0, θ1, θ2], [θ3, θ4, θ5], [θ6, θ7, 0]]`` (affine:
the first six). :func:`warp` gives the warped image and :func:`warp_jacobian` its Jacobian with
respect to ``θ`` as a structured operator (per-pixel image gradient times the coordinate map's
Jacobian).

>>> import torch
>>> from jacobite.vision import warp, warp_jacobian
>>> img = torch.rand(32, 32, dtype=torch.float64)
>>> theta = torch.tensor([0.01, 0, 0.5, 0, -0.02, 0.3, 1e-4, 0], dtype=torch.float64)
>>> J = warp_jacobian(img, "homography", theta)
>>> J.shape, torch.allclose(J.warped, warp(img, "homography", theta))
((1024, 8), True)
"""

from ._jacobian import WarpJacobian, warp_jacobian
from ._sample import MODES, PADDINGS, pixel_grid, sample, to_normalized, warp
from ._warps import WARPS, CoordinateMap, MatrixWarp, ThinPlateSpline, Warp, get_warp
from .align import NO_MATCH, STATUSES, AlignResult, align
from .deformation import JacobianDeterminant, jacobian_determinant, plot_jacobian_determinant

__all__ = [
    "MODES",
    "NO_MATCH",
    "PADDINGS",
    "STATUSES",
    "WARPS",
    "AlignResult",
    "CoordinateMap",
    "JacobianDeterminant",
    "MatrixWarp",
    "ThinPlateSpline",
    "Warp",
    "WarpJacobian",
    "align",
    "get_warp",
    "jacobian_determinant",
    "pixel_grid",
    "plot_jacobian_determinant",
    "sample",
    "to_normalized",
    "warp",
    "warp_jacobian",
]
