"""Power-of-two scaling that keeps matrix-free spectra inside the floating-point range.

A Jacobian of size ``1e300`` or ``1e-300`` has products whose squared norms overflow to
``inf`` or underflow to ``0`` in float64, which breaks every normalisation in Lanczos. The
spectra run on ``J · 2^-e`` instead, with ``e`` the binary exponent of the largest entry of one
product, and multiply the results by ``2^e``: scaling by a power of two is exact, so nothing
is lost in between.

>>> import torch
>>> exponent_of(torch.tensor([3.0, -1e300], dtype=torch.float64))
997
>>> exponent_of(torch.zeros(3))
0
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["exponent_of", "scaled_products"]

Vec = Callable[[torch.Tensor], torch.Tensor]


def exponent_of(t: torch.Tensor) -> int:
    """The binary exponent ``e`` with ``max|t| = f · 2^e``, ``f`` in ``[0.5, 1)``; ``0`` when
    ``t`` is empty, all zero or not finite; clamped to ``±1000`` so that ``2.0 ** -e`` exists."""
    if t.numel() == 0:
        return 0
    big = float(t.detach().abs().max())
    if big == 0 or not math.isfinite(big):
        return 0
    return max(-1000, min(1000, math.frexp(big)[1]))


def scaled_products(mv: Vec, rmv: Vec, v0: torch.Tensor, dtype: torch.dtype,
                    ) -> tuple[Vec, Vec, int, torch.Tensor]:
    """``(mv_s, rmv_s, e, p0)``: the products of ``J · 2^-e`` and ``p0 = mv_s(v0)``.

    ``e`` comes from one product with the unit vector ``v0``. The inputs are scaled by a power
    of two within the native ``dtype``'s range (so that the native product neither overflows nor
    underflows) and the float64 outputs by the rest of ``2^-e``.
    """
    big = torch.finfo(dtype).max if dtype.is_floating_point or dtype.is_complex else 2.0 ** 1023
    half = math.frexp(big)[1] // 2
    shift, p = 0, mv(v0)
    if not bool(torch.isfinite(p).all()):  # the native product itself overflowed
        shift = -half
    elif not bool(p.any()):  # zero: J is zero, or the native product underflowed
        shift = half
    if shift:
        q = mv(v0 * float(2.0 ** shift))
        if bool(q.any()) or shift < 0:
            p = q
        else:
            shift = 0
    e = exponent_of(p) - shift  # J v0 is about 2^e in size
    s_in = max(-half, min(half, -e))  # input scale within the native range
    s_out = -e - s_in  # the rest, applied to the float64 outputs

    def _wrap(fn: Vec) -> Vec:
        if s_in == 0 and s_out == 0:
            return fn
        a, b = float(2.0 ** s_in), float(2.0 ** s_out)
        return lambda w: fn(w * a) * b

    mv_s = _wrap(mv)
    p0 = p * float(2.0 ** s_out) if s_in == shift else mv_s(v0)
    return mv_s, _wrap(rmv), e, p0
