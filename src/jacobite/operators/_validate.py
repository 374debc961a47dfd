"""Input checks shared by the operators; each failure raises a typed error naming the fix."""

from __future__ import annotations

import cmath
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..config import format_bytes, get_memory_budget
from ..errors import (
    DtypeError,
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)


def check_vector(op: Any, v: Any, length: int, method: str, side: str) -> torch.Tensor:
    """``v`` must be a 1-D tensor of ``length`` entries with the operator's dtype."""
    _check_tensor(op, v, method)
    if v.ndim != 1:
        hint = f"; for a batch of vectors stacked as columns use {side}" if v.ndim == 2 else ""
        raise ShapeError(
            f"{method}() expects a 1-D vector of length {length} for an operator of shape "
            f"{op.shape}, got a tensor of shape {tuple(v.shape)}{hint}"
        )
    if v.shape[0] != length:
        raise ShapeError(
            f"{method}() expects a vector of length {length} for an operator of shape {op.shape}, "
            f"got length {v.shape[0]}; pass a vector with {length} entries"
        )
    return v


def check_matrix(op: Any, v: Any, rows: int, method: str) -> torch.Tensor:
    """``v`` must be a 2-D tensor with ``rows`` rows (vectors stacked as columns)."""
    _check_tensor(op, v, method)
    if v.ndim != 2 or v.shape[0] != rows:
        raise ShapeError(
            f"{method}() expects a 2-D tensor of shape ({rows}, k) (k vectors stacked as columns) "
            f"for an operator of shape {op.shape}, got shape {tuple(v.shape)}; for a single "
            f"vector use the matching vector method (mv / rmv)"
        )
    return v


def check_rhs(op: Any, b: Any, method: str) -> tuple[torch.Tensor, bool]:
    """Right-hand side of a solve: ``(n,)`` or ``(n, k)``; returns it as ``(n, k)`` and a flag."""
    _check_tensor(op, b, method)
    m = op.shape[0]
    if b.ndim not in (1, 2) or b.shape[0] != m:
        raise ShapeError(
            f"{method}() expects a right-hand side of shape ({m},) or ({m}, k) for an operator of "
            f"shape {op.shape}, got shape {tuple(b.shape)}"
        )
    if not _validate.all_finite(b.detach()):
        raise NonFiniteInputError(
            f"{method}() got a right-hand side with NaN or Inf entries; the solution would be "
            f"meaningless: clean it first (e.g. torch.nan_to_num(b))"
        )
    return (b[:, None], True) if b.ndim == 1 else (b, False)


def check_square(op: Any, method: str) -> int:
    m, n = op.shape
    if m != n:
        fix = "use lstsq() for a least-squares solution" if method == "solve" else (
            "a determinant exists only for square matrices; for a volume factor of a "
            "rectangular Jacobian use (J.T @ J).slogdet()")
        raise NotSquareError(f"{method}() needs a square operator, got shape {op.shape}; {fix}")
    return n


def _check_tensor(op: Any, v: Any, method: str) -> None:
    if not isinstance(v, torch.Tensor):
        raise DtypeError(
            f"{method}() expects a torch.Tensor, got {type(v).__name__}; convert it with "
            f"torch.as_tensor(x, dtype={op.dtype})"
        )
    if v.dtype != op.dtype:
        raise DtypeError(
            f"{method}() got a tensor of dtype {v.dtype} for an operator of dtype {op.dtype}; "
            f"convert it with x.to({op.dtype})"
        )


def check_float_tensor(x: Any, name: str, ndim: int | tuple[int, ...]) -> torch.Tensor:
    """Constructor argument: a floating/complex tensor (numpy arrays are converted)."""
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(x)
    if not isinstance(x, torch.Tensor):
        raise DtypeError(
            f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with "
            f"torch.as_tensor({name}, dtype=torch.float64)"
        )
    if not (x.is_floating_point() or x.is_complex()):
        raise DtypeError(
            f"{name} has dtype {x.dtype}, but operators need a floating-point dtype; convert it "
            f"with {name}.to(torch.float64) (or torch.float32)"
        )
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if x.ndim not in dims:
        raise ShapeError(
            f"{name} must have {' or '.join(map(str, dims))} dimension(s), got shape "
            f"{tuple(x.shape)}"
        )
    if not _validate.all_finite(x.detach()):
        raise NonFiniteInputError(
            f"{name} contains NaN or Inf; an operator needs finite entries: clean them first "
            f"(e.g. torch.nan_to_num({name}))"
        )
    return x


def check_same_dtype(a: Any, b: Any, what: str) -> None:
    if a.dtype != b.dtype:
        raise DtypeError(
            f"cannot {what} an operator of dtype {a.dtype} with one of dtype {b.dtype}; build "
            f"both from tensors of the same dtype (e.g. convert with .to({a.dtype}))"
        )


def ensure_fits(op: Any, shape: tuple[int, int], what: str) -> None:
    """Raise :class:`JacobianTooLarge` when a dense ``shape`` result exceeds the memory budget."""
    itemsize = torch.empty((), dtype=op.dtype).element_size()
    need = shape[0] * shape[1] * itemsize
    budget = get_memory_budget()
    if need > budget:
        raise JacobianTooLarge(
            f"{what} materialises a dense {shape[0]}x{shape[1]} {op.dtype} matrix "
            f"({format_bytes(need)}), more than the memory budget of {format_bytes(budget)}; "
            f"use the matrix-free methods (mv, mm, solve, as_linear_operator) or raise the "
            f"budget with jacobite.config.memory_budget('{format_bytes(2 * need)}')"
        )


def scalar_value(c: Any) -> complex | float:
    """Python number of a scalar given as a number or a 0-d tensor."""
    if isinstance(c, torch.Tensor):
        if c.numel() != 1:
            raise ShapeError(f"expected a scalar, got a tensor of shape {tuple(c.shape)}")
        c = c.detach().reshape(()).item()
    if isinstance(c, bool) or not isinstance(c, (int, float, complex)):
        raise DtypeError(f"expected a real or complex scalar, got {type(c).__name__}; pass a "
                         f"number such as 2.0")
    if not cmath.isfinite(c):
        raise NonFiniteInputError(f"the scalar {c!r} is not finite; pass a finite number")
    return c
