"""The layer-wise Gramian engine (``multiobjective._layers``) against the hand computation (see
``layer_cases``). Every architecture is checked on both per-layer forms (kernel ⟨Gᵢ, K Gⱼ⟩, through
the Cholesky factor where it applies, and explicit gradients) and on the recognition itself: which
layers are claimed (every spelling of the transpose, a bias added after the product), which
parameters fall back to plain rows (shared weights, a weight also in a penalty, convolutions,
frozen pieces)."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, jacrev

import jacobite
from jacobite.multiobjective import _layers
from jacobite.multiobjective.aggregators import MGDA, Mean, UPGrad
from jacobite.multiobjective.backward import backward, mtl_backward

from .layer_cases import (
    DT,
    _check,
    _conv_mlp,
    _data,
    _expected,
    _mlp,
    _mse,
    _RawMLP,
)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("aggregator", [UPGrad(), Mean(), MGDA()], ids=lambda a: type(a).__name__)
def test_mlp(form, bias, aggregator):
    model = _mlp((5, 9, 7, 3), bias=bias, act=nn.ReLU)
    x, y = _data(11, 5, 3)
    layers, rest = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))
    assert len(layers) == 3 and rest == []
    assert all((ly.bias is not None) == bias for ly in layers)
    _check(model, lambda f: _mse(f(x), y), aggregator)


def test_tokens_three_dimensional_input(form):
    model = _mlp((4, 6, 2))
    x, y = _data(3, 4, 2, extra=(5,))  # (batch, tokens, features): 15 rows per layer
    layers, _ = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))
    assert {ly.x.shape[0] for ly in layers} == {15}
    _check(model, lambda f: _mse(f(x), y))


class _Twice(nn.Module):
    """The same Linear applied twice: its weight feeds two matrix products."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lin, self.head = nn.Linear(4, 4).to(DT), nn.Linear(4, 2).to(DT)

    def forward(self, x):
        return self.head(torch.tanh(self.lin(torch.tanh(self.lin(x)))))


def test_shared_weight_falls_back_to_rows(form):
    net = _Twice()
    x, y = _data(8, 4, 2)
    layers, rest = _layers.find_dense_layers([_mse(net(x), y)], list(net.parameters()))
    assert [ly.weight for ly in layers] == [net.head.weight]
    assert {id(p) for p in rest} == {id(net.lin.weight), id(net.lin.bias)}
    _check(net, lambda f: _mse(f(x), y))


def test_weight_also_in_a_penalty(form):
    model = _mlp((4, 8, 3))
    x, y = _data(10, 4, 3)

    def loss(p):  # MSE per output + 0.1·‖W₀‖² in every loss
        return _mse(functional_call(model, p, (x,)), y) + 0.1 * p["0.weight"].pow(2).sum()

    live = dict(model.named_parameters())
    layers, rest = _layers.find_dense_layers([loss(live)], list(model.parameters()))
    assert any(p is model[0].weight for p in rest)
    assert all(ly.weight is not model[0].weight for ly in layers)
    named = {k: v.detach() for k, v in live.items()}
    J = torch.cat([v.reshape(3, -1) for v in jacrev(loss)(named).values()], dim=1)
    d = UPGrad()(J).split([p.numel() for p in named.values()])
    backward(loss(live), model.parameters(), UPGrad())
    for p, e in zip(model.parameters(), d, strict=True):
        assert (p.grad - e.reshape(p.shape)).norm() <= 1e-10 * max(1.0, float(e.norm()))


def test_frozen_bias_and_frozen_layer(form):
    model = _mlp((4, 8, 8, 2))
    model[0].bias.requires_grad_(False)
    model[2].weight.requires_grad_(False)
    model[2].bias.requires_grad_(False)
    x, y = _data(9, 4, 2)
    layers, _ = _layers.find_dense_layers(
        [_mse(model(x), y)], [p for p in model.parameters() if p.requires_grad])
    assert sorted(ly.bias is None for ly in layers) == [False, True]
    assert all(ly.weight is not model[2].weight for ly in layers)
    _check(model, lambda f: _mse(f(x), y))


def test_params_subset(form):
    model = _mlp((4, 8, 2))
    x, y = _data(9, 4, 2)
    chosen = [model[2].weight, model[0].bias]
    named = {k: v for k, v in model.named_parameters()}
    keys = [k for k, v in named.items() if any(v is c for c in chosen)]
    J = jacrev(lambda p: _mse(functional_call(model, {**{k: v.detach() for k, v in named.items()},
                                                       **p}, (x,)), y))(
        {k: named[k].detach() for k in keys})
    Jm = torch.cat([J[k].reshape(2, -1) for k in keys], dim=1)
    d = dict(zip(keys, UPGrad()(Jm).split([named[k].numel() for k in keys]), strict=True))
    backward(_mse(model(x), y), chosen, UPGrad())
    for k in keys:
        assert torch.allclose(named[k].grad, d[k].reshape(named[k].shape), rtol=1e-10)
    assert model[0].weight.grad is None and model[2].bias.grad is None


