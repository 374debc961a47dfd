"""Data handling for :class:`~jacobite.nn.JENNRegressor`: arrays in, shapes checked, results
back in the caller's type, and the coefficient of determination R².

>>> import numpy as np
>>> a = Arrays.of(np.ones((3, 2)))
>>> a.tensor(torch.float64, torch.device("cpu")).shape, a.numpy
(torch.Size([3, 2]), True)
>>> round(r2(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [2.0], [2.0]])), 4)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...errors import ArgumentTypeError, NonFiniteInputError, ShapeError

__all__ = ["Arrays", "as_targets", "partials", "r2", "rows_2d"]


@dataclass(frozen=True)
class Arrays:
    """An array argument and what it was: a tensor (device, dtype) or anything NumPy reads."""

    value: Any
    numpy: bool
    device: torch.device | None
    dtype: torch.dtype | None

    @classmethod
    def of(cls, value: Any, name: str = "x") -> Arrays:
        if isinstance(value, torch.Tensor):
            return cls(value.detach(), False, value.device,
                       value.dtype if value.is_floating_point() else None)
        if isinstance(value, (str, bytes)) or value is None:
            raise ArgumentTypeError(f"{name} must be a NumPy array or a torch.Tensor, got "
                                    f"{type(value).__name__}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(
                f"{name} must be numeric (a NumPy array or a torch.Tensor), got "
                f"{type(value).__name__}; convert it with np.asarray({name}, dtype=float)"
            ) from exc
        return cls(arr, True, None, None)

    def tensor(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        if self.numpy:
            return torch.as_tensor(self.value, dtype=dtype, device=device)
        return self.value.to(device=device, dtype=dtype)

    def back(self, t: torch.Tensor) -> Any:
        """A result in this argument's type: NumPy (float64) or a detached tensor on its
        device, in its dtype when it is floating."""
        t = t.detach()
        if self.numpy:
            return t.to("cpu", torch.float64).numpy()
        return t.to(device=self.device, dtype=self.dtype or t.dtype)


def rows_2d(t: torch.Tensor, name: str, what: str) -> torch.Tensor:
    """``(N,)`` as ``(N, 1)``; ``(N, k)`` as is; anything else refused."""
    if t.ndim == 1:
        return t[:, None]
    if t.ndim != 2:
        raise ShapeError(f"{name} has shape {tuple(t.shape)}; expected (N, {what}) or (N,) "
                         f"(one sample per row)")
    return t


def finite(t: torch.Tensor, name: str, fix: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteInputError(f"{name} contains NaN or Inf; {fix}")


def partials(d: torch.Tensor, N: int, m: int, n: int, name: str = "dydx") -> torch.Tensor:
    """Partials as ``(N, m, n)``: also ``(N, n)`` with one output, ``(N,)`` with one of each."""
    if tuple(d.shape) == (N, m, n):
        return d
    if m == 1 and tuple(d.shape) == (N, n):
        return d[:, None, :]
    if m == 1 and n == 1 and tuple(d.shape) == (N,):
        return d[:, None, None]
    alt = f" or ({N}, {n})" if m == 1 else ""
    raise ShapeError(f"{name} has shape {tuple(d.shape)}; expected ({N}, {m}, {n}){alt}: "
                     "per sample, one row of partials per output and one column per input")


def as_targets(given: Any, like: torch.Tensor, N: int, m: int, n: int, name: str,
               dtype: torch.dtype) -> torch.Tensor:
    """A mask or weight as ``(N, m, n)``: dydx's own layout or anything broadcasting to it."""
    t = Arrays.of(given, name).tensor(dtype, like.device) if not (
        isinstance(given, torch.Tensor) and given.dtype == dtype) else given.to(like.device)
    try:
        return partials(t, N, m, n, name)
    except ShapeError:
        pass
    try:
        return t.expand(N, m, n)
    except RuntimeError as exc:
        raise ShapeError(f"{name} has shape {tuple(t.shape)}, which neither matches dydx nor "
                         f"broadcasts to ({N}, {m}, {n}); give it dydx's shape or one that "
                         "broadcasts (samples, outputs, inputs)") from exc


def r2(target: torch.Tensor, pred: torch.Tensor, known: torch.Tensor | None = None) -> float:
    """R² per column of ``(N, k)`` arrays, averaged over the columns with a known entry.

    Each column scores ``1 − SSE/SST`` over its known entries (SST about their mean); a column
    with SST = 0 scores 1 when predicted exactly and 0 otherwise, as in scikit-learn.
    """
    if known is None:
        known = torch.ones_like(target, dtype=torch.bool)
    zero = torch.zeros((), dtype=target.dtype, device=target.device)
    cnt = known.sum(0)
    t = torch.where(known, target, zero)
    mean = t.sum(0) / cnt.clamp_min(1)
    sst = torch.where(known, (target - mean) ** 2, zero).sum(0)
    sse = torch.where(known, (target - pred) ** 2, zero).sum(0)
    score = torch.where(sst > 0, 1 - sse / torch.where(sst > 0, sst, 1),
                        (sse == 0).to(target.dtype))
    used = cnt > 0
    if not bool(used.any()):
        raise ShapeError("no known entry to score: every target is missing (NaN or masked)")
    return float(score[used].mean())
