"""align: known warps recovered for every model, pyramid, batching, robust losses, status."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.vision import MatrixWarp, align, warp

F64, F32 = torch.float64, torch.float32

TRUE = {
    "translation": [2.5, -1.75],
    "euclidean": [0.03, 2.0, -1.5],
    "similarity": [0.02, -0.025, 1.5, 2.0],
    "affine": [0.02, -0.03, 2.0, 0.025, -0.02, -1.0],
    "homography": [0.02, -0.03, 3.0, 0.025, -0.02, -4.0, 1e-4, -8e-5],
}


def texture(n: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    """A smooth random texture of unit variance, ``(1, 1, n, n)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, n, n, generator=g, dtype=F64)
    for _ in range(3):
        x = torch.nn.functional.avg_pool2d(x, 7, 1, 3, count_include_pad=False)
    return ((x - x.mean()) / x.std()).to(dtype)


def corner_error(matrix: torch.Tensor, truth: torch.Tensor, h: int, w: int) -> float:
    """The largest distance between the images of the four corners under two matrices."""
    c = torch.tensor([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1.0]],
                     dtype=F64).T
    a, b = matrix.double() @ c, truth.double() @ c
    return float((a[..., :2, :] / a[..., 2:, :] - b[..., :2, :] / b[..., 2:, :])
                 .norm(dim=-2).max())


def _truth(model: str) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.tensor(TRUE[model], dtype=F64)
    return theta, MatrixWarp(model).matrix(theta[None])[0]


# the largest corner error allowed, per method and dtype
CORNER_TOL = {("forward_additive", F64): 1e-4, ("forward_additive", F32): 2e-3,
              ("inverse_compositional", F64): 1e-3, ("inverse_compositional", F32): 1e-3}


@pytest.mark.parametrize("method", ["forward_additive", "inverse_compositional"])
@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("model", list(TRUE))
def test_recovers_a_known_warp_of_every_model(model: str, dtype: torch.dtype,
                                              method: str) -> None:
    src = texture(96, dtype=dtype)
    theta, H = _truth(model)
    tgt = warp(src, model, theta.to(dtype))
    res = align(src, tgt, model, method=method)
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], H, 96, 96) < CORNER_TOL[method, dtype]
    assert res.params.dtype == dtype and res.matrix.shape == (1, 3, 3)
    assert res.iterations.shape == (1, res.levels)
    assert float((res.warped - tgt).abs().max()) < 0.05


@pytest.mark.parametrize("model", list(TRUE))
def test_recovers_a_known_warp_under_noise(model: str) -> None:
    src = texture(96, seed=1)
    theta, H = _truth(model)
    g = torch.Generator().manual_seed(5)
    tgt = warp(src, model, theta) + 0.02 * torch.randn(1, 1, 96, 96, generator=g, dtype=F64)
    res = align(src, tgt, model)
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], H, 96, 96) < 0.05


def test_homography_with_corners_moved_8_pixels_to_a_hundredth_of_a_pixel() -> None:
    n = 128
    src = texture(n, seed=2, dtype=F32)
    # corners pushed by (up to) 8 px: solve for the homography taking them there
    c = torch.tensor([[0, 0], [n - 1, 0], [0, n - 1], [n - 1, n - 1.0]], dtype=F64)
    moved = c + torch.tensor([[8.0, 0], [-5, 6], [3, -8], [-6, -6]], dtype=F64)
    rows, rhs = [], []
    for (x, y), (u, v) in zip(c.tolist(), moved.tolist(), strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    h = torch.linalg.solve(torch.tensor(rows, dtype=F64), torch.tensor(rhs, dtype=F64))
    H = torch.cat([h, torch.ones(1, dtype=F64)]).reshape(3, 3)
    assert 8 < corner_error(H, torch.eye(3, dtype=F64), n, n) < 8.6  # 8 px on an axis
    theta = (H - torch.eye(3, dtype=F64)).reshape(-1)[:8]
    tgt = warp(src, "homography", theta.float())
    res = align(src, tgt, "homography")
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], H, n, n) < 0.01


def test_ten_pixel_translation_on_256_converges_with_the_pyramid() -> None:
    src = texture(256, seed=3, dtype=F32)
    tgt = warp(src, "translation", torch.tensor([10.0, -7.0]))
    res = align(src, tgt, "translation")
    assert res.levels == 4 and res.status == ["converged"]
    torch.testing.assert_close(res.params[0], torch.tensor([10.0, -7.0]), atol=1e-3, rtol=0)


def test_batched_pairs_equal_single_calls() -> None:
    models = torch.stack([torch.tensor(TRUE["affine"], dtype=F64) * s for s in (0.5, 1, -1)])
    src = torch.cat([texture(64, seed=s) for s in range(3)])
    tgt = warp(src, "affine", models)
    # one unrelated pair in the batch: it must not change the others' results
    src = torch.cat([src, texture(64, seed=9)])
    tgt = torch.cat([tgt, texture(64, seed=10)])
    res = align(src, tgt, "affine")
    for b in range(4):
        one = align(src[b], tgt[b], "affine")
        torch.testing.assert_close(res.params[b], one.params[0], atol=1e-9, rtol=0)
        assert res.status[b] == one.status[0]
        assert torch.equal(res.iterations[b], one.iterations[0])
    assert res.status[:3] == ["converged"] * 3


