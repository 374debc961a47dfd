"""The vision benchmark's harness: its cases hold the warp they claim, kornia's registration
matrix is read the right way round (checked on known warps), and missing peers leave
jacobite's rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import _vision_cases as vc
from benchmarks import bench_vision as bv
from jacobite.vision import warp


def _inside(H: np.ndarray, n: int, margin: float = 1.0) -> torch.Tensor:
    ys, xs = np.mgrid[0:n, 0:n]
    s = H @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = s[0] / s[2], s[1] / s[2]
    lo, hi = margin, n - 1 - margin
    return torch.from_numpy(((sx >= lo) & (sx <= hi) & (sy >= lo) & (sy <= hi)).reshape(n, n))


def test_the_corner_case_target_is_the_source_through_the_true_matrix() -> None:
    case = vc.corner_case(vc.texture(96, seed=3), 16, 16, n=64, seed=5, px=8.0)
    c = vc.square_corners(64)
    moved = np.c_[c, np.ones(4)] @ case.H.T
    moved = moved[:, :2] / moved[:, 2:]
    assert 0 < np.abs(moved - c).max() <= 8.0
    ours = warp(case.source, "homography", vc.homography_params(case.H))
    inside = _inside(case.H, 64)
    assert inside.float().mean() > 0.7
    torch.testing.assert_close(ours[inside], case.target[inside], rtol=0, atol=1e-12)


def test_homography_from_corners_and_the_corner_error() -> None:
    c = vc.square_corners(10)
    to = c + np.array([[1.0, 0], [0, 2], [-1, 0], [0, 0]])
    H = vc.homography_from_corners(c, to)
    img = np.c_[c, np.ones(4)] @ H.T
    np.testing.assert_allclose(img[:, :2] / img[:, 2:], to, atol=1e-12)
    assert vc.corner_error(H, np.eye(3), 10) == pytest.approx(2.0)
    assert vc.corner_error(3 * H, H, 10) == pytest.approx(0.0, abs=1e-12)


def test_kornia_warper_reads_the_normalised_true_matrix_as_the_target() -> None:
    pytest.importorskip("kornia")
    case = vc.corner_case(vc.texture(96, seed=1), 16, 16, n=64, seed=2, px=8.0)
    assert vc.kornia_convention_gap(case) < 1e-5
    flipped = vc.CornerCase(case.source, case.target, np.linalg.inv(case.H), case.n)
    assert vc.kornia_convention_gap(flipped) > 0.05  # the inverse reads other pixels
    N = vc.normaliser(64, 64)
    np.testing.assert_allclose(vc.kornia_to_pixels(2 * N @ case.H @ np.linalg.inv(N), 64, 64),
                               case.H, atol=1e-12)


def test_kornia_registration_of_a_known_shift_comes_back_as_that_shift_in_pixels() -> None:
    pytest.importorskip("kornia")
    torch.manual_seed(0)
    world = vc.texture(96, seed=4)
    src, tgt = world[16:80, 16:80], world[16:80, 19:83]  # target(p) = source(p + (3, 0))
    H = bv._kornia(1e-2)(vc.CornerCase(src, tgt, np.eye(3), 64))
    assert abs(H[0, 2] - 3.0) < 0.5 and abs(H[1, 2]) < 0.5


def test_affine_batch_targets_hold_their_parameters() -> None:
    src, tgt, truth = vc.affine_batch(3, 32, seed=1)
    for s, t, th in zip(src, tgt, truth, strict=True):
        A = np.vstack([np.eye(3)[:2] + th.numpy().reshape(2, 3), [0, 0, 1]])
        inside = _inside(A, 32)
        torch.testing.assert_close(warp(s[0], "affine", th)[inside], t[0][inside], rtol=0,
                                   atol=1e-12)


def test_photo_batch_targets_hold_their_parameters_and_errors_read_them() -> None:
    world = vc.texture(200, seed=6)
    src, tgt, truth = vc.photo_affine_batch(world, 3, 48, seed=2)
    for s, t, th in zip(src, tgt, truth, strict=True):
        A = np.vstack([np.eye(3)[:2] + th.numpy().reshape(2, 3), [0, 0, 1]])
        inside = _inside(A, 48)
        torch.testing.assert_close(warp(s[0], "affine", th)[inside], t[0][inside], rtol=0,
                                   atol=1e-12)
    errs = vc.affine_corner_errors(truth, truth, 48)
    assert errs.shape == (3,) and errs.max() == 0
    moved = truth.clone()
    moved[:, 2] += 0.5  # half a pixel along x
    np.testing.assert_allclose(vc.affine_corner_errors(moved, truth, 48), 0.5, atol=1e-12)


def test_missing_peers_leave_jacobite_rows(monkeypatch) -> None:
    monkeypatch.setattr(bv, "have", lambda name: False)
    sec = bv.homography(True)
    assert [r[1] for r in sec.rows][:2] == ["jacobite align, float32", "jacobite align, float64"]
    assert all(r[1].startswith("jacobite") and r[0] == "texture" for r in sec.rows)
    assert any("kornia: not installed" in n for n in sec.notes)
    assert bv.translation(True).rows[0][0] == "skipped: install scikit-image"
    assert bv.truthful(True).rows[0][0] == "skipped: install scikit-image"
