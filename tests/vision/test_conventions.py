"""Pixel conventions: x right, y down, centres at integers, warps map target to source points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.vision import get_warp, pixel_grid, sample, to_normalized, warp

DT = torch.float64


def _ramp(h: int, w: int) -> torch.Tensor:
    """f(x, y) = 3x - 2y + 5 at the pixel centres (bilinear sampling reproduces it exactly)."""
    ys, xs = np.mgrid[0:h, 0:w]
    return torch.tensor(3.0 * xs - 2.0 * ys + 5.0, dtype=DT)


@pytest.mark.parametrize("align_corners", [False, True])
def test_a_pixel_coordinate_reads_that_pixel(align_corners):
    img = torch.rand(1, 1, 5, 7, dtype=DT)
    pts = pixel_grid(5, 7, dtype=DT).reshape(1, 5, 7, 2)
    out = sample(img, pts, align_corners=align_corners)
    torch.testing.assert_close(out, img, rtol=0, atol=1e-14)


def test_to_normalized_is_grid_samples_unnormalisation_inverted():
    pts = torch.rand(20, 2, dtype=DT) * 10
    for align in (False, True):
        u = to_normalized(pts, (11, 13), align)
        w, h = 13, 11
        if align:
            back = torch.stack([(u[:, 0] + 1) / 2 * (w - 1), (u[:, 1] + 1) / 2 * (h - 1)], -1)
        else:
            back = torch.stack([((u[:, 0] + 1) * w - 1) / 2, ((u[:, 1] + 1) * h - 1) / 2], -1)
        torch.testing.assert_close(back, pts, rtol=0, atol=1e-12)


def test_homography_warps_read_the_source_at_matrix_times_point():
    img = _ramp(20, 24)
    theta = torch.tensor([0.02, -0.03, 2.5, 0.01, 0.015, -1.5, 4e-4, -3e-4], dtype=DT)
    H = np.eye(3) + np.array([*theta.tolist(), 0.0]).reshape(3, 3)
    out = warp(img, "homography", theta).numpy()
    ys, xs = np.mgrid[0:20, 0:24]
    src = H @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    xs_s, ys_s = src[0] / src[2], src[1] / src[2]
    inside = (xs_s >= 0) & (xs_s <= 23) & (ys_s >= 0) & (ys_s <= 19)
    assert inside.sum() > 300
    expect = 3 * xs_s - 2 * ys_s + 5
    np.testing.assert_allclose(out.ravel()[inside], expect[inside], rtol=0, atol=1e-10)
    np.testing.assert_allclose(get_warp("homography").matrix(theta[None])[0].numpy(), H)


def test_positive_translation_moves_the_content_left_and_up():
    img = torch.zeros(6, 6, dtype=DT)
    img[3, 4] = 1.0
    out = warp(img, "translation", torch.tensor([2.0, 1.0], dtype=DT))
    assert out[2, 2] == 1.0 and out.sum() == 1.0  # target (2, 2) reads source (4, 3)


def test_matrix_models_agree_with_their_matrices():
    pts = torch.rand(9, 2, dtype=DT) * 30
    homog = torch.cat([pts, torch.ones(9, 1, dtype=DT)], 1)
    for name, theta in [("translation", [1.5, -2.0]), ("euclidean", [0.3, 1.0, 2.0]),
                        ("similarity", [0.1, 0.2, 3.0, -1.0]),
                        ("affine", [0.1, 0.2, 3.0, -0.1, 0.05, 1.0])]:
        w = get_warp(name)
        t = torch.tensor([theta], dtype=DT)
        m = w.matrix(t)[0]
        torch.testing.assert_close(w.apply(t, pts)[0], (homog @ m.T)[:, :2])
    c, s = np.cos(0.3), np.sin(0.3)
    np.testing.assert_allclose(get_warp("euclidean").matrix(torch.tensor([[0.3, 1.0, 2.0]]))[0],
                               [[c, -s, 1.0], [s, c, 2.0], [0, 0, 1]], atol=1e-7)
