"""Explicit backpropagation against torch.autograd, to 1e-12 in float64."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from jacobite.errors import DtypeError, InvalidOptionError, ShapeError
from jacobite.nn import backprop

DT = torch.float64


def _mlp(kind: str, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    acts = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}
    if kind == "softmax":  # softmax output, probabilities compared with MSE (reference 000)
        return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Softmax(-1)).double()
    if kind == "mid_softmax":  # softmax inside the network
        return nn.Sequential(nn.Linear(4, 6), nn.Softmax(-1), nn.Linear(6, 3)).double()
    act = acts[kind]
    return nn.Sequential(nn.Linear(4, 6), act(), nn.Linear(6, 5), act(), nn.Linear(5, 3)).double()


def _target(loss: Any, out_shape: tuple[int, ...]) -> Any:
    g = torch.Generator().manual_seed(9)
    if loss == "cross_entropy":
        return torch.randint(0, 3, out_shape[:-1], generator=g) if len(out_shape) == 2 else 2
    return torch.rand(out_shape, dtype=DT, generator=g)


def _autograd(model: nn.Module, x: torch.Tensor, target: Any, loss: Any,
              reduction: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = x.clone().requires_grad_(True)
    out = model(x)
    if loss == "mse":
        value = F.mse_loss(out, target, reduction=reduction)
    elif loss == "cross_entropy":
        t = torch.as_tensor(target)
        value = F.cross_entropy(out, t, reduction=reduction)
    else:
        value = loss(out, target)
    names = [k for k, p in model.named_parameters()]
    grads = torch.autograd.grad(value, [p for _, p in model.named_parameters()] + [x])
    return value.detach(), dict(zip([*names, "input"], grads, strict=True))


def _assert_same(r, ref_value, ref) -> None:
    assert set(r.gradients) == set(ref)
    assert list(r.gradients)[-1] == "input"
    torch.testing.assert_close(r.loss, ref_value, rtol=0, atol=1e-12)
    for k, v in ref.items():
        torch.testing.assert_close(r.gradients[k], v, rtol=0, atol=1e-12, msg=k)


@pytest.mark.parametrize("kind", ["tanh", "sigmoid", "relu", "softmax", "mid_softmax"])
@pytest.mark.parametrize("batch", [None, 1, 4])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_matches_autograd(kind: str, batch: int | None, loss: str, reduction: str) -> None:
    model = _mlp(kind)
    x = torch.randn((4,) if batch is None else (batch, 4), dtype=DT,
                    generator=torch.Generator().manual_seed(3))
    target = _target(loss, tuple(model(x).shape))
    r = backprop(model, x, target, loss, reduction=reduction)
    _assert_same(r, *_autograd(model, x, target, loss, reduction))
    assert all(p.grad is None for p in model.parameters())  # autograd's tape was not used


def test_callable_loss_and_fallback_layers() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.PReLU(), nn.Linear(4, 2),
                          nn.Softplus(beta=2.0)).double()
    x = torch.randn(5, 3, dtype=DT, generator=torch.Generator().manual_seed(5))
    t = torch.randn(5, 2, dtype=DT)

    def huber(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.huber_loss(out, target, delta=0.5)

    r = backprop(model, x, t, huber)
    _assert_same(r, *_autograd(model, x, t, huber, "mean"))
    assert "matrix-free" in r.steps[4].structure  # LayerNorm, via jacobite.linearize


def test_shared_layer_accumulates_and_nested_sequential() -> None:
    torch.manual_seed(6)
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.Tanh(), nn.Sequential(shared, nn.Sigmoid()),
                          nn.Linear(3, 2)).double()
    x = torch.randn(2, 3, dtype=DT, generator=torch.Generator().manual_seed(7))
    t = torch.randn(2, 2, dtype=DT)
    r = backprop(model, x, t, "mse")
    _assert_same(r, *_autograd(model, x, t, "mse", "mean"))
    assert [s.name for s in r.steps] == ["loss", "3", "2.1", "2.0", "1", "0"]


def test_steps_show_the_structure() -> None:
    model = _mlp("softmax")
    x = torch.randn(4, dtype=DT, generator=torch.Generator().manual_seed(8))
    r = backprop(model, x, torch.tensor([1.0, 0.0, 0.0], dtype=DT), "mse")
    loss, sm, lin2, act, _ = r.steps
    assert loss.name == "loss" and "2 (output - target)/N" in loss.structure
    assert sm.structure == "diag(σ) − σσᵀ" and sm.jacobian_shape == (3, 3)
    assert lin2.structure.startswith("dense W") and set(lin2.parameter_gradients) == {
        "2.weight", "2.bias"}
    assert act.structure.startswith("diagonal") and act.parameter_rule == ""
    assert "outer products" in lin2.parameter_rule
    # each step's downstream gradient is the next step's upstream gradient
    for a, b in zip(r.steps[1:], r.steps[2:], strict=False):
        torch.testing.assert_close(a.downstream, b.upstream)
    torch.testing.assert_close(sm.downstream, sm.jacobian.rmv(sm.upstream))
    a = torch.tanh(model[0](x)).detach()  # the input of layer 2
    torch.testing.assert_close(lin2.parameter_gradients["2.weight"], torch.outer(lin2.upstream, a))
    torch.testing.assert_close(lin2.parameter_gradients["2.bias"], lin2.upstream)
    text = str(r)
    for piece in ("loss", "diag(σ) − σσᵀ", "dense W", "diagonal", "J^T g", "dL/d(2.weight)"):
        assert piece in text
    assert r.explain() == text


def test_bad_inputs_name_the_fix() -> None:
    model = _mlp("tanh")
    x = torch.zeros(4, dtype=DT)
    with pytest.raises(InvalidOptionError, match="'mse', 'cross_entropy'"):
        backprop(model, x, torch.zeros(3, dtype=DT), "hinge")
    with pytest.raises(DtypeError, match=r"nn\.Module"):
        backprop(lambda v: v, x, torch.zeros(3, dtype=DT))
    with pytest.raises(ShapeError, match="scalar"):
        backprop(model, x, torch.zeros(3, dtype=DT), lambda o, t: o - t)
    with pytest.raises(ShapeError, match="must match"):
        backprop(model, x, torch.zeros(2, dtype=DT), "mse")