def test_conv_and_linear():
    model, x, y = _conv_mlp(6, 6, 3, 5, 3, nn.ReLU, seed=3, data_seed=2)
    layers, rest = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))
    assert len(layers) == 2 and {id(p) for p in rest} == {id(model[0].weight), id(model[0].bias)}
    _check(model, lambda f: _mse(f(x), y))


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_chunks(form, chunk_size):
    model = _mlp((4, 8, 5))
    x, y = _data(7, 4, 5)
    _check(model, lambda f: _mse(f(x), y), chunk_size=chunk_size)


def test_retain_graph_and_accumulation():
    model = _mlp((4, 8, 3))
    x, y = _data(9, 4, 3)
    expected = _expected(model, lambda f: _mse(f(x), y), UPGrad())
    losses = _mse(model(x), y)
    backward(losses, model.parameters(), UPGrad(), retain_graph=True)
    backward(losses, model.parameters(), UPGrad())
    for k, p in model.named_parameters():
        assert torch.allclose(p.grad, 2 * expected[k].reshape(p.shape), rtol=1e-10)


def test_budget_too_small_uses_the_row_path(monkeypatch):
    model = _mlp((4, 8, 3))
    x, y = _data(9, 4, 3)
    calls = []
    real = _layers.layerwise_descent

    def spy(*a, **k):
        out = real(*a, **k)
        calls.append(out is not None)
        return out

    module = importlib.import_module("jacobite.multiobjective.backward")
    monkeypatch.setattr(module, "layerwise_descent", spy)
    with jacobite.config.memory_budget(2000):
        _check(model, lambda f: _mse(f(x), y))
    _check(model, lambda f: _mse(f(x), y))
    assert calls == [False, True]


def test_mtl_backward_trunk_layers():
    torch.manual_seed(4)
    trunk = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 6)).to(DT)
    heads = [nn.Linear(6, 1).to(DT) for _ in range(3)]
    x, y = _data(12, 4, 3)

    def task_losses(t):
        z = t(x)
        return [((h(z)[:, 0] - y[:, i]) ** 2).mean() for i, h in enumerate(heads)]

    named = {k: v.detach() for k, v in trunk.named_parameters()}
    Jd = jacrev(lambda p: torch.stack(task_losses(
        lambda a: functional_call(trunk, p, (a,)))))(named)
    J = torch.cat([v.reshape(3, -1) for v in Jd.values()], dim=1)
    d = UPGrad()(J.detach()).split([p.numel() for p in named.values()])
    z = trunk(x)
    mtl_backward([((h(z)[:, 0] - y[:, i]) ** 2).mean() for i, h in enumerate(heads)], z,
                 UPGrad())
    for p, e in zip(trunk.parameters(), d, strict=True):
        assert (p.grad - e.reshape(p.shape)).norm() <= 1e-10 * max(1.0, float(e.norm()))


@given(st.lists(st.integers(1, 9), min_size=2, max_size=4), st.integers(1, 12),
       st.booleans(), st.integers(0, 10**6))
def test_random_mlps(dims, batch, bias, seed):
    model = _mlp(tuple(dims), bias=bias, seed=seed % 1000)
    x, y = _data(batch, dims[0], dims[-1], seed=seed)
    _check(model, lambda f: _mse(f(x), y), rtol=1e-9)


def test_x_at_w_layers(form):
    model = _RawMLP()
    x, y = _data(9, 4, 2)
    layers, rest = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))
    assert [(ly.weight is model.W1, ly.transposed) for ly in layers if ly.weight is model.W1] \
        == [(True, True)]
    assert {id(ly.bias) for ly in layers if ly.bias is not None} == {id(model.b2), id(model.b3)}
    assert rest == []
    _check(model, lambda f: _mse(f(x), y))


def _spy_cholesky(monkeypatch):
    """Record the ``info`` of every Cholesky factorisation the kernel form attempts."""
    infos: list[int] = []
    real = torch.linalg.cholesky_ex

    def spy(K, *a, **k):
        L, info = real(K, *a, **k)
        infos.append(int(info))
        return L, info

    monkeypatch.setattr(_layers.torch.linalg, "cholesky_ex", spy)
    return infos


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("rows", [8, 13, 24])
def test_kernel_block_triangular(monkeypatch, rows, transposed):
    """K = LLᵀ and the Gramian from the block rows of LᵀGᵢ (more inputs than rows: K is
    positive definite), uneven block sizes included, on both weight layouts."""
    monkeypatch.setattr(_layers, "_kernel_cheaper", lambda *a: True)
    monkeypatch.setattr(_layers, "_TRI_MIN_ROWS", 4)
    infos = _spy_cholesky(monkeypatch)
    model = _RawMLP(30, 36, 32) if transposed else _mlp((30, 40, 36, 3), act=nn.ReLU)
    x, y = _data(rows, 30, 3 if not transposed else 2)
    _check(model, lambda f: _mse(f(x), y), rtol=1e-9)
    assert infos and all(i == 0 for i in infos)


