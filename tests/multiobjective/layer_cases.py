"""Shared cases of the layer-wise and per-example engines' tests: data, models, and the hand
computations they are checked against (J by ``torch.func.jacrev`` over the parameters,
``G = JJᵀ``, the aggregator's weights, ``Jᵀw``)."""

from __future__ import annotations

import importlib

import torch
from torch import nn
from torch.func import functional_call, jacrev

from jacobite.multiobjective.aggregators import UPGrad
from jacobite.multiobjective.backward import backward, per_example_backward

DT = torch.float64


def _data(b: int, d: int, m: int, seed: int = 0, extra: tuple[int, ...] = ()):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *extra, d, generator=g, dtype=DT)
    y = torch.randn(b, *extra, m, generator=g, dtype=DT) * torch.arange(1, m + 1, dtype=DT)
    return x, y


def _mse(out, y):
    return ((out - y) ** 2).reshape(-1, y.shape[-1]).mean(0)


def _expected(model, loss, aggregator):
    """Hand computation: J by jacrev over the parameters that require grad."""
    named = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    Jd = jacrev(lambda p: loss(lambda *a: functional_call(model, (p, frozen), a)))(named)
    m = next(iter(Jd.values())).shape[0]
    J = torch.cat([v.reshape(m, -1) for v in Jd.values()], dim=1)
    d = aggregator(J)
    return dict(zip(named, d.split([p.numel() for p in named.values()]), strict=True))


def _check(model, loss, aggregator=None, *, rtol=1e-10, **kwargs):
    aggregator = aggregator or UPGrad()
    expected = _expected(model, loss, aggregator)
    for p in model.parameters():
        p.grad = None
    backward(loss(model), [p for p in model.parameters() if p.requires_grad], aggregator,
             **kwargs)
    for k, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None
            continue
        e = expected[k].reshape(p.shape)
        assert (p.grad - e).norm() <= rtol * max(1.0, float(e.norm())), k


def _mlp(dims, bias=True, act=nn.Tanh, seed=0):
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers).to(DT)


def _conv_mlp(b: int, size: int, channels: int, hidden: int, out: int, act: type, *,
              seed: int, data_seed: int):
    """Conv2d(1 → channels, 3×3), act, flatten, Linear → hidden, the other activation, Linear →
    out, and a batch of b single-channel size × size images with targets."""
    torch.manual_seed(seed)
    other = nn.Tanh if act is nn.ReLU else nn.ReLU
    model = nn.Sequential(nn.Conv2d(1, channels, 3), act(), nn.Flatten(),
                          nn.Linear(channels * (size - 2) ** 2, hidden), other(),
                          nn.Linear(hidden, out)).to(DT)
    g = torch.Generator().manual_seed(data_seed)
    x = torch.randn(b, 1, size, size, generator=g, dtype=DT)
    y = torch.randn(b, out, generator=g, dtype=DT)
    return model, x, y


def _per_example_expected(model, loss_one, x, y):
    named = {k: v.detach() for k, v in model.named_parameters()}

    def losses(p):
        return torch.func.vmap(lambda xi, yi: loss_one(
            lambda *a: functional_call(model, p, a), xi.unsqueeze(0), yi.unsqueeze(0)))(x, y)

    Jd = jacrev(losses)(named)
    B = x.shape[0]
    J = torch.cat([v.reshape(B, -1) for v in Jd.values()], dim=1)
    d = UPGrad()(J.detach())
    return d.split([p.numel() for p in named.values()])


def _spy_ghost(monkeypatch):
    module = importlib.import_module("jacobite.multiobjective.backward")
    used: list[bool] = []
    real = module._ghost_descent

    def spy(*a, **k):
        used.append(real(*a, **k))
        return used[-1]

    monkeypatch.setattr(module, "_ghost_descent", spy)
    return used


def _check_per_example(model, loss_one, x, y, monkeypatch, ghost=True):
    used = _spy_ghost(monkeypatch)
    expected = _per_example_expected(model, loss_one, x, y)
    for p in model.parameters():
        p.grad = None
    per_example_backward(model, loss_one, x, y, aggregator=UPGrad())
    assert used == [ghost]
    for p, e in zip(model.parameters(), expected, strict=True):
        assert (p.grad - e.reshape(p.shape)).norm() <= 1e-10 * max(1.0, float(e.norm()))


class _RawMLP(nn.Module):
    """Weights stored d_in × d_out and applied as ``x @ W`` (mm), ``addmm(b, x, W)`` and
    ``x @ W + b`` (the bias a separate add after the product)."""

    def __init__(self, d: int = 4, h1: int = 7, h2: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.W1 = nn.Parameter(torch.randn(d, h1, generator=g, dtype=DT) / 2)
        self.W2 = nn.Parameter(torch.randn(h1, h2, generator=g, dtype=DT) / 2)
        self.b2 = nn.Parameter(torch.randn(h2, generator=g, dtype=DT))
        self.W3 = nn.Parameter(torch.randn(h2, 2, generator=g, dtype=DT) / 2)
        self.b3 = nn.Parameter(torch.randn(2, generator=g, dtype=DT))

    def forward(self, x):
        h = torch.tanh(x @ self.W1)
        h = torch.relu(torch.addmm(self.b2, h, self.W2))
        return h @ self.W3 + self.b3
