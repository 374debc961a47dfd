"""The prior precision of a Laplace posterior: checked as one number or one per layer, and
chosen by maximising the evidence over ``log δ`` (one number for every layer): a grid of
``log δ`` over ``[10⁻⁴, 10⁶]``, then a bounded scalar search between the best point's
neighbours.

>>> import torch
>>> prior_vector(2.0, 3, torch.zeros(1, dtype=torch.float64))
tensor([2., 2., 2.], dtype=torch.float64)
>>> d = maximise_evidence(lambda d: -(d.log() - 1.0).square().sum(), torch.zeros(1))
>>> round(float(d[0]), 3)  # the maximum at log δ = 1
2.718
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

from ..errors import ArgumentTypeError, InvalidOptionError, NonFiniteInputError, ShapeError

__all__ = ["maximise_evidence", "prior_vector"]

_FIX = "pass prior_precision='auto', a number > 0, or a tensor of one number > 0 per layer"
LOG10_RANGE = (-4.0, 6.0)


def prior_vector(value: Any, groups: int, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a ``(groups,)`` tensor of positive finite prior precisions."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise ArgumentTypeError(f"prior_precision must be 'auto', a number or a tensor, got "
                                f"{value!r}; {_FIX}")
    # a Python number straight to the parameters' dtype (not through float32)
    t = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value),
                                                                              dtype=like.dtype)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ArgumentTypeError(f"prior_precision must be real, got dtype {t.dtype}; {_FIX}")
    t = t.to(dtype=like.dtype, device=like.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(groups).clone()
    elif t.numel() != groups:
        raise ShapeError(f"prior_precision has {t.numel()} numbers but the posterior has "
                         f"{groups} layer(s); {_FIX}")
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteInputError(f"prior_precision must be finite; {_FIX}")
    if not bool((t > 0).all()):
        raise InvalidOptionError(f"prior_precision must be > 0 (a Gaussian prior's "
                                 f"precision), got {t.tolist()}; {_FIX}")
    return t


def maximise_evidence(evidence: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor,
                      groups: int = 1, points: int = 41) -> torch.Tensor:
    """The ``δ`` (one number for every layer, as a ``(groups,)`` tensor) maximising
    ``evidence(δ)``."""

    from scipy.optimize import minimize_scalar  # scipy loads on first use

    def value(t: float) -> float:
        delta = torch.full((groups,), math.exp(t), dtype=like.dtype, device=like.device)
        v = float(evidence(delta))
        return v if math.isfinite(v) else -math.inf

    lo, hi = (x * math.log(10) for x in LOG10_RANGE)
    grid = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    values = [value(t) for t in grid]
    best = max(range(points), key=values.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, points - 1)]
    res = minimize_scalar(lambda t: -value(t), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-6})
    t = float(res.x) if -float(res.fun) >= values[best] else grid[best]
    return torch.full((groups,), math.exp(t), dtype=like.dtype, device=like.device)
