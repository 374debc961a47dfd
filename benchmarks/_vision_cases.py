"""Cases for the vision benchmark: textures and photographs, homographies with displaced corners,
and the conversion of kornia's registration matrix to pixel coordinates.

A case crops its source from a larger *world* image and reads its target from the same world
through the true warp, ``target(p) = world(T H p)`` with ``T`` the crop's offset, so
``target(p) = source(H p)`` wherever ``H p`` lies in the crop and the target has no black
border of its own. ``H`` maps target pixels to source pixels (jacobite's convention: pixel
centres at integers, ``x`` right, ``y`` down).

    >>> world = texture(96, seed=0)
    >>> case = corner_case(world, 16, 16, n=64, seed=0, px=4.0)
    >>> case.source.shape, case.target.shape, round(corner_error(case.H, case.H, 64), 6)
    (torch.Size([64, 64]), torch.Size([64, 64]), 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from jacobite.vision import warp

F64 = torch.float64


def texture(n: int, seed: int = 0) -> torch.Tensor:
    """A smooth random ``(n, n)`` float64 texture with values in ``[0, 1]`` (uniform noise
    blurred three times by a 7 × 7 box)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, n, n, generator=g, dtype=F64)
    for _ in range(3):
        x = F.avg_pool2d(x, 7, 1, 3, count_include_pad=False)
    x = x[0, 0]
    return (x - x.min()) / (x.max() - x.min())


def photo(name: str = "camera") -> torch.Tensor:
    """A grey-level scikit-image sample photograph as float64 in ``[0, 1]``
    (``ModuleNotFoundError`` without scikit-image)."""
    from skimage import data

    img = np.asarray(getattr(data, name)(), dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3].mean(-1)
    return torch.from_numpy(img / 255.0)


def square_corners(n: int) -> np.ndarray:
    """The four corner pixel centres of an ``n × n`` image, ``(4, 2)``."""
    return np.array([[0.0, 0.0], [n - 1, 0.0], [n - 1, n - 1], [0.0, n - 1]])


def homography_from_corners(frm: np.ndarray, to: np.ndarray) -> np.ndarray:
    """The ``3 × 3`` matrix with corner entry 1 sending the four points ``frm`` to ``to``
    (``(4, 2)`` each): eight linear equations in the other eight entries."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(frm, to, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


def homography_params(H: np.ndarray) -> torch.Tensor:
    """jacobite's homography parameters of ``H``: ``H / H[2, 2] − I`` read row by row,
    the last entry dropped."""
    m = H / H[2, 2] - np.eye(3)
    return torch.from_numpy(m.reshape(-1)[:8].copy())


@dataclass
class CornerCase:
    """A source crop, its target and the true pixel matrix ``H`` (target to source)."""

    source: torch.Tensor  # (n, n) float64
    target: torch.Tensor  # (n, n) float64
    H: np.ndarray  # (3, 3)
    n: int


def corner_case(world: torch.Tensor, x0: int, y0: int, *, n: int = 128, seed: int = 0,
                px: float = 8.0) -> CornerCase:
    """The crop of ``world`` at ``(x0, y0)`` as the source; the target sees it through the
    homography moving each corner by a seeded uniform draw in ``[−px, px]²``."""
    rng = np.random.default_rng(seed)
    c = square_corners(n)
    H = homography_from_corners(c, c + rng.uniform(-px, px, (4, 2)))
    shift = np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]])
    target = warp(world, "homography", homography_params(shift @ H), size=(n, n))
    return CornerCase(world[y0:y0 + n, x0:x0 + n].contiguous(), target, H, n)


def corner_error(H_est: np.ndarray, H_true: np.ndarray, n: int) -> float:
    """The largest distance in pixels between the images of an ``n × n`` target's corners
    under the two matrices."""
    c = np.c_[square_corners(n), np.ones(4)]
    a, b = c @ np.asarray(H_est, dtype=np.float64).T, c @ H_true.T
    return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).max())


def normaliser(h: int, w: int) -> np.ndarray:
    """The matrix taking pixel coordinates to ``grid_sample``'s ``[−1, 1]`` with
    ``align_corners=False``: ``u = (2x + 1) / W − 1``."""
    return np.array([[2.0 / w, 0, 1.0 / w - 1], [0, 2.0 / h, 1.0 / h - 1], [0, 0, 1]])


def kornia_to_pixels(M: np.ndarray, h: int, w: int) -> np.ndarray:
    """kornia ``ImageRegistrator``'s matrix as a jacobite pixel matrix, ``N⁻¹ M N``.

    The registrator's model maps destination (target) points to source points in the
    normalised coordinates of ``align_corners=False``; :func:`kornia_convention_gap` checks
    this reading against a known warp.
    """
    N = normaliser(h, w)
    P = np.linalg.solve(N, np.asarray(M, dtype=np.float64) @ N)
    return P / P[2, 2]


def kornia_convention_gap(case: CornerCase) -> float:
    """How far kornia's registration warper, handed ``N H N⁻¹``, is from the case's target:
    the largest difference over the target pixels whose source point lies one pixel inside
    the crop. About 1e-6 (float32) when :func:`kornia_to_pixels` reads kornia's matrices
    the right way round."""
    from kornia.geometry.transform import HomographyWarper

    n = case.n
    N = normaliser(n, n)
    M = torch.from_numpy(N @ case.H @ np.linalg.inv(N)).float()[None]
    out = HomographyWarper(n, n)(case.source.float()[None, None], M)[0, 0].double()
    ys, xs = np.mgrid[0:n, 0:n]
    s = case.H @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    sx, sy = s[0] / s[2], s[1] / s[2]
    inside = torch.from_numpy(((sx >= 1) & (sx <= n - 2) & (sy >= 1) & (sy <= n - 2))
                              .reshape(n, n))
    return float((out - case.target)[inside].abs().max())


AFFINE_LIMITS = np.array([0.03, 0.03, 3.0, 0.03, 0.03, 3.0])


def _affine_pair(world: torch.Tensor, x0: int, y0: int, n: int,
                 theta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop of ``world`` at ``(x0, y0)`` and its target under the affine ``theta``."""
    A = np.vstack([np.eye(3)[:2] + theta.reshape(2, 3), [0, 0, 1]])
    A = np.array([[1.0, 0, x0], [0, 1, y0], [0, 0, 1]]) @ A
    prm = torch.from_numpy((A - np.eye(3))[:2].reshape(-1).copy())
    return world[y0:y0 + n, x0:x0 + n], warp(world, "affine", prm, size=(n, n))