@pytest.mark.parametrize("model", ["translation", "affine", "homography"])
def test_unrelated_images_are_not_reported_converged(model: str) -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 1, 1, 96, 96, generator=g, dtype=F64)
    res = align(a, b, model)
    assert res.status[0] in ("no_match", "max_iterations", "diverged")
    assert not bool(res.converged[0])


def test_a_masked_occluder_does_not_bias_the_result() -> None:
    src = texture(96, seed=4)
    theta, H = _truth("affine")
    tgt = warp(src, "affine", theta).clone()
    tgt[..., 20:50, 30:60] = 5.0  # an occluder
    mask = torch.ones(96, 96, dtype=torch.bool)
    mask[20:50, 30:60] = False
    assert corner_error(align(src, tgt, "affine", mask=mask).matrix[0], H, 96, 96) < 1e-4
    assert corner_error(align(src, tgt, "affine").matrix[0], H, 96, 96) > 1e-2


@pytest.mark.parametrize("loss", ["huber", "soft_l1", "cauchy"])
def test_robust_losses_discount_outliers(loss: str) -> None:
    src = texture(96, seed=6)
    theta, H = _truth("similarity")
    tgt = warp(src, "similarity", theta).clone()
    g = torch.Generator().manual_seed(0)
    hit = torch.rand(96, 96, generator=g) < 0.05
    tgt[..., hit] += 8.0  # 5 % of the pixels corrupted
    robust = corner_error(align(src, tgt, "similarity", loss=loss).matrix[0], H, 96, 96)
    plain = corner_error(align(src, tgt, "similarity").matrix[0], H, 96, 96)
    assert robust < 0.02 < plain


def test_start_and_single_level() -> None:
    src = texture(64, seed=7)
    theta, H = _truth("euclidean")
    tgt = warp(src, "euclidean", theta)
    res = align(src, tgt, "euclidean", params0=theta * 0.9, pyramid=1, tol=1e-6)
    assert res.levels == 1 and res.status == ["converged"]
    assert corner_error(res.matrix[0], H, 64, 64) < 1e-6


def test_max_iterations_is_reported() -> None:
    src = texture(64, seed=8)
    tgt = warp(src, "homography", torch.tensor(TRUE["homography"], dtype=F64))
    res = align(src, tgt, "homography", pyramid=1, max_iter=1)
    assert res.status == ["max_iterations"] and res.iterations.tolist() == [[1]]


def test_multichannel_and_different_sizes() -> None:
    src = torch.cat([texture(80, seed=s) for s in (1, 2, 3)], dim=1)[0]  # (3, 80, 80)
    theta, H = _truth("affine")
    tgt = warp(src, "affine", theta, size=(64, 72))
    res = align(src, tgt, "affine")
    assert res.warped.shape == (1, 3, 64, 72)
    assert corner_error(res.matrix[0], H, 64, 72) < 1e-4


@pytest.mark.parametrize("model", ["similarity", "homography"])
def test_recovers_a_known_warp_on_a_photograph_with_noise(model: str) -> None:
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.camera()).to(F32) / 255
    src = photo[160:288, 200:328]  # a 128 x 128 crop: the camera and the man's coat
    theta, H = _truth(model)
    g = torch.Generator().manual_seed(11)
    tgt = warp(src, model, theta.float()) + 0.01 * torch.randn(128, 128, generator=g)
    res = align(src, tgt, model)
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], H, 128, 128) < 0.02


def test_a_start_outside_the_source_is_reported_diverged() -> None:
    src = texture(64, seed=8)
    res = align(src, src, "translation", params0=torch.tensor([500.0, 0.0], dtype=F64))
    assert res.status == ["diverged"] and not bool(res.converged[0])
    assert torch.isfinite(res.params).all()


@pytest.mark.parametrize("model", ["translation", "homography"])
def test_flat_images_are_a_finite_no_match(model: str) -> None:
    flat = torch.zeros(32, 32, dtype=F64)
    res = align(flat, flat, model)
    assert res.status == ["no_match"]
    assert torch.equal(res.params, torch.zeros_like(res.params))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=6, max_size=6))
def test_random_affine_warps_are_recovered(u: list[float]) -> None:
    # up to 3 % shear / scale and 3 px shift: corners move by up to ~6 px on 80 x 80
    theta = torch.tensor(u, dtype=F64) * torch.tensor([0.03, 0.03, 3, 0.03, 0.03, 3],
                                                      dtype=F64)
    src = texture(80, seed=12)
    res = align(src, warp(src, "affine", theta), "affine")
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], MatrixWarp("affine").matrix(theta[None])[0],
                        80, 80) < 1e-4
