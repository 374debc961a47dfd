"""The sampling grid of a warped target grid, built from its rows and columns.

A matrix model maps target pixel ``(x_j, y_i)`` to ``(m00 x_j + m01 y_i + m02, ...)``: a term
of the column plus a term of the row. So the ``grid_sample`` coordinates of a whole
``h × w`` target (``u = (2 x + 1) / W − 1`` for a ``W``-wide source, ``align_corners=False``)
are one broadcast sum of an ``(n, h, 1, 2)`` and an ``(n, 1, w, 2)`` tensor, with the
normalisation folded into those small factors; a homography adds the sum for ``w`` and one
division. This replaces a batched ``(P × 2) @ (2 × 2)`` product per pair, a separate
normalisation pass, and the four comparisons of the inside-the-source test in pixels (the
test reads ``|u| ≤ 1 − 1/W`` on the grid instead).

>>> import torch
>>> one_right = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # x + 1 in a 3-wide source
>>> grid, inside = source_grid("translation", one_right, 1, 3, (1, 3))
>>> [round(u, 4) for u in grid[0, 0, :, 0].tolist()], inside.tolist()
([0.0, 0.6667, 1.3333], [[True, True, False]])
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from ._warps import MatrixWarp

__all__ = ["read_source", "sample", "source_grid"]


@lru_cache(maxsize=32)
def _axis(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.arange(n, dtype=dtype, device=device)


def source_grid(model: str, params: torch.Tensor, height: int, width: int,
                source: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``grid_sample`` grid ``(n, height, width, 2)`` (``align_corners=False``) at which
    the ``height × width`` target reads a ``source = (Hs, Ws)`` image under ``params``
    ``(n, p)`` of the named model, and which target pixels ``(n, P)`` read inside the source's
    pixel centres (up to a few rounding units)."""
    hs, ws = source
    dtype, dev = params.dtype, params.device
    xs, ys = _axis(width, dtype, dev), _axis(height, dtype, dev)
    scale = torch.tensor([2 / ws, 2 / hs], dtype=dtype, device=dev)
    offset = scale / 2 - 1
    n = params.shape[0]
    eps = 8 * torch.finfo(dtype).eps
    bound = torch.tensor([1 - 1 / ws + eps, 1 - 1 / hs + eps], dtype=dtype, device=dev)
    if model == "translation":  # separable: a column term in u, a row term in v
        u = (xs + params[:, :1]) * scale[0] + offset[0]  # (n, w)
        v = (ys + params[:, 1:]) * scale[1] + offset[1]  # (n, h)
        grid = torch.stack([u[:, None, :].expand(-1, height, -1),
                            v[:, :, None].expand(-1, -1, width)], -1)
        inside = (v.abs() <= bound[1])[:, :, None] & (u.abs() <= bound[0])[:, None, :]
        return grid, inside.reshape(n, -1)
    m = MatrixWarp(model).matrix(params)  # (n, 3, 3)
    if model == "homography":  # fold the normalisation into the numerators: s·u + o·w
        m = torch.cat([m[:, :2] * scale[:, None] + offset[:, None] * m[:, 2:], m[:, 2:]], 1)
    else:
        m = torch.cat([m[:, :2] * scale[:, None], m[:, 2:]], 1)
        m[:, :2, 2] += offset
    col = m[:, None, :, 0] * xs[None, :, None]  # (n, w, 3)
    row = torch.addcmul(m[:, None, :, 2], m[:, None, :, 1], ys[None, :, None])  # (n, h, 3)
    if model == "homography":
        full = row[:, :, None] + col[:, None]  # (n, h, w, 3)
        grid = full[..., :2] / full[..., 2:]
    else:
        grid = row[:, :, None, :2] + col[:, None, :, :2]
    inside = (grid[..., 0].abs() <= bound[0]) & (grid[..., 1].abs() <= bound[1])
    return grid, inside.reshape(n, -1)


def sample(source: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``source`` ``(n·C, 1, Hs, Ws)`` read bilinearly, zero outside, on ``grid``
    ``(n·C, h, w, 2)``."""
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def read_source(source: torch.Tensor, model: str, params: torch.Tensor,
                size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``source`` ``(n, C, Hs, Ws)`` warped onto a ``size = (h, w)`` target grid:
    ``(n, C, h, w)``, and which target pixels ``(n, P)`` read inside the source."""
    n, c = source.shape[:2]
    grid, inside = source_grid(model, params, *size, (source.shape[-2], source.shape[-1]))
    if c > 1:
        grid = grid.repeat_interleave(c, dim=0)
    out = sample(source.reshape(n * c, 1, *source.shape[-2:]), grid)
    return out.reshape(n, c, *size), inside
