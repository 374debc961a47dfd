"""The solver's evaluation of the residual's Jacobian against the public warp_jacobian."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from jacobite.vision import MatrixWarp, warp, warp_jacobian
from jacobite.vision._align_solve import (
    Level,
    _Eval,
    _factors,
    loss_value,
    loss_weights,
)
from jacobite.vision.align import _loss_scale

F64 = torch.float64
SIZES = {"translation": 2, "euclidean": 3, "similarity": 4, "affine": 6, "homography": 8}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("model", list(SIZES))
def test_level_gradients_equal_warp_jacobian(model: str, channels: int) -> None:
    g = torch.Generator().manual_seed(4)
    src = torch.rand(3, channels, 12, 14, generator=g, dtype=F64)
    tgt = torch.rand(3, channels, 10, 11, generator=g, dtype=F64)
    theta = 0.05 * torch.rand(3, SIZES[model], generator=g, dtype=F64)
    theta[:, -2:] *= 1e-2 if model == "homography" else 1
    lvl = Level(src, tgt, torch.ones(3, 110, dtype=F64), model, "linear",
                torch.ones(3, dtype=F64), 5, 1e-3)
    G, warped, inside = _factors(lvl, src, theta)
    ref = warp_jacobian(src, model, theta, size=(10, 11))
    homog = torch.cat([lvl.points, torch.ones(110, 1, dtype=F64)], 1) @ (
        MatrixWarp(model).matrix(theta).transpose(1, 2))  # (3, P, 3): [x, y, w] per point
    pts = homog[..., :2] / homog[..., 2:]
    assert torch.equal(inside, ((pts >= 0) & (pts <= torch.tensor([13.0, 11.0],
                                                                  dtype=F64))).all(-1))
    torch.testing.assert_close(warped, ref.warped)
    torch.testing.assert_close(G, ref.image_gradient)


# the robust losses rho(z) in closed form (SciPy's least_squares definitions)
RHO: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z,
    "huber": lambda z: np.where(z <= 1, z, 2 * np.sqrt(z) - 1),
    "soft_l1": lambda z: 2 * (np.sqrt(1 + z) - 1),
    "cauchy": np.log1p}


@pytest.mark.parametrize("loss", list(RHO))
def test_loss_value_is_the_scaled_closed_form(loss: str) -> None:
    r = np.linspace(-5, 5, 41)
    got = loss_value(loss, torch.from_numpy(r), 1.5).numpy()
    np.testing.assert_allclose(got, 1.5**2 * RHO[loss]((r / 1.5) ** 2), rtol=1e-12, atol=0)


@pytest.mark.parametrize("loss", ["huber", "soft_l1", "cauchy"])
def test_irls_weights_are_the_loss_derivative(loss: str) -> None:
    # rho'(z) with z = r^2 / s^2 equals d(s^2 rho(r^2 / s^2)) / d(r^2), by autograd
    r = torch.linspace(-5, 5, 40, dtype=F64)  # no zero: sqrt has no derivative there
    r2 = (r * r).requires_grad_(True)
    value = loss_value(loss, r2.sqrt(), 1.5)
    (d,) = torch.autograd.grad(value.sum(), r2)
    torch.testing.assert_close(loss_weights(loss, r, 1.5), d)


@pytest.mark.parametrize("loss", ["linear", "cauchy"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("model", list(SIZES))
def test_normal_equations_equal_the_dense_jacobian_products(model: str, channels: int,
                                                            loss: str) -> None:
    # A = J^T W J and g = J^T W r against the public operator's blocks, weights by hand
    g = torch.Generator().manual_seed(6)
    src = torch.rand(2, channels, 12, 14, generator=g, dtype=F64)
    tgt = torch.rand(2, channels, 10, 11, generator=g, dtype=F64)
    theta = 0.05 * torch.rand(2, SIZES[model], generator=g, dtype=F64)
    theta[:, -2:] *= 1e-2 if model == "homography" else 1
    mask = (torch.rand(2, 110, generator=g) > 0.2).to(F64)
    scale = torch.tensor([0.3, 0.5], dtype=F64)
    lvl = Level(src, tgt, mask, model, loss, scale, 5, 1e-3)
    e = _Eval(lvl, None, theta)
    ref = warp_jacobian(src, model, theta, size=(10, 11))
    pts = MatrixWarp(model).apply(theta, lvl.points)
    inside = ((pts >= 0) & (pts <= torch.tensor([13.0, 11.0], dtype=F64))).all(-1)
    r = (ref.warped - tgt).reshape(2, channels, -1)
    w = (mask * inside)[:, None, :] * loss_weights(loss, r, scale[:, None, None])
    Jb = ref.blocks()
    wf, rf = w.reshape(2, -1), r.reshape(2, -1)
    torch.testing.assert_close(e.A, torch.einsum("bmi,bm,bmj->bij", Jb, wf, Jb))
    torch.testing.assert_close(e.g, torch.einsum("bmi,bm->bi", Jb, wf * rf))


def test_loss_scale_is_the_scaled_median_absolute_deviation_per_pair() -> None:
    # per pair, 1.345 * 1.4826 * MAD of the residuals over the mask (all pixels where the mask
    # keeps none), with torch's lower median; numpy on each pair's kept values as the oracle
    g = torch.Generator().manual_seed(9)
    src = torch.rand(3, 2, 9, 10, generator=g, dtype=F64)
    tgt = torch.rand(3, 2, 9, 10, generator=g, dtype=F64)
    theta = 0.3 * torch.rand(3, 6, generator=g, dtype=F64)
    mask = (torch.rand(3, 1, 9, 10, generator=g) > 0.4).to(F64)
    mask[2] = 0  # nothing kept: every pixel counts
    got = _loss_scale("huber", None, src, tgt, mask, "affine", theta)
    r = (warp(src, "affine", theta) - tgt).numpy()
    for b in range(3):
        keep = np.broadcast_to(mask[b].numpy() > 0, r[b].shape)
        v = np.sort(r[b][keep] if keep.any() else r[b].ravel())
        mid = v[(v.size - 1) // 2]
        dev = np.sort(np.abs(v - mid))
        expect = max(1.345 * 1.4826 * dev[(dev.size - 1) // 2], 1e-6 * tgt[b].std().item())
        np.testing.assert_allclose(got[b].item(), expect, rtol=1e-12)
