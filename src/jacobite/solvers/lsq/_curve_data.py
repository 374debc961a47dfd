"""The data of :func:`curve_fit`: ``xdata`` and ``ydata`` as float64 arrays, checked for NaN/Inf
or with the NaN points omitted (``nan_policy``), and ``sigma`` as the whitening of the
residuals.

``check_finite`` (default: on unless ``nan_policy`` is given) refuses NaN or Inf in ``ydata`` and
in a numeric ``xdata``. ``nan_policy="omit"`` drops each point whose ``ydata`` or any ``xdata``
coordinate is NaN (``xdata``'s last axis runs over the points) together with its row and column
of ``sigma``; ``"raise"`` refuses NaN. A ``sigma`` that is a scalar or has one entry per point
holds standard deviations (``W = diag(1/σ)``); an ``(m, m)`` one is the covariance matrix
``Σ = L Lᵀ`` of ``ydata`` (``W = L⁻¹``).

>>> import numpy as np
>>> x, y, s = data([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], [0.1, 0.2, 0.3], None, "omit")
>>> x.tolist(), y.tolist(), s.tolist()
([1.0, 3.0], [1.0, 3.0], [0.1, 0.3])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ... import _validate
from ...errors import InvalidOptionError, NonFiniteInputError, ShapeError

__all__ = ["data", "whitening"]

NAN_POLICIES = (None, "raise", "omit")


def _array(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().to("cpu")
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} must be an array of numbers") from exc


def data(xdata: Any, ydata: Any, sigma: Any, check_finite: bool | None, nan_policy: str | None
         ) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """``(xdata, ydata, sigma)`` checked and, for ``nan_policy="omit"``, without NaN points
    (see the module doc). ``xdata`` becomes a float64 array where it is numeric and is passed
    through as is otherwise (``None``, an object the model understands)."""
    if nan_policy == "propagate":
        raise InvalidOptionError("`nan_policy='propagate'` is not supported by this function: "
                                 "a NaN residual leaves nothing to minimise; pass "
                                 "nan_policy='omit' to drop those points")
    if nan_policy not in NAN_POLICIES:
        raise InvalidOptionError(f"nan_policy must be one of {{None, 'raise', 'omit'}}; got "
                                 f"{nan_policy!r}")
    check = nan_policy is None if check_finite is None else \
        _validate.boolean(check_finite, "check_finite")
    y = _array(ydata, "ydata")
    x = xdata
    if isinstance(xdata, (list, tuple, np.ndarray, torch.Tensor)):
        try:
            x = _array(xdata, "xdata")
        except ShapeError:
            x = xdata  # ragged or mixed: the model's own business
    if y.size == 0:
        raise ShapeError("ydata is empty; give at least one observation")
    numeric_x = isinstance(x, np.ndarray)
    if check:
        for name, a in (("xdata", x), ("ydata", y)):
            if isinstance(a, np.ndarray) and not np.all(np.isfinite(a)):
                raise NonFiniteInputError(f"{name} contains NaN or Inf; remove those points, or "
                                          "pass nan_policy='omit' to drop the NaN ones")
        return x, y, None if sigma is None else _array(sigma, "sigma")
    s = None if sigma is None else _array(sigma, "sigma")
    if nan_policy is None:
        if not np.all(np.isfinite(y)):  # a NaN or Inf residual leaves nothing to minimise
            raise NonFiniteInputError("ydata contains NaN or Inf (check_finite=False lets it "
                                      "through, but no fit can use it); pass nan_policy='omit' "
                                      "to drop the NaN points, or remove them")
        return x, y, s
    bad = np.isnan(y)
    if numeric_x and x.ndim >= 1 and x.shape[-1] == y.size and y.ndim == 1:
        bad = bad | np.isnan(x).any(axis=tuple(range(x.ndim - 1)))
    elif numeric_x:
        bad = bad | bool(np.isnan(x).any())
    if not bad.any():
        return x, y, s
    if nan_policy == "raise":
        raise NonFiniteInputError("The input contains nan values (in xdata or ydata); remove "
                                  "those points, or pass nan_policy='omit' to drop them")
    keep = ~bad
    if numeric_x:
        x = x[..., keep]
    y = y[keep]
    if s is not None and s.ndim == 1 and s.size == keep.size:
        s = s[keep]
    elif s is not None and s.ndim == 2 and s.shape == (keep.size, keep.size):
        s = s[np.ix_(keep, keep)]
    return x, y, s


def whitening(s: np.ndarray | None, m: int, ny: int
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``r ↦ W r`` for residuals ``r`` of length ``m`` (rows of ``J`` alike): ``sigma`` as
    standard deviations (a scalar or ``ny`` entries) or as an ``(ny, ny)`` covariance."""
    if s is None:
        return lambda r: r
    if not np.all(np.isfinite(s)):
        raise NonFiniteInputError("sigma contains NaN or Inf; give finite standard deviations "
                                  "or a finite covariance matrix")
    if s.size == 1 or s.shape == (ny,):
        if not np.all(s > 0):
            raise InvalidOptionError("sigma (standard deviations) must be positive")
        w = torch.as_tensor(1.0 / s.reshape(-1))
        if w.numel() != 1 and m % w.numel() != 0:
            raise ShapeError(f"sigma has {w.numel()} entries for {m} residuals; give one per "
                             "point of ydata")
        w = w.repeat(m // w.numel()) if w.numel() != 1 else w

        def diagonal(r: torch.Tensor) -> torch.Tensor:
            return r * (w if r.ndim == 1 else w[:, None])
        return diagonal
    if s.shape == (ny, ny) and m == ny:
        L, info = torch.linalg.cholesky_ex(torch.as_tensor(s))
        if int(info) != 0:
            raise InvalidOptionError("sigma as a covariance matrix must be symmetric positive "
                                     "definite")

        def full(r: torch.Tensor) -> torch.Tensor:
            rr = r if r.ndim == 2 else r[:, None]
            out = torch.linalg.solve_triangular(L.to(rr.dtype), rr, upper=False)
            return out if r.ndim == 2 else out[:, 0]
        return full
    raise ShapeError(f"sigma must be a scalar or have shape ({ny},) or ({ny}, {ny}); got "
                     f"{tuple(s.shape)}")
