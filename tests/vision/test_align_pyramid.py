"""The pyramid: 2 × 2 averages, and each model's parameters carried exactly between levels."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.vision import MatrixWarp
from jacobite.vision._align_pyramid import auto_levels, downsample, from_matrix, rescale

F64 = torch.float64
SIZES = {"translation": 2, "euclidean": 3, "similarity": 4, "affine": 6, "homography": 8}
SCALE = {"translation": [3.0] * 2, "euclidean": [0.2, 3, 3], "similarity": [0.1, 0.1, 3, 3],
         "affine": [0.1, 0.1, 3] * 2, "homography": [0.1, 0.1, 3, 0.1, 0.1, 3, 1e-3, 1e-3]}


def _params(model: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(3, SIZES[model], generator=g, dtype=F64) - 1) * torch.tensor(
        SCALE[model], dtype=F64)


@settings(max_examples=30, deadline=None)
@given(model=st.sampled_from(list(SIZES)), seed=st.integers(0, 2**31 - 1))
def test_coarse_map_is_the_fine_map_seen_on_the_coarse_grid(model: str, seed: int) -> None:
    # a coarse pixel i is the fine point 2 i + 0.5, so W_coarse(p) = (W_fine(2p + 0.5) - 0.5) / 2
    fine = _params(model, seed)
    coarse = rescale(model, fine, coarser=True)
    w = MatrixWarp(model)
    g = torch.Generator().manual_seed(seed + 1)
    p = 40 * torch.rand(50, 2, generator=g, dtype=F64)
    expect = (w.apply(fine, 2 * p + 0.5) - 0.5) / 2
    torch.testing.assert_close(w.apply(coarse, p), expect, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(rescale(model, coarse, coarser=False), fine, atol=1e-12,
                               rtol=1e-12)


def test_translation_halves_and_homography_last_row_doubles() -> None:
    t = torch.tensor([[10.0, -6.0]], dtype=F64)
    torch.testing.assert_close(rescale("translation", t, coarser=True), t / 2)
    h = torch.tensor([[0.0, 0, 4, 0, 0, -2, 1e-3, -2e-3]], dtype=F64)
    c = rescale("homography", h, coarser=True)
    # S^-1 H S with S = [[2, 0, .5], [0, 2, .5], [0, 0, 1]], then scaled to corner entry 1
    corner = 1 + 0.5 * (1e-3 - 2e-3)
    torch.testing.assert_close(c[0, 6:], torch.tensor([2e-3, -4e-3], dtype=F64) / corner)
    # an affine shift: (t + (A - I)(0.5, 0.5)) / 2, the linear part kept
    a = torch.tensor([[0.1, 0.2, 4.0, -0.1, 0.3, 2.0]], dtype=F64)
    ca = rescale("affine", a, coarser=True)[0]
    torch.testing.assert_close(ca[[0, 1, 3, 4]], a[0, [0, 1, 3, 4]])
    torch.testing.assert_close(ca[[2, 5]], torch.tensor([(4 + 0.15) / 2, (2 + 0.1) / 2],
                                                        dtype=F64))


@pytest.mark.parametrize("model", list(SIZES))
def test_from_matrix_inverts_matrix(model: str) -> None:
    p = _params(model, 3)
    torch.testing.assert_close(from_matrix(model, MatrixWarp(model).matrix(p)), p)


def test_downsample_and_levels() -> None:
    img = torch.arange(30.0, dtype=F64).reshape(1, 1, 5, 6)
    torch.testing.assert_close(downsample(img)[0, 0, 0, 0], img[0, 0, :2, :2].mean())
    assert downsample(img).shape == (1, 1, 2, 3)
    assert [auto_levels(n, n) for n in (16, 32, 63, 64, 128, 256, 512)] == [1, 1, 1, 2, 3, 4, 5]

