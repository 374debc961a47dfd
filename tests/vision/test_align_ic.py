"""align(method="inverse_compositional"): the target's Jacobian formed once per level, the warp
composed with the inverse increment; known warps recovered and the forward-additive answer
reproduced."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import minimum_filter

from jacobite.errors import InvalidOptionError, UnsupportedOperationError
from jacobite.vision import MatrixWarp, align, warp
from jacobite.vision._align_ic import InverseLevel, _InverseEval
from jacobite.vision._align_solve import loss_weights
from jacobite.vision.align import _level_kind

from .test_align import TRUE, _truth, corner_error, texture

F64, F32 = torch.float64, torch.float32
IC = "inverse_compositional"


@pytest.mark.parametrize("model", list(TRUE))
def test_agrees_with_forward_additive_under_noise(model: str) -> None:
    src = texture(96, seed=1)
    theta, H = _truth(model)
    g = torch.Generator().manual_seed(5)
    tgt = warp(src, model, theta) + 0.02 * torch.randn(1, 1, 96, 96, generator=g, dtype=F64)
    ic = align(src, tgt, model, method=IC, tol=1e-5)
    fa = align(src, tgt, model, method="forward_additive", tol=1e-5)
    assert ic.status == fa.status == ["converged"]
    # the two stationary points differ by the noise's effect on where each linearises (the
    # target's gradients or the warped source's): both lie within 0.01 px of the truth
    assert corner_error(ic.matrix[0], fa.matrix[0], 96, 96) < 1e-2
    assert max(corner_error(r.matrix[0], H, 96, 96) for r in (ic, fa)) < 1e-2
    assert abs(float(ic.cost[0] - fa.cost[0])) < 1e-3 * float(fa.cost[0])


@pytest.mark.parametrize("model", ["translation", "similarity", "homography"])
def test_photograph_with_and_without_noise(model: str) -> None:
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.camera()).to(F32) / 255
    src = photo[160:288, 200:328]  # a 128 x 128 crop: the camera and the man's coat
    theta, H = _truth(model)
    tgt = warp(src, model, theta.float())
    exact = align(src, tgt, model, method=IC)
    assert exact.status == ["converged"] and corner_error(exact.matrix[0], H, 128, 128) < 1e-3
    g = torch.Generator().manual_seed(11)
    tgt = tgt + 0.01 * torch.randn(128, 128, generator=g)
    src = src + 0.01 * torch.randn(128, 128, generator=g)  # both images noisy
    ic = align(src, tgt, model, method=IC)
    fa = align(src, tgt, model, method="forward_additive")
    assert ic.status == fa.status == ["converged"]
    # at this noise either estimate is off by a few hundredths of a pixel (on a photograph's
    # sharp edges the target's differences and the sampler's slopes disagree most)
    assert corner_error(ic.matrix[0], H, 128, 128) < 0.1
    assert corner_error(fa.matrix[0], H, 128, 128) < 0.1
    assert corner_error(ic.matrix[0], fa.matrix[0], 128, 128) < 0.1


def test_homography_with_corners_moved_8_pixels() -> None:
    n = 128
    src = texture(n, seed=2, dtype=F32)
    theta = torch.tensor([0.05, -0.03, 6.0, 0.02, 0.04, -7.0, 2e-4, -1.5e-4], dtype=F64)
    H = MatrixWarp("homography").matrix(theta[None])[0]
    assert corner_error(H, torch.eye(3, dtype=F64), n, n) > 8
    res = align(src, warp(src, "homography", theta.float()), "homography", method=IC)
    assert res.status == ["converged"]
    assert corner_error(res.matrix[0], H, n, n) < 0.01


def test_batched_pairs_equal_single_calls() -> None:
    models = torch.stack([torch.tensor(TRUE["homography"], dtype=F64) * s for s in (0.5, 1)])
    src = torch.cat([texture(64, seed=s) for s in range(2)] + [texture(64, seed=9)])
    tgt = torch.cat([warp(src[:2], "homography", models), texture(64, seed=10)])
    res = align(src, tgt, "homography", method=IC)
    for b in range(3):
        one = align(src[b], tgt[b], "homography", method=IC)
        torch.testing.assert_close(res.params[b], one.params[0], atol=1e-9, rtol=0)
        assert res.status[b] == one.status[0]
        assert torch.equal(res.iterations[b], one.iterations[0])
    assert res.status[:2] == ["converged"] * 2 and res.status[2] != "converged"


def test_a_masked_occluder_does_not_bias_the_result() -> None:
    src = texture(96, seed=4)
    theta, H = _truth("affine")
    tgt = warp(src, "affine", theta).clone()
    tgt[..., 20:50, 30:60] = 5.0
    mask = torch.ones(96, 96, dtype=torch.bool)
    mask[20:50, 30:60] = False
    res = align(src, tgt, "affine", mask=mask, method=IC)
    assert res.status == ["converged"] and corner_error(res.matrix[0], H, 96, 96) < 1e-3
    assert corner_error(align(src, tgt, "affine", method=IC).matrix[0], H, 96, 96) > 1e-2


def _outliers(img: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    out = img.clone()
    out[..., torch.rand(96, 96, generator=g) < 0.05] += 8.0  # 5 % of the pixels corrupted
    return out


@pytest.mark.parametrize("loss", ["huber", "soft_l1", "cauchy"])
def test_robust_losses_discount_outliers_in_the_source(loss: str) -> None:
    # the Jacobian is read from the target, so outliers in the source only touch residuals
    theta, H = _truth("similarity")
    clean = texture(96, seed=6)
    src, tgt = _outliers(clean), warp(clean, "similarity", theta)
    robust = align(src, tgt, "similarity", loss=loss, method=IC).matrix[0]
    plain = align(src, tgt, "similarity", method=IC).matrix[0]
    assert corner_error(robust, H, 96, 96) < 0.03 < 0.3 < corner_error(plain, H, 96, 96)


def test_robust_loss_with_outliers_in_the_target() -> None:
    # outliers in the target spoil its gradients around them (eroded weights leave those
    # rows out): the robust loss still does much better than least squares
    theta, H = _truth("similarity")
    src = texture(96, seed=6)
    tgt = _outliers(warp(src, "similarity", theta))
    robust = align(src, tgt, "similarity", loss="cauchy", method=IC).matrix[0]
    plain = align(src, tgt, "similarity", method=IC).matrix[0]
    assert corner_error(robust, H, 96, 96) < 0.5 * corner_error(plain, H, 96, 96)


@pytest.mark.parametrize("model", list(TRUE))
def test_update_composes_with_the_inverse_increment(model: str) -> None:
    g = torch.Generator().manual_seed(2)
    p = len(TRUE[model])
    theta = torch.tensor(TRUE[model], dtype=F64)[None]
    delta = 1e-2 * torch.randn(1, p, generator=g, dtype=F64)
    lvl = InverseLevel(torch.zeros(1, 1, 8, 8, dtype=F64), torch.zeros(1, 1, 8, 8, dtype=F64),
                       torch.ones(1, 64, dtype=F64), model, "linear", torch.ones(1, dtype=F64),
                       5, 1e-3)
    w = MatrixWarp(model)
    expect = w.matrix(theta)[0].numpy() @ np.linalg.inv(w.matrix(-delta)[0].numpy())
    got = w.matrix(lvl.update(theta, delta))[0].numpy()
    np.testing.assert_allclose(got, expect / expect[2, 2], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss", ["linear", "cauchy"])
@pytest.mark.parametrize("model", ["translation", "euclidean", "homography"])
def test_level_jacobian_and_normal_equations(model: str, loss: str) -> None:
    # J: numpy's central differences of the target times the coordinate Jacobian at the
    # identity; the level's J^T M J, and A and g: dense products with the (eroded) mask,
    # inside-source and IRLS weights by hand
    g = torch.Generator().manual_seed(3)
    src = torch.rand(2, 2, 12, 13, generator=g, dtype=F64)
    tgt = torch.rand(2, 2, 10, 11, generator=g, dtype=F64)
    mask = (torch.rand(2, 110, generator=g) > 0.2).to(F64)
    scale = torch.tensor([0.3, 0.5], dtype=F64)
    lvl = InverseLevel(src, tgt, mask, model, loss, scale, 5, 1e-3)
    gy, gx = np.gradient(tgt.numpy(), axis=(-2, -1))
    G = np.stack([gx, gy], -1).reshape(2, 2, 110, 2)
    w = MatrixWarp(model)
    M = w.jacobian(w.identity(1, F64), lvl.points)[0].numpy()  # (P, 2, p)
    J = np.einsum("bcqk,qkj->bcqj", G, M).reshape(2, 220, -1)
    eroded = minimum_filter(mask.reshape(2, 10, 11).numpy(), size=(1, 3, 3), mode="nearest")
    wm = np.repeat(eroded.reshape(2, 1, -1), 2, axis=1).reshape(2, -1)
    np.testing.assert_allclose(lvl.hessian.numpy(), np.einsum("bmi,bm,bmj->bij", J, wm, J),
                               rtol=1e-10, atol=1e-10)
    theta = torch.tensor(TRUE[model], dtype=F64)[None].expand(2, -1) * torch.tensor(
        [[1.0], [0.5]], dtype=F64)
    e = _InverseEval(lvl, None, theta)
    pts = w.apply(theta, lvl.points)
    inside = ((pts >= 0) & (pts <= torch.tensor([12.0, 11.0], dtype=F64))).all(-1)
    r = (warp(src, model, theta, size=(10, 11)) - tgt).reshape(2, 2, -1)
    # the mask and the IRLS weights eroded: the least over each pixel's 3 x 3 neighbourhood
    irls = loss_weights(loss, r, scale[:, None, None]).reshape(2, 2, 10, 11).numpy()
    irls = minimum_filter(irls, size=(1, 1, 3, 3), mode="nearest").reshape(2, 2, -1)
    wts = eroded.reshape(2, 1, -1) * inside[:, None, :].numpy() * irls
    wf, rf = wts.reshape(2, -1), r.reshape(2, -1).numpy()
    np.testing.assert_allclose(e.A.numpy(), np.einsum("bmi,bm,bmj->bij", J, wf, J),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(e.g.numpy(), np.einsum("bmi,bm->bi", J, wf * rf),
                               rtol=1e-10, atol=1e-10)
    assert bool((~inside).any())  # the subtraction of the outside rows was exercised


def test_an_unknown_method_is_refused() -> None:
    img = texture(32)
    with pytest.raises(InvalidOptionError, match="forward_additive"):
        align(img, img, "affine", method="inverse")


def test_a_model_that_is_not_a_group_is_refused_naming_forward_additive() -> None:
    # every named model forms a group; the check stands for any model added without one
    assert _level_kind(IC, "homography") is InverseLevel
    with pytest.raises(UnsupportedOperationError, match="method='forward_additive'"):
        _level_kind(IC, "thin_plate_spline")


def test_multichannel_different_sizes_and_a_start() -> None:
    src = torch.cat([texture(80, seed=s) for s in (1, 2, 3)], dim=1)[0]  # (3, 80, 80)
    theta, H = _truth("affine")
    tgt = warp(src, "affine", theta, size=(64, 72))
    res = align(src, tgt, "affine", method=IC, params0=0.8 * theta)
    assert res.status == ["converged"] and res.warped.shape == (1, 3, 64, 72)
    assert corner_error(res.matrix[0], H, 64, 72) < 1e-3


def test_statuses_flat_outside_and_max_iterations() -> None:
    flat = torch.zeros(32, 32, dtype=F64)
    res = align(flat, flat, "homography", method=IC)
    assert res.status == ["no_match"] and torch.equal(res.params, torch.zeros(1, 8, dtype=F64))
    src = texture(64, seed=8)
    far = align(src, src, "translation", params0=torch.tensor([500.0, 0.0], dtype=F64),
                method=IC)
    assert far.status == ["diverged"] and torch.isfinite(far.params).all()
    tgt = warp(src, "homography", torch.tensor(TRUE["homography"], dtype=F64))
    one = align(src, tgt, "homography", pyramid=1, max_iter=1, method=IC)
    assert one.status == ["max_iterations"] and one.iterations.tolist() == [[1]]


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=8, max_size=8))
def test_random_homographies_are_recovered_like_forward_additive(u: list[float]) -> None:
    # up to 3 % linear change, 3 px shift and a 2e-4 perspective: corners move up to ~8 px
    theta = torch.tensor(u, dtype=F64) * torch.tensor([0.03, 0.03, 3, 0.03, 0.03, 3, 2e-4,
                                                       2e-4], dtype=F64)
    src = texture(80, seed=12)
    tgt = warp(src, "homography", theta)
    ic = align(src, tgt, "homography", method=IC)
    fa = align(src, tgt, "homography")
    H = MatrixWarp("homography").matrix(theta[None])[0]
    assert ic.status == ["converged"]
    assert corner_error(ic.matrix[0], H, 80, 80) < 1e-3
    assert corner_error(ic.matrix[0], fa.matrix[0], 80, 80) < 1e-3


def test_ten_pixel_translation_of_a_photograph_without_a_pyramid() -> None:
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.camera()).to(F32) / 255
    src, tgt = photo[128:384, 128:384], photo[128:384, 138:394]  # target(p) = source(p + 10 x)
    res = align(src, tgt, "translation", pyramid=1, method=IC)
    assert res.status == ["converged"]
    torch.testing.assert_close(res.params[0], torch.tensor([10.0, 0.0]), atol=1e-3, rtol=0)
