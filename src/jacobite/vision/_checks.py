"""Argument checks shared by the vision functions (typed errors whose messages name the fix).

>>> floating(torch.zeros(2, 2), "image", (2, 3, 4)).shape
torch.Size([2, 2])
>>> size_pair((4, 5), "size")
(4, 5)
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import ArgumentTypeError, DtypeError, NonFiniteInputError, ShapeError


def floating(t: Any, name: str, dims: tuple[int, ...], *, last: int | None = None,
             finite: bool = False, example: str = "") -> torch.Tensor:
    """``t`` is a floating tensor with one of ``dims`` dimensions (and last size ``last``)."""
    want = " or ".join(f"{d}-D" for d in dims) + (f" with last size {last}" if last else "")
    hint = f" ({example})" if example else ""
    if not isinstance(t, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a {want} torch tensor{hint}, got "
                                f"{type(t).__name__}")
    if not t.is_floating_point():
        raise DtypeError(f"{name} must be floating point, got {t.dtype}; convert it with "
                         f".float() or .double()")
    if t.dim() not in dims or (last is not None and t.shape[-1] != last):
        raise ShapeError(f"{name} must be {want}{hint}, got shape {tuple(t.shape)}")
    if finite and not _validate.all_finite(t.detach()):
        raise NonFiniteInputError(f"{name} has NaN or infinite entries; pass finite values")
    return t


def size_pair(size: Any, name: str) -> tuple[int, int]:
    """``(height, width)`` of positive ints."""
    if (not isinstance(size, (tuple, list, torch.Size)) or len(size) != 2
            or not all(_validate._is_int(s) and s >= 1 for s in size)):
        raise ShapeError(f"{name} must be (height, width), two ints >= 1, e.g. (128, 128); got "
                         f"{size!r}")
    return int(size[0]), int(size[1])
