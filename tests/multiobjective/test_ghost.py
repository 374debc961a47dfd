"""Per-example Gramians from two backward passes (``multiobjective._ghost``) and
``per_example_backward`` against the hand computation (see ``layer_cases``): MLPs, tokens,
convolutions, ``x @ W`` layers, the row-ownership check and the fallbacks."""

from __future__ import annotations

import importlib

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call, jacrev

import jacobite
from jacobite.multiobjective import _layers
from jacobite.multiobjective._ghost import ghost_pieces
from jacobite.multiobjective.aggregators import UPGrad
from jacobite.multiobjective.backward import per_example_backward

from .layer_cases import (
    _check_per_example,
    _conv_mlp,
    _data,
    _mlp,
    _per_example_expected,
    _RawMLP,
)


def test_per_example_backward_through_the_engine():
    model = _mlp((4, 8, 1), act=nn.ReLU)
    x, y = _data(10, 4, 1)
    named = {k: v.detach() for k, v in model.named_parameters()}
    Jd = jacrev(lambda p: ((functional_call(model, p, (x,)) - y) ** 2).sum(1))(named)
    J = torch.cat([v.reshape(10, -1) for v in Jd.values()], dim=1)
    d = UPGrad()(J).split([p.numel() for p in named.values()])
    losses = per_example_backward(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y)
    assert losses.shape == (10,)
    for p, e in zip(model.parameters(), d, strict=True):
        assert (p.grad - e.reshape(p.shape)).norm() <= 1e-10 * max(1.0, float(e.norm()))


def test_per_example_ghost_mlp(ghost_form, monkeypatch):
    model = _mlp((4, 9, 6, 2), act=nn.ReLU)
    x, y = _data(13, 4, 2)
    _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y, monkeypatch)


def test_per_example_ghost_tokens(ghost_form, monkeypatch):
    model = _mlp((3, 5, 2))  # each example is a sequence of 4 tokens: r = 4 rows per example
    x, y = _data(6, 3, 2, extra=(4,))
    _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).mean(), x, y, monkeypatch)


def test_per_example_ghost_with_conv(monkeypatch):
    model, x, y = _conv_mlp(7, 5, 2, 4, 1, nn.Tanh, seed=5, data_seed=3)
    _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y, monkeypatch)


def test_per_example_ghost_over_budget_falls_back(monkeypatch):
    model = _mlp((4, 9, 1))
    x, y = _data(8, 4, 1)
    with jacobite.config.memory_budget(1000):  # the ghost pieces need 2.7 kB here
        _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y,
                           monkeypatch, ghost=False)


def test_ghost_check_rejects_rows_that_mix_examples():
    model = _mlp((4, 5, 3))
    x, _ = _data(6, 4, 3)
    z = model(x)
    losses = (z * z.roll(1, dims=0)).sum(1)  # loss b reads rows b and b - 1
    layers, _ = _layers.find_dense_layers([losses], list(model.parameters()))
    assert ghost_pieces(losses, layers) is None
    honest = (z ** 2).sum(1)
    layers, _ = _layers.find_dense_layers([honest], list(model.parameters()))
    pieces = ghost_pieces(honest, layers)
    assert pieces is not None and all(p.gramian.shape == (6, 6) for p in pieces)


@given(st.lists(st.integers(1, 7), min_size=2, max_size=4), st.integers(2, 9), st.booleans(),
       st.integers(0, 10**6))
def test_per_example_random_mlps(dims, batch, bias, seed):
    model = _mlp((*dims, 1), bias=bias, seed=seed % 1000)
    x, y = _data(batch, dims[0], 1, seed=seed)

    def loss_one(f, xi, yi):
        return ((f(xi) - yi) ** 2).sum()

    expected = _per_example_expected(model, loss_one, x, y)
    per_example_backward(model, loss_one, x, y, aggregator=UPGrad())
    for p, e in zip(model.parameters(), expected, strict=True):
        assert (p.grad - e.reshape(p.shape)).norm() <= 1e-9 * max(1.0, float(e.norm()))
        p.grad = None


def test_per_example_x_at_w_layers(ghost_form, monkeypatch):
    model = _RawMLP()
    x, y = _data(8, 4, 2)
    _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y, monkeypatch)


def test_per_example_linear_biases_are_layer_biases(monkeypatch):
    """Under vmap, nn.Linear records ``mm`` and an add of ``1·b``: the biases join their layers
    (no per-sample gradients recomputed for them) and the result is unchanged."""
    bw = importlib.import_module("jacobite.multiobjective.backward")
    model = _mlp((5, 8, 6, 1), act=nn.ReLU)
    x, y = _data(9, 5, 1)
    calls = []
    real = bw.vmap

    def spy(fn, *a, **k):
        calls.append(getattr(fn, "__name__", type(fn).__name__))
        return real(fn, *a, **k)

    monkeypatch.setattr(bw, "vmap", spy)
    _check_per_example(model, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y, monkeypatch)
    assert len(calls) == 1  # the forward only: no vmap(grad) for leftover biases
