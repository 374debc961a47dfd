"""Argument checks shared by the analysis tools: a model, a batch of inputs.

>>> import torch
>>> check_batch(torch.zeros(2, 3)) is None
True
>>> try:
...     check_batch(torch.zeros(()))
... except ValueError as e:
...     print(type(e).__name__)
ShapeError
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import ArgumentTypeError, DtypeError, NonFiniteInputError, ShapeError

__all__ = ["check_batch", "check_model"]


def check_model(model: Any, name: str = "model") -> None:
    """``model`` must be callable (an ``nn.Module`` or a function of a batch)."""
    _validate.callable_(model, name)


def check_batch(x: Any, name: str = "x_batch") -> None:
    """``x`` must be a non-empty, finite, floating batch ``(B, *input_shape)``."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a tensor batch (B, *input_shape), got "
                                f"{type(x).__name__}; pass e.g. torch.as_tensor(data)")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ShapeError(f"{name} must be a non-empty batch (B, *input_shape), got shape "
                         f"{tuple(x.shape)}; add a batch dimension with {name}.unsqueeze(0)")
    if not x.dtype.is_floating_point:
        raise DtypeError(f"{name} must be a floating-point tensor, got {x.dtype}; pass "
                         f"{name}.float()")
    if not _validate.all_finite(x):
        raise NonFiniteInputError(f"{name} contains NaN or Inf; clean it first (e.g. "
                                  f"torch.nan_to_num)")
