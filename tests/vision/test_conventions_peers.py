"""The pixel conventions against peers: kornia's matrices and helpers, OpenCV's documented rule.

jacobite's matrix ``H`` maps target pixels to source pixels (``warped(p) = source(H p)``);
kornia's ``warp_perspective(src, M)`` and OpenCV's ``warpPerspective(src, M)`` take the matrix
that moves the image, ``dst(p) = src(M⁻¹ p)``, so ``M = H⁻¹`` (OpenCV's ``WARP_INVERSE_MAP``
flag takes ``H`` itself). All three put pixel centres at integers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.vision import get_warp, to_normalized, warp

DT = torch.float64
THETA = torch.tensor([0.03, -0.04, 2.5, 0.02, -0.03, -1.7, 6e-4, -4e-4], dtype=DT)
SHAPE = (40, 48)


def _image() -> torch.Tensor:
    """A smooth test image (bilinear sampling error small against its detail)."""
    ys, xs = torch.meshgrid(torch.arange(SHAPE[0], dtype=DT), torch.arange(SHAPE[1], dtype=DT),
                            indexing="ij")
    return torch.sin(0.3 * xs) * torch.cos(0.2 * ys) + 0.01 * xs


def _inside(H: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Target pixels whose source point ``H p`` lies ``margin`` inside the source image."""
    h, w = SHAPE
    ys, xs = np.mgrid[0:h, 0:w]
    s = H @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = s[0] / s[2], s[1] / s[2]
    ok = (sx >= margin) & (sx <= w - 1 - margin) & (sy >= margin) & (sy <= h - 1 - margin)
    return ok.reshape(h, w)


def _matrix(theta: torch.Tensor, model: str = "homography") -> np.ndarray:
    return get_warp(model).matrix(theta[None])[0].numpy()


# ---- kornia -----------------------------------------------------------------------------------

@pytest.mark.parametrize("align_corners", [False, True])
def test_kornia_warp_perspective_with_the_inverse_matrix_matches(align_corners):
    kg = pytest.importorskip("kornia.geometry.transform")
    img = _image()
    H = _matrix(THETA)
    ours = warp(img, "homography", THETA, align_corners=align_corners)
    theirs = kg.warp_perspective(img[None, None], torch.from_numpy(np.linalg.inv(H))[None],
                                 dsize=SHAPE, align_corners=True)[0, 0]
    inside = torch.from_numpy(_inside(H))
    assert inside.sum() > 0.6 * inside.numel()
    torch.testing.assert_close(ours[inside], theirs[inside], rtol=0, atol=1e-10)
    # passing H itself (the wrong way round) reads different pixels
    wrong = kg.warp_perspective(img[None, None], torch.from_numpy(H)[None], dsize=SHAPE)[0, 0]
    assert (ours - wrong)[inside].abs().max() > 0.1


def test_kornia_get_perspective_transform_from_target_to_source_corners_is_our_matrix():
    kg = pytest.importorskip("kornia.geometry.transform")
    H = _matrix(THETA)
    h, w = SHAPE
    target = np.array([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1]])
    t = np.c_[target, np.ones(4)] @ H.T
    source = t[:, :2] / t[:, 2:]
    M = kg.get_perspective_transform(torch.from_numpy(source)[None],
                                     torch.from_numpy(target)[None])[0].numpy()  # source->target
    np.testing.assert_allclose(np.linalg.inv(M) / np.linalg.inv(M)[2, 2], H, atol=1e-9)


def test_kornia_warp_affine_with_the_inverse_matrix_matches():
    kg = pytest.importorskip("kornia.geometry.transform")
    img = _image()
    theta = THETA[:6]
    A = _matrix(theta, "affine")
    ours = warp(img, "affine", theta)
    M = torch.from_numpy(np.linalg.inv(A)[:2])[None]
    theirs = kg.warp_affine(img[None, None], M, dsize=SHAPE, align_corners=True)[0, 0]
    inside = torch.from_numpy(_inside(A))
    torch.testing.assert_close(ours[inside], theirs[inside], rtol=0, atol=1e-10)


@pytest.mark.parametrize("size", [(5, 7), (40, 48)])
def test_kornia_normalised_coordinates_are_ours_with_align_corners(size):
    kc = pytest.importorskip("kornia.geometry.conversions")
    h, w = size
    pts = torch.rand(30, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    pts = pts * torch.tensor([w - 1, h - 1], dtype=DT)
    theirs = kc.normalize_pixel_coordinates(pts, h, w)
    torch.testing.assert_close(to_normalized(pts, (h, w), align_corners=True), theirs,
                               rtol=0, atol=1e-12)
    back = kc.denormalize_pixel_coordinates(to_normalized(pts, (h, w), True), h, w)
    torch.testing.assert_close(back, pts, rtol=0, atol=1e-12)


# ---- OpenCV ------------------------------------------------------------------------------------

def _bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``src`` read at real pixel coordinates (centres at integers), zero outside the image."""
    h, w = src.shape
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    out = np.zeros_like(x)
    for dy, dx, wt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)),
                       (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out[ok] += wt[ok] * src[yi[ok], xi[ok]]
    return out


def _opencv_rule(src: np.ndarray, M: np.ndarray, inverse_map: bool) -> np.ndarray:
    """OpenCV's documented warpPerspective: ``dst(x, y) = src(M⁻¹ (x, y))``, or with
    ``WARP_INVERSE_MAP`` ``dst(x, y) = src(M (x, y))`` (homogeneous divide, bilinear)."""
    h, w = src.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(float)
    T = M if inverse_map else np.linalg.inv(M)
    s = T @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    return _bilinear(src, s[0] / s[2], s[1] / s[2]).reshape(h, w)


def test_the_documented_opencv_rule_with_the_inverse_matrix_matches():
    img = _image()
    H = _matrix(THETA)
    ours = warp(img, "homography", THETA).numpy()
    inside = _inside(H, margin=0.0)
    np.testing.assert_allclose(ours[inside], _opencv_rule(img.numpy(), np.linalg.inv(H),
                                                          False)[inside], rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours[inside], _opencv_rule(img.numpy(), H, True)[inside],
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("inverse_map", [False, True])
def test_cv2_warp_perspective_matches_where_installed(inverse_map):
    cv2 = pytest.importorskip("cv2")
    img = _image()
    H = _matrix(THETA)
    ours = warp(img, "homography", THETA).numpy()
    M = H if inverse_map else np.linalg.inv(H)
    flags = cv2.INTER_LINEAR | (cv2.WARP_INVERSE_MAP if inverse_map else 0)
    theirs = cv2.warpPerspective(img.numpy(), M, SHAPE[::-1], flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = _inside(H)
    # OpenCV interpolates with weights quantised to 1/32 of a pixel
    np.testing.assert_allclose(ours[inside], theirs[inside], rtol=0, atol=0.03)
