"""The base of the flow layers: a ``torch.distributions.Transform`` that is an ``nn.Module``.

>>> import torch
>>> positive_dim(3, "dim")
3
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributions import Transform, constraints

from ...errors import ArgumentTypeError, InvalidOptionError, NonFiniteInputError, ShapeError

__all__ = ["FlowLayer", "check_input", "init_param", "one_point", "positive_dim", "real_dtype"]


def positive_dim(dim: Any, what: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ArgumentTypeError(f"{what} must be a positive int (the dimension D), got "
                                f"{type(dim).__name__}")
    if dim < 1:
        raise InvalidOptionError(f"{what} must be a positive int (the dimension D), got {dim}")
    return dim


def real_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(f"dtype must be a real floating torch.dtype such as "
                                f"torch.float64, got {dtype!r}")
    return dtype


def check_input(layer: FlowLayer, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{type(layer).__name__} maps tensors of shape (..., "
                                f"{layer.dim}); got {type(x).__name__} — pass a torch.Tensor")
    if x.ndim == 0 or x.shape[-1] != layer.dim:
        raise ShapeError(f"{type(layer).__name__} maps tensors of shape (..., {layer.dim}), got "
                         f"{tuple(x.shape)}; reshape so the last dimension is {layer.dim}")
    return x


class FlowLayer(Transform, nn.Module):
    """A bijection of ``R^D`` that is also a module (``Transform.__call__`` maps points)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    sign = +1
    __hash__ = object.__hash__

    def __init__(self, dim: int) -> None:
        nn.Module.__init__(self)
        Transform.__init__(self)
        self.dim = dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The map itself, so ``nn.Sequential`` and friends can hold a layer."""
        return self._call(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._call(check_input(self, x))

    def _inv_call(self, y: torch.Tensor) -> torch.Tensor:
        return self._inverse(check_input(self, y))


def init_param(value: Any, shape: tuple[int, ...], dtype: torch.dtype, name: str,
          scale: float) -> torch.Tensor:
    if value is None:
        return torch.randn(shape, dtype=dtype) * scale
    if not isinstance(value, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor of shape {shape} or None "
                                f"(random), got {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise ArgumentTypeError(f"{name} must be a real floating tensor, got {value.dtype}; "
                                f"convert it with .to(torch.float64)")
    if tuple(value.shape) != shape:
        raise ShapeError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteInputError(f"{name} must be finite; remove NaN/Inf entries")
    return value.detach().clone().to(dtype)


def one_point(layer: FlowLayer, z: Any) -> torch.Tensor:
    z = check_input(layer, z)
    if z.ndim != 1:
        raise ShapeError(f"jacobian_operator takes ONE point of shape ({layer.dim},), got "
                         f"{tuple(z.shape)}; call it per sample")
    return z

