"""The layer-wise and per-example engines read undocumented autograd attributes; each read is
guarded. A torch release that renames one must leave the update unchanged: the engine then uses
the generic path (the rows of J). Simulated here by renaming each attribute away in turn."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jacobite.multiobjective import _layers
from jacobite.multiobjective.aggregators import UPGrad
from jacobite.multiobjective.backward import backward, per_example_backward

from .layer_cases import DT, _data, _mlp, _mse, _per_example_expected, _RawMLP

PRIVATE = ["next_functions", "variable", "_saved_mat1", "_saved_self", "_saved_alpha",
           "_saved_beta", "_saved_dims", "_saved_dim0", "_saved_dim1", "_input_metadata",
           "_saved_other"]


class _Transposes(nn.Module):
    """``x @ W.T + b`` (a permute) and ``x @ W.mT + b`` (a transpose)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.W1 = nn.Parameter(torch.randn(6, 4, generator=g, dtype=DT) / 2)
        self.b1 = nn.Parameter(torch.randn(6, generator=g, dtype=DT))
        self.W2 = nn.Parameter(torch.randn(3, 6, generator=g, dtype=DT) / 2)
        self.b2 = nn.Parameter(torch.randn(3, generator=g, dtype=DT))

    def forward(self, x):
        return torch.tanh(x @ self.W1.T + self.b1) @ self.W2.mT + self.b2


MODELS = {"linear": lambda: _mlp((4, 7, 3)), "raw": lambda: _RawMLP(d=4),
          "transposes": _Transposes}


def _renamed(monkeypatch, name: str) -> None:
    real = _layers._attr

    def attr(node, attribute, default=_layers._MISSING):
        gone = attribute + "_renamed_by_a_new_torch" if attribute == name else attribute
        return real(node, gone, default)

    monkeypatch.setattr(_layers, "_attr", attr)


def _grads(model, x, y, aggregator) -> list[torch.Tensor]:
    for p in model.parameters():
        p.grad = None
    backward(_mse(model(x), y), list(model.parameters()), aggregator)
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("name", PRIVATE)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_a_renamed_attribute_degrades_to_the_generic_path(name, kind, monkeypatch) -> None:
    model = MODELS[kind]()
    x, y = _data(9, 4, 2 if kind == "raw" else 3)
    normal = _grads(model, x, y, UPGrad())
    found_before = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))[0]
    _renamed(monkeypatch, name)
    found_after = _layers.find_dense_layers([_mse(model(x), y)], list(model.parameters()))[0]
    degraded = _grads(model, x, y, UPGrad())
    for a, b in zip(degraded, normal, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert len(found_after) <= len(found_before)
    if name in ("next_functions", "_saved_mat1") and kind == "linear":
        assert found_before and not found_after  # the engine was really bypassed


@pytest.mark.parametrize("name", PRIVATE)
def test_a_renamed_attribute_in_per_example_descent(name, monkeypatch) -> None:
    model = _mlp((4, 6, 1))
    x, y = _data(7, 4, 1)

    def loss_one(f, xi, yi):
        return ((f(xi) - yi) ** 2).sum()

    expected = _per_example_expected(model, loss_one, x, y)
    _renamed(monkeypatch, name)
    for p in model.parameters():
        p.grad = None
    per_example_backward(model, loss_one, x, y, aggregator=UPGrad())
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e.reshape(p.shape), rtol=1e-10, atol=1e-12)
