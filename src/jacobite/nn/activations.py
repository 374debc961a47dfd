"""Elementwise activations: their Jacobian is ``diag(σ'(z))``, a :class:`DiagonalOperator`.

Each derivative is a closed form (``σ' = σ(1 − σ)`` for the sigmoid, ``1 − tanh²`` for tanh, ...)
that matches PyTorch's autograd convention at the kinks (ReLU' (0) = 0, LeakyReLU'(0) = slope,
...), so it agrees with ``torch.func.jacrev`` everywhere. Activations are named by string, by
``nn.Module`` (``nn.GELU(approximate="tanh")``, ``nn.LeakyReLU(0.2)``: parameters are read from the
module) or by function (``torch.tanh``, ``F.relu``).

>>> import torch
>>> z = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
>>> activation_jacobian("relu", z).diagonal().tolist()
[0.0, 0.0, 1.0]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentTypeError, InvalidOptionError
from ..operators import DiagonalOperator
from . import _checks as chk

__all__ = ["ACTIVATIONS", "activation_derivative", "activation_jacobian", "activation_spec"]

Deriv = Callable[..., torch.Tensor]
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _gelu(z: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return cdf + z * pdf


def _gelu_tanh(z: torch.Tensor) -> torch.Tensor:
    u = _SQRT_2_PI * (z + 0.044715 * z**3)
    t = torch.tanh(u)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_PI * (1.0 + 3 * 0.044715 * z * z)


def _neg_exp(z: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return torch.exp(z.clamp_max(0) * scale)


def _softplus(z: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    return torch.where(z * beta > threshold, torch.ones_like(z), torch.sigmoid(z * beta))


def _mish(z: torch.Tensor) -> torch.Tensor:
    t = torch.tanh(F.softplus(z))
    return t + z * (1.0 - t * t) * torch.sigmoid(z)


def _hardswish(z: torch.Tensor) -> torch.Tensor:
    mid = z / 3.0 + 0.5
    return torch.where(z <= -3, torch.zeros_like(z), torch.where(z < 3, mid, torch.ones_like(z)))


def _box(z: torch.Tensor, lo: float, hi: float, value: float = 1.0) -> torch.Tensor:
    return ((z > lo) & (z < hi)).to(z.dtype) * value


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

#: name -> (derivative σ'(z, **params), default parameters).
ACTIVATIONS: dict[str, tuple[Deriv, dict[str, float]]] = {
    "identity": (lambda z: torch.ones_like(z), {}),
    "sigmoid": (lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)), {}),
    "tanh": (lambda z: 1 - torch.tanh(z) ** 2, {}),
    "relu": (lambda z: (z > 0).to(z.dtype), {}),
    "relu6": (lambda z: _box(z, 0.0, 6.0), {}),
    "leaky_relu": (lambda z, negative_slope: torch.where(
        z > 0, torch.ones_like(z), torch.full_like(z, negative_slope)), {"negative_slope": 0.01}),
    "gelu": (_gelu, {}),
    "gelu_tanh": (_gelu_tanh, {}),
    "silu": (lambda z: torch.sigmoid(z) * (1 + z * (1 - torch.sigmoid(z))), {}),
    "softplus": (_softplus, {"beta": 1.0, "threshold": 20.0}),
    "elu": (lambda z, alpha: torch.where(z > 0, torch.ones_like(z), alpha * _neg_exp(z)),
            {"alpha": 1.0}),
    "celu": (lambda z, alpha: torch.where(z > 0, torch.ones_like(z), _neg_exp(z, 1 / alpha)),
             {"alpha": 1.0}),
    "selu": (lambda z: _SELU_SCALE * torch.where(
        z > 0, torch.ones_like(z), _SELU_ALPHA * _neg_exp(z)), {}),
    "mish": (_mish, {}),
    "softsign": (lambda z: 1 / (1 + z.abs()) ** 2, {}),
    "logsigmoid": (lambda z: torch.sigmoid(-z), {}),
    "hardtanh": (lambda z, min_val, max_val: _box(z, min_val, max_val),
                 {"min_val": -1.0, "max_val": 1.0}),
    "hardsigmoid": (lambda z: _box(z, -3.0, 3.0, 1 / 6), {}),
    "hardswish": (_hardswish, {}),
}
_ALIASES = {"swish": "silu", "linear": "identity", "sigmoid_derivative": "sigmoid"}


def _module_spec(m: nn.Module) -> tuple[str, dict[str, float]] | None:
    """Exact types only: a subclass may override ``forward``, so it gets no closed form."""
    if type(m) is nn.ReLU6:
        return "relu6", {}
    if type(m) is nn.GELU:
        return ("gelu_tanh" if m.approximate == "tanh" else "gelu"), {}
    table: list[tuple[type, str, tuple[str, ...]]] = [
        (nn.Identity, "identity", ()), (nn.Sigmoid, "sigmoid", ()), (nn.Tanh, "tanh", ()),
        (nn.ReLU, "relu", ()), (nn.LeakyReLU, "leaky_relu", ("negative_slope",)),
        (nn.SiLU, "silu", ()), (nn.Softplus, "softplus", ("beta", "threshold")),
        (nn.ELU, "elu", ("alpha",)), (nn.CELU, "celu", ("alpha",)), (nn.SELU, "selu", ()),
        (nn.Mish, "mish", ()), (nn.Softsign, "softsign", ()), (nn.LogSigmoid, "logsigmoid", ()),
        (nn.Hardtanh, "hardtanh", ("min_val", "max_val")),
        (nn.Hardsigmoid, "hardsigmoid", ()), (nn.Hardswish, "hardswish", ()),
    ]
    for cls, name, attrs in table:
        if type(m) is cls:
            return name, {a: float(getattr(m, a)) for a in attrs}
    return None


def _function_table() -> dict[Any, str]:
    pairs = [(torch.sigmoid, "sigmoid"), (torch.tanh, "tanh"), (torch.relu, "relu"),
             (F.relu, "relu"), (F.relu6, "relu6"), (F.leaky_relu, "leaky_relu"), (F.gelu, "gelu"),
             (F.silu, "silu"), (F.softplus, "softplus"), (F.elu, "elu"), (F.celu, "celu"),
             (F.selu, "selu"), (F.mish, "mish"), (F.softsign, "softsign"),
             (F.logsigmoid, "logsigmoid"), (F.hardtanh, "hardtanh"),
             (F.hardsigmoid, "hardsigmoid"), (F.hardswish, "hardswish"),
             (getattr(F, "sigmoid", torch.sigmoid), "sigmoid"), (getattr(F, "tanh", torch.tanh),
                                                                 "tanh")]
    return {f: n for f, n in pairs}


def activation_spec(activation: Any, **params: float) -> tuple[str, dict[str, float]]:
    """``(name, parameters)`` of an activation given by name, ``nn.Module`` or function.

    Explicit ``params`` override the defaults (and a module's own settings).

    >>> import torch
    >>> activation_spec(torch.nn.LeakyReLU(0.2))
    ('leaky_relu', {'negative_slope': 0.2})
    >>> activation_spec("gelu", )
    ('gelu', {})
    """
    if isinstance(activation, str):
        name = _ALIASES.get(activation.lower(), activation.lower())
        found: dict[str, float] = {}
    elif isinstance(activation, nn.Module):
        spec = _module_spec(activation)
        if spec is None:
            raise InvalidOptionError(
                f"{type(activation).__name__} is not a known elementwise activation; known: "
                f"{', '.join(sorted(ACTIVATIONS))}. For any other layer use "
                f"jacobite.nn.layer_jacobian(module, x), which falls back to jacobite.linearize"
            )
        name, found = spec
    else:
        try:
            name = _function_table().get(activation, "")
        except TypeError:  # unhashable
            name = ""
        found = {}
    if name not in ACTIVATIONS:
        raise InvalidOptionError(
            f"unknown activation {activation!r}; use one of {', '.join(sorted(ACTIVATIONS))} "
            f"(a name, an nn.Module such as nn.Tanh(), or a function such as torch.tanh)"
        )
    defaults = dict(ACTIVATIONS[name][1])
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise InvalidOptionError(
            f"activation {name!r} takes no parameter(s) {unknown}; its parameters are "
            f"{sorted(defaults) or 'none'}: pass only those"
        )
    defaults.update(found)
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise ArgumentTypeError(f"activation parameter {k} must be a real number, got "
                                    f"{v!r}; e.g. {k}=0.1")
        if not math.isfinite(v):
            raise InvalidOptionError(f"activation parameter {k} must be finite, got {v!r}")
        defaults[k] = float(v)
    return name, defaults


def activation_derivative(activation: Any, z: torch.Tensor, **params: float) -> torch.Tensor:
    """``σ'(z)`` elementwise, shaped like ``z`` (closed forms; autograd's value at kinks).

    >>> import torch
    >>> z = torch.tensor([0.0, 2.0], dtype=torch.float64)
    >>> d = activation_derivative("sigmoid", z)
    >>> bool(torch.allclose(d, torch.sigmoid(z) * torch.sigmoid(-z))), d[0].item()
    (True, 0.25)
    """
    name, p = activation_spec(activation, **params)
    z = chk.float_tensor(z, "z")
    return ACTIVATIONS[name][0](z, **p)


def activation_jacobian(activation: Any, z: torch.Tensor, **params: float) -> DiagonalOperator:
    """The Jacobian ``diag(σ'(z))`` of an elementwise activation at ``z``, as a DiagonalOperator.

    ``z`` may have any shape; the operator acts on its row-major flattening (``(N, N)``,
    ``N = z.numel()``). Known: identity, sigmoid, tanh, relu, relu6, leaky_relu, gelu (exact erf
    form), gelu_tanh (tanh approximation), silu (swish), softplus, elu, celu, selu, mish, softsign,
    logsigmoid, hardtanh, hardsigmoid, hardswish; parameters (``negative_slope``, ``beta``,
    ``alpha``, ...) as keywords or read from the module.

    >>> import torch
    >>> z = torch.tensor([-2.0, 0.5], dtype=torch.float64)
    >>> J = activation_jacobian(torch.nn.LeakyReLU(0.1), z)
    >>> J.diagonal().tolist(), J.is_diagonal()
    ([0.1, 1.0], True)
    """
    return DiagonalOperator(activation_derivative(activation, z, **params).reshape(-1))
