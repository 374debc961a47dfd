"""Argument checks the solvers share: the function, the start point and its first evaluation.

A user's function that fails on the start point usually fails because the start point has the
wrong length or shape (an ``IndexError`` from ``x[2]`` on a 2-vector, a size mismatch in a
matrix product). :func:`first_call` turns such a failure into a
:class:`~jacobite.errors.ShapeError` that says so, chained to the original exception.
:func:`as_start` makes the start point a checked tensor (non-empty, finite, floating).

>>> import torch
>>> from jacobite.errors import ShapeError
>>> try:
...     first_call(lambda x: x[2], torch.zeros(2), "fun")
... except ShapeError as e:
...     print(str(e).split(";")[0])
fun failed on x0 of shape (2,) with IndexError: index 2 is out of bounds for dimension 0 with size 2
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from ..errors import DtypeError, JacobiteError, NonFiniteInputError, ShapeError

__all__ = ["as_start", "first_call"]

T = TypeVar("T")


def first_call(call: Callable[..., T], x: torch.Tensor, what: str, *args: Any) -> T:
    """``call(x, *args)``, with a failure that points at the shape of ``x`` made a ShapeError."""
    try:
        return call(x, *args)
    except JacobiteError:
        raise
    except (IndexError, RuntimeError, TypeError, ValueError) as exc:
        if "nference tensor" in str(exc):  # not a shape fault: jacobite._inference names it
            raise
        raise ShapeError(
            f"{what} failed on x0 of shape {tuple(x.shape)} with {type(exc).__name__}: {exc}; "
            f"check that x0 has the length {what} expects (a 1-D tensor with one entry per "
            f"unknown) and that {what} returns a tensor"
        ) from exc


def as_start(x0: Any, dtype: torch.dtype | None) -> torch.Tensor:
    """``x0`` as a fresh detached tensor in ``dtype`` (``None``: its own floating dtype, float64
    for integers), checked non-empty and finite."""
    if not isinstance(x0, torch.Tensor):
        try:
            x0 = torch.as_tensor(x0, dtype=dtype or torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ShapeError(f"cannot make a tensor of x0 ({type(x0).__name__}); give a tensor or "
                             "a (nested) sequence of numbers") from exc
    x = x0.detach()
    if dtype is not None:
        if not dtype.is_floating_point:
            raise DtypeError(f"dtype must be a floating-point dtype, got {dtype}")
        x = x.to(dtype)
    elif not x.is_floating_point():
        x = x.to(torch.float64)
    if x.numel() == 0:
        raise ShapeError("x0 is empty; give at least one coordinate")
    if not torch.isfinite(x).all():
        raise NonFiniteInputError("x0 contains NaN or Inf; start from a finite point")
    return x.clone()