def affine_batch(count: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                              torch.Tensor]:
    """``count`` source crops ``(count, 1, n, n)`` of seeded textures, their targets under
    random affine maps (up to 3 % linear change and 3 px shift) and the true parameters
    ``(count, 6)``, all float64."""
    rng = np.random.default_rng(seed)
    pairs, thetas = [], []
    for k in range(count):
        theta = rng.uniform(-1, 1, 6) * AFFINE_LIMITS
        pairs.append(_affine_pair(texture(n + 32, seed=seed * 1000 + k), 16, 16, n, theta))
        thetas.append(theta)
    return (torch.stack([p[0] for p in pairs])[:, None],
            torch.stack([p[1] for p in pairs])[:, None], torch.from_numpy(np.array(thetas)))


def photo_affine_batch(world: torch.Tensor, count: int, n: int, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As :func:`affine_batch`, but ``count`` crops of one photograph at seeded positions at
    least 40 px inside its border — textured or flat, as they fall."""
    rng = np.random.default_rng(seed)
    h, w = world.shape
    pairs, thetas = [], []
    for _ in range(count):
        x0, y0 = int(rng.integers(40, w - n - 40)), int(rng.integers(40, h - n - 40))
        theta = rng.uniform(-1, 1, 6) * AFFINE_LIMITS
        pairs.append(_affine_pair(world, x0, y0, n, theta))
        thetas.append(theta)
    return (torch.stack([p[0] for p in pairs])[:, None],
            torch.stack([p[1] for p in pairs])[:, None], torch.from_numpy(np.array(thetas)))


def affine_corner_errors(params: torch.Tensor, truth: torch.Tensor, n: int) -> np.ndarray:
    """Per pair, :func:`corner_error` between found and true affine parameters ``(B, 6)``."""
    def matrix(t: np.ndarray) -> np.ndarray:
        return np.vstack([np.eye(3)[:2] + t.reshape(2, 3), [0, 0, 1]])

    return np.array([corner_error(matrix(p), matrix(t), n) for p, t in
                     zip(params.double().numpy(), truth.numpy(), strict=True)])
