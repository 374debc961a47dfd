"""The off-beat check of a Richardson entry: one more central difference per column.

>>> import numpy as np
>>> from jacobite.numeric._problem import Problem
>>> from jacobite.numeric._noise import Noise
>>> p = Problem(np.sin, np.array([1.0]), (), None, method="richardson")
>>> exact = np.array([[np.cos(1.0)]])
>>> offbeat(p, np.array([0]), Noise(np.zeros(1), np.full(1, p.eps)), exact,
...         np.array([[1e-15]]), np.array([[0.1]]), exact).tolist()
[[0.0]]
"""

from __future__ import annotations

import numpy as np

from ..errors import JacobiteError
from ._noise import Noise
from ._problem import Problem
from ._steps import RICHARDSON_BASE
from .differences import three_point

__all__ = ["OFFBEAT", "ROUNDING_ULPS", "offbeat"]

ROUNDING_ULPS = 2.0    # rounding model: ROUNDING_ULPS * eps * max|f| / h
OFFBEAT = 0.6180339887498949  # the check step, out of beat with the ratio-2 sequence ...
OFFBEAT_SAFETY = 3.0  # ... which must agree within this many times its error terms


def offbeat(p: Problem, cols: np.ndarray, noise: Noise, best_t: np.ndarray,
            best_e: np.ndarray, used: np.ndarray, d_row: np.ndarray) -> np.ndarray:
    """A lower bound on the error from one more central difference per column, at a step
    ``OFFBEAT`` times the smaller of ``RICHARDSON_BASE`` and the finest step used.

    Steps in ratio 2 can all be multiples of half a period of an oscillation in ``f`` (then
    every one of them misses it), and steps far above 1 average out features of ``f`` on the
    scale 1 (a small ``sin`` on a large power). The extra step is out of beat with the sequence
    and no larger than the scale 1. Its difference is compared with the extrapolated value
    corrected by the ``h**2`` term seen at the chosen row; a disagreement beyond three times
    the noise, the estimate and the next term becomes the estimate, and so does any
    disagreement (plus the check's noise) for an entry built only from steps above the scale 1.
    ``cols`` are the flat input indices of the rows of ``best_t`` (a block of columns).
    ``(block, m)``; zeros where the check point is outside ``f``'s domain.
    """
    hc = OFFBEAT * np.minimum(RICHARDSON_BASE, used.min(axis=1))
    out = np.zeros(used.shape)
    for j, col in enumerate(cols):
        pts, a, b = _check_points(p, int(col), hc[j], float(used[j].min()))
        if not (a > 0 and b > 0):
            continue
        try:
            fp, fm = p.evaluate(pts[0]), p.evaluate(pts[1])
        except JacobiteError:
            raise
        except (ArithmeticError, ValueError):
            continue
        with np.errstate(all="ignore"):
            d = three_point(np.float64(a), np.float64(b), fp, fm, p.f0)
            mag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(p.f0))
            r = ROUNDING_ULPS * np.maximum(noise.of(mag), p.eps * mag) / ((a + b) / 2)
            h2 = ((a + b) / 2) ** 2
            c1 = (d_row[j] - best_t[j]) / used[j] ** 2
            gap = np.abs(d - best_t[j] - c1 * h2)
            bad = np.isfinite(gap) & (
                gap > OFFBEAT_SAFETY * (r + best_e[j] + np.abs(c1) * h2 * h2 / used[j] ** 2))
            # an entry built only from steps above the scale 1 vouches for no more than the
            # check at that scale can confirm
            coarse = used[j] > RICHARDSON_BASE
        out[j] = np.where(bad | coarse, gap + r, 0.0)
    return out


def _check_points(p: Problem, j: int, h: float, used: float
                  ) -> tuple[np.ndarray, float, float]:
    """The two points ``x ± h e_j`` as ``f`` receives them, and the steps they really make.

    Where x's dtype cannot hold a step of ``h`` (float32 at large ``|x|``), rounding can erase
    the step or land it on a step of the ratio-2 sequence (``used`` times a power of 2), which
    would check the entry against itself; the step then grows by out-of-beat factors until it
    is neither: a check at the finest such step still tells an entry built from coarse steps
    from the derivative."""
    pts = np.repeat(p.x[None], 2, axis=0)
    a = b = 0.0
    for _ in range(64):
        pts = np.repeat(p.x[None], 2, axis=0)
        pts[0, j] += h
        pts[1, j] -= h
        pts = p.actual_points(pts)
        a, b = float(pts[0, j] - p.x[j]), float(p.x[j] - pts[1, j])
        if not np.isfinite(h):
            break
        if a > 0 and b > 0:
            k = np.log2((a + b) / 2 / used) if used > 0 else 0.5
            if abs(k - np.round(k)) > 0.05:
                break
        h *= 1 + OFFBEAT
    return pts, a, b
