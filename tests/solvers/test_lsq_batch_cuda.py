"""least_squares(batch=True) and curve_fit(batch=True) on a CUDA device agree with the CPU
(device battery: ``make test-gpu``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import jacobite

pytestmark = pytest.mark.cuda

DT = torch.float64


def _data(device):
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 4, 50, dtype=DT)
    k = 0.5 + torch.rand(64, 1, dtype=DT, generator=g)
    y = 2 * torch.exp(-k * t) + 0.3 + 0.01 * torch.randn(64, 50, dtype=DT, generator=g)
    return t.to(device), y.to(device)


def _fun(t):
    def fun(p, y):
        return p[:, :1] * torch.exp(-p[:, 1:2] * t) + p[:, 2:3] - y

    return fun


def test_batch_on_cuda_matches_cpu():
    t, y = _data("cuda")
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=DT, device="cuda").repeat(64, 1)
    res = jacobite.least_squares(_fun(t), x0, batch=True, args=(y,),
                                 bounds=(torch.zeros(3, device="cuda"), 10.0))
    tc, yc = _data("cpu")
    ref = jacobite.least_squares(_fun(tc), x0.cpu(), batch=True, args=(yc,),
                                 bounds=(torch.zeros(3), 10.0))
    assert res.x.device.type == "cuda" and res.success.all()
    torch.testing.assert_close(res.x.cpu(), ref.x, rtol=1e-8, atol=1e-10)


def test_batch_derivative_on_cuda():
    t, y = _data("cuda")
    y = y.requires_grad_(True)
    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=DT, device="cuda").repeat(64, 1)
    res = jacobite.least_squares(_fun(t), x0, batch=True, args=(y,))
    (g,) = torch.autograd.grad(res.x[:, 0].sum(), y)
    tc, yc = _data("cpu")
    yc = yc.requires_grad_(True)
    ref = jacobite.least_squares(_fun(tc), x0.cpu(), batch=True, args=(yc,))
    (gc,) = torch.autograd.grad(ref.x[:, 0].sum(), yc)
    torch.testing.assert_close(g.cpu(), gc, rtol=1e-7, atol=1e-10)


def test_curve_fit_batch_on_cuda():
    t, y = _data("cuda")
    popt, pcov = jacobite.curve_fit(lambda x, a, k, c: a * torch.exp(-k * x) + c, t, y,
                                    p0=[1.0, 1.0, 0.0], batch=True)
    tc, yc = _data("cpu")
    ref, ref_cov = jacobite.curve_fit(lambda x, a, k, c: a * torch.exp(-k * x) + c, tc, yc,
                                      p0=[1.0, 1.0, 0.0], batch=True)
    np.testing.assert_allclose(popt, ref, rtol=1e-8)
    np.testing.assert_allclose(pcov, ref_cov, rtol=1e-6)
