"""Source text 001: partial derivatives, the Jacobian's shape, backprop, change of variables."""

from __future__ import annotations

import math

import torch

from ._base import Example


def _shape(m: int, n: int) -> list[int]:
    from ... import jacobian

    W = torch.arange(1.0, m * n + 1, dtype=torch.float64).reshape(m, n)
    return list(jacobian(lambda u: torch.tanh(W @ u), torch.zeros(n, dtype=torch.float64),
                         flat=True).shape)


def _disk_area() -> float:
    from ...transforms import integrate

    return integrate(1.0, "polar", {"r": (0.0, 1.0)}, epsabs=1e-13, epsrel=1e-13).value


def _backprop_matches() -> float:
    """max |explicit backprop − autograd| for a small MLP (should be 0 to rounding)."""
    from ...nn import backprop

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    x = torch.randn(3, dtype=torch.float64)
    y = torch.randn(2, dtype=torch.float64)
    res = backprop(net, x, y, loss="mse", reduction="sum")
    names, params = zip(*net.named_parameters(), strict=True)
    loss = torch.nn.functional.mse_loss(net(x), y, reduction="sum")
    grads = torch.autograd.grad(loss, params)
    return max(float((res.gradients[k] - g).abs().max())
               for k, g in zip(names, grads, strict=True))


EXAMPLES = [
    Example("001", "The Jacobian Matrix", "shape of the Jacobian of f: R^u → R^v (u = 3, v = 2)",
            lambda: _shape(2, 3), [2, 3], lambda: [2, 3], decimals=0,
            how="jacobite.jacobian(f, x, flat=True).shape"),
    Example("001", "The Jacobian Matrix", "shape of the Jacobian of f: R^u → R (u = 3)",
            lambda: _shape(1, 3), [3, 1], lambda: [1, 3], decimals=0, text_ok=False,
            note="a u × 1 vector is the gradient; by the source text's own v × u rule the "
                 "Jacobian of a scalar function (v = 1) is 1 × u",
            claim="u × 1, i.e. [3, 1]",
            how="jacobite.jacobian(f, x, flat=True).shape"),
    Example("001", "Partial Derivatives in Machine Learning",
            "backprop as (∂z/∂w)ᵀ ∇error: explicit VJP chain vs autograd, max difference",
            _backprop_matches, None, lambda: 0.0,
            how="jacobite.nn.backprop(model, x, target)"),
    Example("001", "Other Usages of the Jacobian", "|det J| as the area scale: unit disk via "
            "polar coordinates", _disk_area, None, lambda: math.pi,
            how='jacobite integrate "1" --transform polar --region r=0:1'),
]
