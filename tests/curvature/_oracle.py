"""Small models and dense curvature matrices built independently with torch.func: the Jacobian
by ``jacrev`` of the flattened output in a flat parameter vector, the loss Hessians by
``torch.func.hessian``, the whole dataset evaluated as one batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Attention(nn.Module):
    """One self-attention block with a residual connection and a readout: (n, T, d) -> (n, C)."""

    def __init__(self, d: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        return self.out(self.norm(x + w @ v).mean(dim=1))


def make(name: str, dtype: torch.dtype, classes: int = 3) -> tuple[nn.Module, torch.Tensor]:
    """A small model and inputs for 6 samples."""
    torch.manual_seed(0)
    if name == "mlp":
        model: nn.Module = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, classes))
        X = torch.randn(6, 4)
    elif name == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 2, groups=2),
                              nn.Flatten(), nn.Linear(8, classes))
        X = torch.randn(6, 1, 5, 5)
    elif name == "layernorm":
        model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.GELU(), nn.Linear(5, classes))
        X = torch.randn(6, 4)
    elif name == "batchnorm":
        model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(),
                              nn.Linear(5, classes))
        model(torch.randn(16, 4))  # running statistics away from (0, 1)
        model.eval()
        X = torch.randn(6, 4)
    elif name == "attention":
        model = Attention(4, classes)
        X = torch.randn(6, 3, 4)
    else:
        raise ValueError(name)
    return model.to(dtype), X.to(dtype)


def flat_model(model: nn.Module, names: list[str] | None = None
               ) -> tuple[torch.Tensor, Callable[[torch.Tensor, Any], torch.Tensor]]:
    """``theta`` (the chosen parameters flattened in named_parameters order) and
    ``f(theta, X)``."""
    named = dict(model.named_parameters())
    names = list(named) if names is None else names
    shapes = [named[k].shape for k in names]
    theta = torch.cat([named[k].detach().reshape(-1) for k in names])

    def f(th: torch.Tensor, X: Any) -> torch.Tensor:
        parts = torch.split(th, [s.numel() for s in shapes])
        p = {k: t.view(s) for k, t, s in zip(names, parts, shapes, strict=True)}
        return torch.func.functional_call(model, p, (X,))

    return theta, f


def dense_jacobian(model: nn.Module, X: torch.Tensor, names: list[str] | None = None
                   ) -> torch.Tensor:
    theta, f = flat_model(model, names)
    return torch.func.jacrev(lambda th: f(th, X).reshape(-1))(theta)


def dense_ggn(model: nn.Module, loss: Any, X: torch.Tensor, y: torch.Tensor,
              names: list[str] | None = None) -> torch.Tensor:
    theta, f = flat_model(model, names)
    out = f(theta, X)
    J = torch.func.jacrev(lambda th: f(th, X).reshape(-1))(theta)
    H = torch.func.hessian(lambda o: loss(o.view(out.shape), y))(out.reshape(-1))
    return J.T @ H @ J


def dense_hessian(model: nn.Module, loss: Any, X: torch.Tensor, y: torch.Tensor,
                  names: list[str] | None = None) -> torch.Tensor:
    # torch.autograd.functional (a loop of double backward passes), not torch.func.hessian:
    # torch's vmapped second derivative of layer_norm is wrong (off by up to 0.3 here)
    theta, f = flat_model(model, names)
    return torch.autograd.functional.hessian(lambda th: loss(f(th, X), y), theta)


def targets(kind: str, out_shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    torch.manual_seed(1)
    if kind == "mse":
        return torch.randn(out_shape, dtype=dtype)
    return torch.randint(0, out_shape[1], (out_shape[0],))


def batches(X: torch.Tensor, y: torch.Tensor, sizes: tuple[int, ...]) -> list[tuple[Any, Any]]:
    return list(zip(X.split(list(sizes)), y.split(list(sizes)), strict=True))
