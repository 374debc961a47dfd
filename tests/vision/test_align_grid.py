"""align's sampling grid, built from rows and columns, against the public warp's points."""

from __future__ import annotations

import pytest
import torch

from jacobite.vision import MatrixWarp, pixel_grid, to_normalized
from jacobite.vision._align_grid import source_grid

SIZES = {"translation": 2, "euclidean": 3, "similarity": 4, "affine": 6, "homography": 8}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("model", list(SIZES))
def test_grid_and_inside_match_the_warped_points(model: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    theta = 0.05 * torch.randn(4, SIZES[model], generator=g, dtype=torch.float64)
    theta[:, -2:] *= 1e-2 if model == "homography" else 1
    theta *= 60 if model == "translation" else 1  # some pixels leave the source
    theta = theta.to(dtype)
    grid, inside = source_grid(model, theta, 10, 11, (12, 13))
    pts = MatrixWarp(model).apply(theta, pixel_grid(10, 11, dtype))  # (4, 110, 2)
    eps = 4 * torch.finfo(dtype).eps
    torch.testing.assert_close(grid, to_normalized(pts, (12, 13)).reshape(4, 10, 11, 2),
                               atol=eps, rtol=0)
    expect = ((pts >= 0) & (pts <= torch.tensor([12.0, 11.0], dtype=dtype))).all(-1)
    assert torch.equal(inside, expect)


@pytest.mark.parametrize("model", list(SIZES))
def test_the_identity_reads_every_pixel_inside(model: str) -> None:
    for side in (7, 64, 255):
        _, inside = source_grid(model, torch.zeros(1, SIZES[model]), side, side, (side, side))
        assert bool(inside.all())
