"""Input checks shared by :mod:`jacobite.nn`; each failure raises a typed error naming the fix."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
)


def float_tensor(x: Any, name: str, *, min_ndim: int = 0, finite: bool = True) -> torch.Tensor:
    """``x`` as a floating tensor (lists and NumPy arrays are converted to float64)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DtypeError(
                f"{name} must be a floating-point torch.Tensor, got {type(x).__name__}; convert it "
                f"with torch.as_tensor({name}, dtype=torch.float64)"
            ) from exc
    if not x.is_floating_point():
        raise DtypeError(
            f"{name} has dtype {x.dtype}, but derivatives need a floating dtype; convert it with "
            f"{name}.to(torch.float64) (or torch.float32)"
        )
    if x.ndim < min_ndim:
        raise ShapeError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(x.shape)}; "
            f"a single vector of logits has shape (K,)"
        )
    # One cheap reduction: NaN/Inf propagate into the sum; only on a (rare) overflow of the sum
    # itself do we pay for the elementwise check.
    if finite and x.numel() and not bool(torch.isfinite(x.detach().sum())) and not bool(
            torch.isfinite(x.detach()).all()):
        raise NonFiniteInputError(
            f"{name} contains NaN or Inf; replace them (e.g. torch.nan_to_num({name})) or find "
            f"where they come from"
        )
    return x


def same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"{name_b} has shape {tuple(b.shape)} but {name_a} has shape {tuple(a.shape)}; they "
            f"must match (one entry of {name_b} per entry of {name_a})"
        )


def same_dtype(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.dtype != b.dtype:
        raise DtypeError(
            f"{name_b} has dtype {b.dtype} but {name_a} has dtype {a.dtype}; convert one, e.g. "
            f"{name_b}.to({a.dtype})"
        )


def norm_dim(dim: int, ndim: int, name: str = "dim") -> int:
    """``dim`` as a non-negative index into ``ndim`` dimensions."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise ArgumentTypeError(f"{name} must be an int (e.g. -1, the last dimension), got "
                                f"{dim!r}")
    if not -ndim <= dim < ndim:
        raise ShapeError(
            f"{name}={dim} is out of range for a tensor with {ndim} dimension(s); use a value in "
            f"[{-ndim}, {ndim - 1}] (-1 is the last, the usual class dimension)"
        )
    return dim % ndim


def choice(value: Any, allowed: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidOptionError(
            f"unknown {name} {value!r}; use one of {', '.join(repr(a) for a in allowed)}"
        )
    return value
