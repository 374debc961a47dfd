"""sobolev_loss's per-sample Jacobians: recorded only where something requires grad, zero for a
model that ignores its input; against torch.func.jacrev and closed forms."""

from __future__ import annotations

import pytest
import torch

from jacobite.nn import sobolev_loss

from .test_sobolev_loss import _data, _per_sample_jac

DT = torch.float64


def _net(n: int, m: int, seed: int = 0, width: int = 12) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, m)).to(DT)


@pytest.mark.parametrize("jac_mode", ["forward", "reverse"])
def test_a_model_that_ignores_x_has_zero_jacobians_and_trains_its_values(jac_mode):
    b = torch.randn(2, dtype=DT, requires_grad=True)
    x, y, T = _data(4, 3, 2)
    r = sobolev_loss(lambda v: b.expand(v.shape[0], 2) * 1.0, x, y, T, jac_mode=jac_mode)
    assert r.prediction_jacobian is not None
    assert torch.equal(r.prediction_jacobian, torch.zeros(4, 2, 3, dtype=DT))
    torch.testing.assert_close(r.total, ((b - y) ** 2).mean() + (T ** 2).mean())
    (g,) = torch.autograd.grad(r.total, b)
    torch.testing.assert_close(g, (2 * (b - y)).mean(0) / 2)


def test_a_frozen_model_at_an_untracked_point_gives_constant_jacobians():
    net = _net(3, 4).requires_grad_(False)
    x, y, T = _data(5, 3, 4)
    for jac_mode in ("forward", "reverse"):
        r = sobolev_loss(net, x, y, T, jac_mode=jac_mode)
        assert r.prediction_jacobian is not None and r.prediction_jacobian.grad_fn is None
        torch.testing.assert_close(r.prediction_jacobian, _per_sample_jac(net, x))
    net.requires_grad_(True)
    r = sobolev_loss(net, x, y, T, jac_mode="reverse")
    assert r.prediction_jacobian is not None and r.prediction_jacobian.grad_fn is not None
