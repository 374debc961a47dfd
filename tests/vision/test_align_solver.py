"""The solver's evaluation of the residual's Jacobian against the public warp_jacobian."""

from __future__ import annotations

import pytest
import torch

from jacobite.vision import MatrixWarp, warp_jacobian
from jacobite.vision._align_solve import Level, _blocks, _factors, loss_value, loss_weights

F64 = torch.float64
SIZES = {"translation": 2, "euclidean": 3, "similarity": 4, "affine": 6, "homography": 8}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("model", list(SIZES))
def test_level_jacobian_blocks_equal_warp_jacobian(model: str, channels: int) -> None:
    g = torch.Generator().manual_seed(4)
    src = torch.rand(3, channels, 12, 14, generator=g, dtype=F64)
    tgt = torch.rand(3, channels, 10, 11, generator=g, dtype=F64)
    theta = 0.05 * torch.rand(3, SIZES[model], generator=g, dtype=F64)
    theta[:, -2:] *= 1e-2 if model == "homography" else 1
    lvl = Level(src, tgt, torch.ones(3, 110, dtype=F64), model, "linear",
                torch.ones(3, dtype=F64), 5, 1e-3)
    J, pts = _factors(lvl, src, theta)
    ref = warp_jacobian(src, model, theta, size=(10, 11))
    torch.testing.assert_close(pts, MatrixWarp(model).apply(theta, lvl.points))
    torch.testing.assert_close(J.warped, ref.warped)
    torch.testing.assert_close(_blocks(J, lvl), ref.blocks())


@pytest.mark.parametrize("loss", ["huber", "soft_l1", "cauchy"])
def test_irls_weights_are_the_loss_derivative(loss: str) -> None:
    # rho'(z) with z = r^2 / s^2 equals d(s^2 rho(r^2 / s^2)) / d(r^2), by autograd
    r = torch.linspace(-5, 5, 40, dtype=F64)  # no zero: sqrt has no derivative there
    r2 = (r * r).requires_grad_(True)
    value = loss_value(loss, r2.sqrt(), 1.5)
    (d,) = torch.autograd.grad(value.sum(), r2)
    torch.testing.assert_close(loss_weights(loss, r, 1.5), d)
