"""The network of :class:`~jacobite.nn.JENNRegressor`: a tanh (or other) MLP with seeded
Glorot-uniform weights and zero biases, and the choice of optimiser for ``optimizer="auto"``.

>>> import torch
>>> net = mlp(2, 1, (8,), "tanh", torch.device("cpu"), torch.float64, None)
>>> [type(layer).__name__ for layer in net]
['Linear', 'Tanh', 'Linear']
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from ... import _validate
from ...errors import ArgumentTypeError
from . import _jac
from ._train import Batch

__all__ = ["ACTIVATIONS", "LM_MAX_ENTRIES", "LM_MAX_PARAMETERS", "mlp", "pick_optimizer"]

#: hidden-layer activations by name
ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "softplus": torch.nn.Softplus,
    "silu": torch.nn.SiLU, "gelu": torch.nn.GELU, "elu": torch.nn.ELU, "relu": torch.nn.ReLU,
}

#: ``optimizer="auto"`` runs Levenberg–Marquardt up to this many entries in the residuals'
#: Jacobian (residuals × trainable parameters) and this many trainable parameters, L-BFGS
#: above: MINPACK's step costs grow as the cube of the parameters (measured on 1-D tanh nets
#: fitted to 4 to 8 samples: 2 ms per step at 121 parameters, 6 ms at 193, 60 ms at 481, where an
#: L-BFGS iteration costs 1.5 ms), and L-BFGS reaches the same accuracy once there are a few
#: dozen samples
LM_MAX_ENTRIES = 5000
LM_MAX_PARAMETERS = 150


def mlp(n: int, m: int, hidden: Any, activation: Any, device: torch.device,
        dtype: torch.dtype, gen: torch.Generator | None) -> torch.nn.Sequential:
    """``n → hidden… → m`` with ``activation`` between the linear layers (none after the
    last); weights drawn with ``gen`` (None: torch's global generator)."""
    widths_in = (hidden,) if isinstance(hidden, int) else hidden
    if isinstance(widths_in, str) or not isinstance(widths_in, Sequence):
        raise ArgumentTypeError(f"hidden must be a tuple of layer widths such as (20, 20), "
                                f"got {hidden!r}")
    widths = [_validate.positive_int(h, "each hidden width") for h in widths_in]
    act = ACTIVATIONS[_validate.choice(activation, "activation", ACTIVATIONS)]
    sizes = [n, *widths, m]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = torch.nn.Linear(a, b, device=device, dtype=dtype)
        with torch.no_grad():
            w = torch.empty(b, a, dtype=dtype).uniform_(-1, 1, generator=gen)
            lin.weight.copy_(w * (6.0 / (a + b)) ** 0.5)
            lin.bias.zero_()
        layers += [lin] if i == len(sizes) - 2 else [lin, act()]
    return torch.nn.Sequential(*layers)


def pick_optimizer(net: torch.nn.Module, data: Batch) -> str:
    """``"lm"`` for a tiny deterministic problem, ``"lbfgs"`` otherwise."""
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    residuals = data.y.numel()
    if data.dydx is not None:
        residuals += data.dydx.numel() if data.mask is None else int(data.mask.sum())
    tiny = residuals * params <= LM_MAX_ENTRIES and params <= LM_MAX_PARAMETERS
    return "lm" if tiny and not _jac._draws(net) else "lbfgs"
