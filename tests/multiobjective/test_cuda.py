"""The multi-objective paths on a GPU: every result stays on the tensors' device and equals the
CPU result (itself checked against jacrev and TorchJD in the other files). Skipped without CUDA.

Covers the aggregators (UPGrad's batched projections included), ``backward`` through the
layer-wise engine (both per-layer forms, the Cholesky block-triangular kernel at 256 rows),
the row path for other parameters, ``mtl_backward``, ``per_example_backward`` (the two-pass
per-example Gramian) and ``gramian``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from jacobite.multiobjective import _layers
from jacobite.multiobjective import aggregators as agg
from jacobite.multiobjective.backward import backward, mtl_backward, per_example_backward
from jacobite.multiobjective.gramian import gramian

from .layer_cases import _expected

pytestmark = pytest.mark.cuda

DETERMINISTIC = ["UPGrad", "DualProj", "MGDA", "CAGrad", "IMTLG", "AlignedMTL",
                 "ConFIG", "NashMTL", "Krum", "TrimmedMean", "Mean", "Sum"]


def _jacobian(m: int, n: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(m * 1000 + n)
    J = torch.randn(m, n, generator=g, dtype=dtype)
    J *= torch.logspace(-1, 1, m, dtype=dtype)[:, None]  # unequal row scales
    J[1] -= 1.5 * J[0]  # a conflicting pair
    return J


def _make(name: str, m: int):
    if name == "Krum":
        return agg.Krum(n_byzantine=1, n_selected=2)
    if name == "TrimmedMean":
        return agg.TrimmedMean(trim_number=1)
    if name == "NashMTL":
        return agg.NashMTL(n_tasks=m)
    if name == "CAGrad":
        return agg.CAGrad(c=0.5)
    return getattr(agg, name)()


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("m", [5, 7])
def test_aggregators_on_the_gpu(name, m):
    J = _jacobian(m, 300)
    cpu = _make(name, m)(J)
    gpu = _make(name, m)(J.cuda())
    assert gpu.is_cuda and gpu.dtype == J.dtype
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("m", [10, 100])
def test_upgrad_projections_on_the_gpu(m):
    J = _jacobian(m, 2000)
    d = agg.UPGrad()(J.cuda())
    torch.testing.assert_close(d.cpu(), agg.UPGrad()(J), rtol=1e-6, atol=1e-9)


def _mlp(m: int, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 320), nn.ReLU(), nn.Linear(320, 320), nn.ReLU(),
                         nn.Linear(320, m)).to(dtype)


def _grads_on(device: str, model: nn.Module, fn) -> list[torch.Tensor]:
    mod = copy.deepcopy(model).to(device)
    for p in mod.parameters():
        p.grad = None
    fn(mod)
    assert all(p.grad is not None and p.grad.device.type == device for p in mod.parameters())
    return [p.grad.cpu() for p in mod.parameters()]


def _same_on_both(model, fn, rtol=1e-7):
    cpu = _grads_on("cpu", model, fn)
    gpu = _grads_on("cuda", model, fn)
    for a, b in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))


@pytest.mark.parametrize("form", ["auto", "kernel", "gradients"])
@pytest.mark.parametrize("m", [2, 10])
def test_backward_layerwise_on_the_gpu(monkeypatch, form, m):
    if form != "auto":
        monkeypatch.setattr(_layers, "_kernel_cheaper", lambda *a: form == "kernel")
    model = _mlp(m)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 64, generator=g, dtype=torch.float64), \
        torch.randn(256, m, generator=g, dtype=torch.float64)

    def step(mod):
        dev = next(mod.parameters()).device
        backward(((mod(x.to(dev)) - y.to(dev)) ** 2).mean(0), mod.parameters(), agg.UPGrad())

    _same_on_both(model, step)
    # and against J by jacrev on the CPU (no layer-wise engine): G = JJᵀ, weights, Jᵀw
    expected = _expected(model, lambda f: ((f(x) - y) ** 2).mean(0), agg.UPGrad())
    for got, e in zip(_grads_on("cuda", model, step), expected.values(), strict=True):
        torch.testing.assert_close(got, e.reshape(got.shape), rtol=1e-7,
                                   atol=1e-7 * float(e.abs().max()))


def test_backward_float32_tracks_float64_on_the_gpu():
    """The default benchmark shape in float32 on the GPU against float64 on the CPU."""
    m = 10
    model = _mlp(m, torch.float32)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(256, 64, generator=g), torch.randn(256, m, generator=g)
    gpu = _grads_on("cuda", model, lambda mod: backward(
        ((mod(x.cuda()) - y.cuda()) ** 2).mean(0), mod.parameters()))
    ref = _grads_on("cpu", model.double(), lambda mod: backward(
        ((mod(x.double()) - y.double()) ** 2).mean(0), mod.parameters()))
    for a, b in zip(gpu, ref, strict=True):
        assert float((a.double() - b).norm() / b.norm()) < 1e-4


def test_rows_for_other_parameters_on_the_gpu():
    """A convolution (plain rows) before the dense layers."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(18, 12),
                          nn.ReLU(), nn.Linear(12, 3)).double()
    x = torch.randn(40, 2, 8, dtype=torch.float64)

    def step(mod):
        dev = next(mod.parameters()).device
        backward((mod(x.to(dev)) ** 2).mean(0), mod.parameters(), agg.DualProj())

    _same_on_both(model, step)


def test_mtl_backward_on_the_gpu():
    torch.manual_seed(0)
    model = nn.ModuleList([nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8)),
                           nn.Linear(8, 1), nn.Linear(8, 1), nn.Linear(8, 1)]).double()
    x = torch.randn(30, 5, dtype=torch.float64)

    def step(mod):
        z = mod[0](x.to(next(mod.parameters()).device))
        losses = [h(z).pow(2).mean() * (i + 1) for i, h in enumerate(mod[1:])]
        mtl_backward(losses, z, agg.UPGrad())

    _same_on_both(model, step)


def test_per_example_backward_on_the_gpu():
    model = _mlp(1)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(32, 64, generator=g, dtype=torch.float64), \
        torch.randn(32, 1, generator=g, dtype=torch.float64)

    def step(mod):
        dev = next(mod.parameters()).device
        per_example_backward(mod, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x.to(dev),
                             y.to(dev), aggregator=agg.UPGrad())

    _same_on_both(model, step)


def test_gramian_on_the_gpu():
    model = _mlp(4).cuda()
    x = torch.randn(50, 64, dtype=torch.float64, device="cuda")
    G = gramian((model(x) ** 2).mean(0), model.parameters())
    assert G.is_cuda
    J = torch.cat([t.reshape(4, -1) for t in torch.autograd.grad(
        (model(x) ** 2).mean(0), list(model.parameters()), torch.eye(4, device="cuda",
                                                                     dtype=torch.float64),
        is_grads_batched=True)], dim=1)
    torch.testing.assert_close(G, J @ J.T, rtol=1e-9, atol=1e-12)