def test_kernel_singular_k_falls_back_to_the_dense_product(monkeypatch):
    """Repeated examples make K singular: Cholesky fails and K Gᵢ is formed densely — the same
    answer."""
    monkeypatch.setattr(_layers, "_kernel_cheaper", lambda *a: True)
    monkeypatch.setattr(_layers, "_TRI_MIN_ROWS", 4)
    infos = _spy_cholesky(monkeypatch)
    model = _mlp((30, 40, 3), act=nn.ReLU)
    x, y = _data(6, 30, 3)
    x, y = torch.cat([x, x]), torch.cat([y, y])
    _check(model, lambda f: _mse(f(x), y))
    assert infos and all(i != 0 for i in infos)


def test_kernel_cost_model_picks_the_form_the_benchmark_uses():
    """MLP 128-512-512-m, batch 256: the 512-wide hidden layer by its kernel from m = 10 on,
    the first layer (129 inputs < 256 rows) always by its rows."""
    assert not _layers._kernel_cheaper(2, 256, 513, 512)
    assert _layers._kernel_cheaper(10, 256, 513, 512)
    assert _layers._kernel_cheaper(50, 256, 513, 512)
    assert not any(_layers._kernel_cheaper(m, 256, 129, 512) for m in (2, 10, 50))


class _AddedBias(nn.Module):
    """``x @ W.T + b`` written out, in the shapes that keep the bias a layer's bias and in those
    that must not (the product's output also used elsewhere; broadcasting on the product's
    side; a scaled add)."""

    def __init__(self, variant: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.W1 = nn.Parameter(torch.randn(6, 4, generator=g, dtype=DT) / 2)
        self.b1 = nn.Parameter(torch.randn(6, generator=g, dtype=DT))
        self.W2 = nn.Parameter(torch.randn(2, 6, generator=g, dtype=DT) / 2)
        self.b2 = nn.Parameter(torch.randn(2, generator=g, dtype=DT))
        self.variant = variant

    def forward(self, x):
        z = x @ self.W1.T
        if self.variant == "plain":
            h = z + self.b1
        elif self.variant == "view":
            h = (z.view(z.shape[0], 1, 6) + self.b1).view(z.shape[0], 6)
        elif self.variant == "bias first":
            h = self.b1 + z
        elif self.variant == "reused":
            h = z + self.b1 + 0.1 * z.sum(1, keepdim=True)
        elif self.variant == "scaled":
            h = torch.add(z, self.b1, alpha=2.0)
        else:  # "broadcast": the product's side is broadcast, (R, 6) → (R, 1, 6) + (3, 1) + b
            h = (z[:, None, :] + torch.ones(3, 1, dtype=DT) + self.b1).sum(1)
        return torch.tanh(h) @ self.W2.T + self.b2


@pytest.mark.parametrize(("variant", "claimed"), [
    ("plain", True), ("view", True), ("bias first", True), ("reused", False),
    ("scaled", False), ("broadcast", False)])
def test_bias_added_after_the_product(form, variant, claimed):
    model = _AddedBias(variant)
    x, y = _data(7, 4, 2)
    layers, rest = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))
    first = next(ly for ly in layers if ly.weight is model.W1)
    assert (first.bias is model.b1) == claimed
    assert (model.b1 in rest) == (not claimed)
    assert next(ly for ly in layers if ly.weight is model.W2).bias is model.b2
    _check(model, lambda f: _mse(f(x), y))


@pytest.mark.parametrize("transpose", [
    lambda W: W.t(), lambda W: W.T, lambda W: W.mT, lambda W: W.transpose(0, 1),
    lambda W: W.transpose(-1, -2), lambda W: W.permute(1, 0)],
    ids=["t()", "T", "mT", "transpose(0,1)", "transpose(-1,-2)", "permute(1,0)"])
def test_every_spelling_of_the_transpose(form, transpose):
    g = torch.Generator().manual_seed(2)
    W = nn.Parameter(torch.randn(3, 4, generator=g, dtype=DT))
    b = nn.Parameter(torch.randn(3, generator=g, dtype=DT))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.W, self.b = W, b

        def forward(self, x):
            return torch.tanh(x @ transpose(self.W) + self.b)

    model = Model()
    x, y = _data(6, 4, 3)
    layers, rest = _layers.find_dense_layers([_mse(model(x), y)], [W, b])
    assert [(ly.weight is W, ly.bias is b, ly.transposed) for ly in layers] == [(True, True, False)]
    assert rest == []
    _check(model, lambda f: _mse(f(x), y))


def test_a_permute_that_is_not_a_transpose_is_left_alone():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = nn.Parameter(torch.randn(4, 4, generator=torch.Generator().manual_seed(1),
                                              dtype=DT))

        def forward(self, x):
            return x @ self.W.permute(0, 1)  # the identity permutation: x @ W

    model = Model()
    x, y = _data(5, 4, 4)
    layers, _ = _layers.find_dense_layers([_mse(model(x), y)], [model.W])
    assert layers == []  # neither a transpose nor the parameter itself: plain rows
    _check(model, lambda f: _mse(f(x), y))
