"""Argument checks the solvers share: the function, the start point and its first evaluation.

A user's function that fails on the start point usually fails because the start point has the
wrong length or shape (an ``IndexError`` from ``x[2]`` on a 2-vector, a size mismatch in a
matrix product). :func:`first_call` turns such a failure into a
:class:`~jacobite.errors.ShapeError` that says so, chained to the original exception.

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

from ..errors import JacobiteError, ShapeError

__all__ = ["first_call"]

T = TypeVar("T")


def first_call(call: Callable[..., T], x: torch.Tensor, what: str, *args: Any) -> T:
    """``call(x, *args)``, with a failure that points at the shape of ``x`` made a ShapeError."""
    try:
        return call(x, *args)
    except JacobiteError:
        raise
    except (IndexError, RuntimeError, TypeError, ValueError) as exc:
        raise ShapeError(
            f"{what} failed on x0 of shape {tuple(x.shape)} with {type(exc).__name__}: {exc}; "
            f"check that x0 has the length {what} expects (a 1-D tensor with one entry per "
            f"unknown) and that {what} returns a tensor"
        ) from exc
