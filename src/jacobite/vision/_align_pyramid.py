"""Image pyramids for coarse-to-fine alignment, and the matrix models' parameters across levels.

A coarser level averages 2 × 2 blocks (``avg_pool2d``, which also removes the frequencies
the half-size grid cannot hold). Coarse pixel ``i`` covers fine pixels ``2i`` and ``2i + 1``,
so its centre is the fine coordinate ``2i + 0.5``: fine points are ``S`` times coarse points,
``S = [[2, 0, 0.5], [0, 2, 0.5], [0, 0, 1]]``. A warp matrix ``H`` (target to source, fine)
reads, at the coarse level, ``S⁻¹ H S``. For a translation that halves the shift; for an affine
map the linear part stays and the shift becomes ``(t + (A − I)·(0.5, 0.5)) / 2``; for a
homography the last row doubles (``h6, h7 → 2 h6, 2 h7``) and the matrix is rescaled so that its
corner entry is 1 again. :func:`rescale` does this for every named model by conjugating the
matrix and reading the parameters back.

>>> import torch
>>> rescale("translation", torch.tensor([[10.0, -4.0]]), coarser=True)
tensor([[ 5., -2.]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._warps import MatrixWarp

__all__ = ["auto_levels", "downsample", "from_matrix", "rescale"]


def auto_levels(height: int, width: int, smallest: int = 32) -> int:
    """The number of levels whose coarsest image still has ``smallest`` pixels on its short side.

    >>> auto_levels(256, 256), auto_levels(128, 96), auto_levels(20, 20)
    (4, 2, 1)
    """
    levels, side = 1, min(height, width)
    while side // 2 >= smallest:
        side //= 2
        levels += 1
    return levels


def downsample(image: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` averaged over 2 × 2 blocks (an odd last row or column is dropped).

    >>> downsample(torch.arange(16.0).reshape(1, 1, 4, 4))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    return F.avg_pool2d(image, 2)


def from_matrix(name: str, matrix: torch.Tensor) -> torch.Tensor:
    """The parameters ``(B, p)`` of the named model whose matrix is ``matrix`` ``(B, 3, 3)``
    (a homography is first scaled to corner entry 1).

    >>> from_matrix("similarity", MatrixWarp("similarity").matrix(torch.tensor([[0.1, 0.2, 3, 4]])))
    tensor([[0.1000, 0.2000, 3.0000, 4.0000]])
    """
    m = matrix
    if name == "translation":
        return m[:, :2, 2]
    if name == "euclidean":
        return torch.stack([torch.atan2(m[:, 1, 0], m[:, 0, 0]), m[:, 0, 2], m[:, 1, 2]], -1)
    if name == "similarity":
        return torch.stack([m[:, 0, 0] - 1, m[:, 1, 0], m[:, 0, 2], m[:, 1, 2]], -1)
    eye = torch.eye(3, dtype=m.dtype, device=m.device)
    if name == "affine":
        return (m - eye)[:, :2].reshape(-1, 6)
    m = m / m[:, 2:, 2:]
    return (m - eye).reshape(-1, 9)[:, :8]


def _scale(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1.0]], dtype=dtype, device=device)


def rescale(name: str, params: torch.Tensor, *, coarser: bool) -> torch.Tensor:
    """``params`` ``(B, p)`` of the named model at the next coarser (or finer) pyramid level.

    >>> h = torch.tensor([[0.0, 0, 0, 0, 0, 0, 1e-3, 0]])
    >>> rescale("homography", h, coarser=True)[0, 6:]
    tensor([0.0020, 0.0000])
    """
    warp = MatrixWarp(name)
    s = _scale(torch.float64, params.device)
    h = warp.matrix(params.double())
    h = torch.linalg.solve(s, h @ s) if coarser else s @ h @ torch.linalg.inv(s)
    return from_matrix(name, h).to(params.dtype)
