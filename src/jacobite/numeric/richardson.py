"""Adaptive Richardson extrapolation of central differences (the default method).

For each input coordinate ``j`` central differences ``D_k`` are taken at the geometric steps
``h_k = h0 * 2**-k`` (``h0 = (1 + log max(|x_j|, 1)) / 2``, see :mod:`._steps`). Since
``D(h) = J + c1 h**2 + c2 h**4 + ...``, the Neville table
``T[k, l] = T[k, l-1] + (T[k, l-1] - T[k-1, l-1]) / (4**l - 1)`` removes one more power per level
(up to level 5, i.e. ``O(h**12)``). Each entry gets a Ridders-type error estimate
``max(|T[k,l] - T[k,l-1]|, |T[k,l] - T[k-1,l-1]|)`` plus a propagated noise model
``2 nu / h``, where ``nu`` is the larger of the rounding ``eps max|f|`` and the noise of ``f``
measured beforehand (:mod:`._noise`); every Jacobian entry takes the table entry with the
smallest estimate.

The walk down is adaptive, per column: after at least 4 steps a column stops once every entry's
best estimate is *confirmed* by another step (a smaller one, unless the entry is already at the
noise floor; it must agree within the estimates, which guards against steps that happen to
alias a periodic ``f``) and is either at the noise floor or has not improved for two steps.
Columns that stop within 12 steps at the noise floor of the largest steps (polynomial-like
``f``) try *larger* steps, where rounding is smaller: two, or as many as lead towards
``max(|x_j|, 1) / 2`` (at most 8) where ``|x_j|`` is large. Trial points where ``f`` is not
finite, or raises ``ArithmeticError``/``ValueError``, are skipped (the step sequence simply
goes on). Finally one central difference per column at a step out of beat with the sequence
and below 1 checks the chosen entry (see :func:`_offbeat`): steps in ratio 2 can all miss an
oscillation, and large steps average out features on the scale 1. With the noise probe's 6
calls, at most ``7 + 30 n`` calls are made where ``|x| <= 10`` (numdifftools' default
``Jacobian`` makes ``1 + 30 n``); smooth functions typically need ``7 + 10n`` to ``7 + 16n``.
A function varying on a scale far below 1 (``exp(1e4 x)``) needs ``step=``.

All table arithmetic is vectorised over ``(step, input, output)`` with NumPy.

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(lambda v: np.exp(v) * np.sin(v), np.array([0.3, 1.7]))
>>> exact = np.exp([0.3, 1.7]) * (np.sin([0.3, 1.7]) + np.cos([0.3, 1.7]))
>>> bool(np.abs(np.diag(res.jacobian) - exact).max() < 1e-13)
True
"""

from __future__ import annotations

import numpy as np

from ..config import get_memory_budget
from ..errors import JacobiteError, NonFiniteInputError
from ._noise import Noise
from ._problem import Problem
from ._steps import RICHARDSON_BASE, default_steps, scale

__all__ = ["MAX_ROWS", "extrapolate", "richardson", "select"]

RATIO = 2.0            # ratio between consecutive steps
MAX_LEVEL = 5          # extrapolation levels (removes h^2 ... h^10)
MIN_STEPS = 4          # steps taken before a column may stop
MAX_STEPS = 12         # steps per column at most when going up is allowed ...
UP_STEPS = 2           # ... plus this many larger steps for columns at the rounding floor
MAX_ROWS = MAX_STEPS + UP_STEPS  # so at most MAX_ROWS steps per column for |x| <= 10 ...
UP_MAX = 8             # ... and up to MAX_STEPS + UP_MAX where |x| is large
UP_WINDOW = 2          # "at the largest steps": best entry within the first UP_WINDOW+1 rows
ROUNDING_ULPS = 2.0    # rounding model: ROUNDING_ULPS * eps * max|f| / h
CONVERGED = 4.0        # estimate <= CONVERGED * rounding model: at the floor
PLAUSIBLE = 1e-6       # a stalled estimate must be below this relative size to stop
CONFIRM_ERR = 10.0     # a confirming entry's estimate may be this much larger than the best's
OFFBEAT = 0.6180339887498949  # the check step, out of beat with the ratio-2 sequence ...
OFFBEAT_SAFETY = 3.0  # ... which must agree within this many times its error terms
CONFIRM_AGREE = 3.0    # ... and must agree with it within CONFIRM_AGREE * (sum of estimates)


def extrapolate(d: np.ndarray, r: np.ndarray, *, ratio: float = RATIO,
                max_level: int = MAX_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """The Richardson table ``T`` and its error estimates ``E``, shape ``(levels, *d.shape)``.

    ``d`` holds central differences at decreasing steps (axis 0, ratio ``ratio``), ``r`` their
    rounding-error models; any trailing shape is carried along. Entries a level cannot fill
    (and entries built from non-finite differences) have ``T = NaN`` and ``E = inf``.

    >>> import numpy as np
    >>> h = 0.5 ** np.arange(4)
    >>> d = 1.0 + h ** 2 + h ** 4            # J = 1 plus truncation terms
    >>> T, E = extrapolate(d, np.zeros(4))
    >>> T[:3, -1].tolist()
    [1.015869140625, 0.9990234375, 1.0]
    """
    k = d.shape[0]
    levels = min(max_level, k - 1) + 1
    t = np.full((levels, *d.shape), np.nan)
    rr = np.full((levels, *d.shape), np.nan)
    e = np.full((levels, *d.shape), np.inf)
    t[0], rr[0] = d, r
    with np.errstate(invalid="ignore", over="ignore"):
        e[0, 1:] = np.abs(d[1:] - d[:-1]) + r[1:]
        for lv in range(1, levels):
            fac = ratio ** (2 * lv)
            cur, prev = t[lv - 1, lv:], t[lv - 1, lv - 1:-1]
            t[lv, lv:] = cur + (cur - prev) / (fac - 1)
            rr[lv, lv:] = (fac * rr[lv - 1, lv:] + rr[lv - 1, lv - 1:-1]) / (fac - 1)
            e[lv, lv:] = np.maximum(np.abs(t[lv, lv:] - cur),
                                    np.abs(t[lv, lv:] - prev)) + rr[lv, lv:]
        e[~(np.isfinite(t) & np.isfinite(e))] = np.inf
    return t, e


def select(t: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per entry, the table value with the smallest estimate: ``(value, estimate, row)``.

    Ties go to the larger step, then to the lower level.

    >>> import numpy as np
    >>> h = 0.5 ** np.arange(5)
    >>> val, est, row = select(*extrapolate(np.cos(1.0) + h ** 2 / 3, np.full(5, 1e-16)))
    >>> bool(abs(val - np.cos(1.0)) < 1e-15), int(row) >= 1
    (True, True)
    """
    levels, k = t.shape[:2]
    rest = t.shape[2:]
    # order the candidates by row first so that argmin prefers larger steps
    ef = np.swapaxes(e, 0, 1).reshape(levels * k, *rest)
    tf = np.swapaxes(t, 0, 1).reshape(levels * k, *rest)
    flat = np.argmin(ef, axis=0)[None]
    best_e = np.take_along_axis(ef, flat, 0)[0]
    best_t = np.take_along_axis(tf, flat, 0)[0]
    return best_t, best_e, flat[0] // levels


def _confirmed(t: np.ndarray, e: np.ndarray, best_t: np.ndarray, best_e: np.ndarray,
               best_row: np.ndarray, rb: np.ndarray, at_floor: np.ndarray) -> np.ndarray:
    """Whether an entry from another step agrees with the best one.

    The other step must be a later (smaller) one, except for entries already at the rounding
    floor, where any other step will do.
    """
    rows = np.arange(t.shape[1]).reshape((1, -1) + (1,) * best_t.ndim)
    later = np.where(at_floor, rows != best_row, rows > best_row)
    tol = CONFIRM_ERR * np.maximum(best_e, rb)
    with np.errstate(invalid="ignore"):
        agree = np.abs(t - best_t) <= CONFIRM_AGREE * (e + best_e)
    return (later & (e <= tol) & agree).any(axis=(0, 1))


class _Walker:
    """The state of the adaptive walk: differences per (row, column, output)."""

    def __init__(self, p: Problem, h0: np.ndarray, up: int, noise: Noise) -> None:
        self.p, self.h0, self.up, self.noise = p, h0, up, noise
        rows = up + MAX_ROWS
        self.d = np.full((rows, p.n, p.m), np.nan)
        self.r = np.full((rows, p.n, p.m), np.nan)
        self.h = np.full((rows, p.n), np.nan)
        self.failure: dict[int, BaseException] = {}
        # columns per chunk so that a table (T, E and temporaries) fits the memory budget
        per_col = 6 * (MAX_LEVEL + 1) * rows * max(p.m, 1) * 8
        self.chunk = max(1, get_memory_budget() // per_col)

    def evaluate_row(self, i: int, cols: np.ndarray) -> None:
        """Central differences at row ``i`` (step ``h0 * 2**(up - i)``) for columns ``cols``."""
        p, x = self.p, self.p.x
        if cols.size == 0:
            return
        h = self.h0[cols] * RATIO ** (self.up - i)
        idx = np.arange(cols.size)
        pts = np.repeat(x[None], 2 * cols.size, axis=0)
        pts[2 * idx, cols] += h
        pts[2 * idx + 1, cols] -= h
        pts = p.actual_points(pts)
        a = pts[2 * idx, cols] - x[cols]
        b = x[cols] - pts[2 * idx + 1, cols]
        fp = np.full((cols.size, p.m), np.nan)
        fm = np.full((cols.size, p.m), np.nan)
        for q, j in enumerate(cols):
            if not (a[q] > 0 and b[q] > 0):
                continue  # the step vanished in the working precision
            try:
                fp[q] = p.evaluate(pts[2 * q])
                fm[q] = p.evaluate(pts[2 * q + 1])
            except JacobiteError:
                raise
            except (ArithmeticError, ValueError) as exc:  # outside f's domain
                self.failure.setdefault(int(j), exc)
                fp[q] = np.nan
        a, b = a[:, None], b[:, None]
        with np.errstate(all="ignore"):
            den = a * b * (a + b)
            self.d[i, cols] = (b * b * fp - a * a * fm + (a * a - b * b) * p.f0) / den
            mag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(p.f0))
            nu = np.maximum(self.noise.of(mag), p.eps * mag)
            self.r[i, cols] = ROUNDING_ULPS * nu / ((a + b) / 2)
        self.h[i, cols] = ((a + b) / 2)[:, 0]

    def table(self, lo: int, hi: int, cols: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Table and best entries for rows ``lo:hi`` and columns ``cols``."""
        d = self.d[lo:hi][:, cols]
        r = self.r[lo:hi][:, cols]
        t, e = extrapolate(d, r)
        best_t, best_e, best_row = select(t, e)
        rb = np.take_along_axis(r, best_row[None], 0)[0]
        return t, e, best_t, best_e, best_row, rb

    def status(self, lo: int, hi: int, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per column: whether the walk down may stop, and whether it sits at the floor."""
        done = np.zeros(cols.size, dtype=bool)
        floor = np.zeros(cols.size, dtype=bool)
        k = hi - lo - 1
        for c0 in range(0, cols.size, self.chunk):
            sl = slice(c0, c0 + self.chunk)
            t, e, best_t, best_e, best_row, rb = self.table(lo, hi, cols[sl])
            at_floor = best_e <= CONVERGED * rb
            size = np.where(np.isfinite(best_t), np.abs(best_t), 0.0).max(axis=1, keepdims=True)
            plausible = best_e <= PLAUSIBLE * size + CONVERGED * rb
            stalled = best_row <= k - 2
            confirmed = _confirmed(t, e, best_t, best_e, best_row, rb, at_floor)
            ok = np.isfinite(best_e) & confirmed & (at_floor | (stalled & plausible))
            done[sl] = ok.all(axis=1)
            floor[sl] = (at_floor & (best_row <= UP_WINDOW)).all(axis=1)
        return done, floor

    def best(self, lo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best value, estimate and row (relative to ``lo``) of every entry, ``(n, m)`` each."""
        n, m = self.p.n, self.p.m
        best_t, best_e = np.empty((n, m)), np.empty((n, m))
        best_row = np.empty((n, m), dtype=np.intp)
        for c0 in range(0, n, self.chunk):
            cols = np.arange(c0, min(n, c0 + self.chunk))
            _, _, best_t[cols], best_e[cols], best_row[cols], _ = self.table(
                lo, self.d.shape[0], cols)
        return best_t, best_e, best_row


def up_steps(x: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """How many steps above ``h0`` each column may go where rounding is its only error:
    ``UP_STEPS``, or as many doublings as lead towards ``max(|x_j|, 1) / 2`` (at most
    ``UP_MAX``), where a function varying on the scale of ``x`` has the least rounding error.

    >>> import numpy as np
    >>> up_steps(np.array([1.0, 1e8]), np.array([0.5, 9.7])).tolist()
    [2, 8]
    """
    with np.errstate(divide="ignore"):
        room = np.ceil(np.log2(RICHARDSON_BASE * scale(x) / h0))
    return np.clip(room, UP_STEPS, UP_MAX).astype(np.intp)


def richardson(p: Problem, step: np.ndarray | None = None, noise: Noise | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive Richardson Jacobian of ``p``: ``(J, error, step)``, each ``(m, n)``.

    ``step`` (one per input) overrides the largest step ``h0`` and disables the upward steps.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> p = Problem(np.cos, np.array([1.0]), (), None, method="richardson")
    >>> J, err, h = richardson(p)
    >>> bool(abs(J[0, 0] + np.sin(1.0)) < 1e-14), bool(err[0, 0] < 1e-13)
    (True, True)
    """
    n, m = p.n, p.m
    if n == 0 or m == 0:
        z = np.zeros((m, n))
        return z, z.copy(), z.copy()
    user = step is not None
    h0 = np.asarray(step, dtype=np.float64) if user else default_steps("richardson", p.x, p.eps)
    allowed = np.zeros(n, dtype=np.intp) if user else up_steps(p.x, h0)
    up = int(allowed.max())
    if noise is None:
        noise = Noise(np.zeros(m), np.full(m, p.eps))
    w = _Walker(p, h0, up, noise)
    active = np.ones(n, dtype=bool)
    limited = np.zeros(n, dtype=bool)
    for k in range(MAX_ROWS):
        cols = np.flatnonzero(active)
        w.evaluate_row(up + k, cols)
        if k + 1 < MIN_STEPS:
            continue
        done, floor = w.status(up, up + k + 1, cols)
        # going up adds at most `up` rows: only for columns that stopped within MAX_STEPS
        limited[cols[done]] = floor[done] & (k + 1 <= MAX_STEPS)
        active[cols[done]] = False
        if not active.any():
            break
    lo = up
    for u in range(1, up + 1):
        limited &= allowed >= u
        cols = np.flatnonzero(limited)
        if cols.size == 0:
            break
        lo = up - u
        w.evaluate_row(lo, cols)
        _, floor = w.status(lo, w.d.shape[0], cols)
        limited[cols] = floor
    best_t, best_e, best_row = w.best(lo)
    if lo < up:
        # an entry from the larger steps cannot see features of f finer than those steps (a
        # small oscillation on a large power): it claims no more than its distance from the
        # best entry of the walk down, which could see them
        down_t, down_e, _ = w.best(up)
        went_up = (best_row < up - lo) & np.isfinite(down_e)
        best_e = np.where(went_up, np.maximum(best_e, np.abs(best_t - down_t)), best_e)
    missing = ~np.isfinite(best_e)
    if missing.any():
        bad = sorted({int(c) for c in np.argwhere(missing)[:, 0]})
        cause = next((w.failure[c] for c in bad if c in w.failure), None)
        raise NonFiniteInputError(
            f"f is not finite (or raised) at every trial point along flat input index(es) "
            f"{bad[:5]}, although f(x) is finite: x is too close to the edge of f's domain "
            "for the default steps; pass a smaller step=... (the largest step tried)"
        ) from cause
    hs = np.broadcast_to(w.h[lo:, :, None], (w.h.shape[0] - lo, n, m))
    used = np.take_along_axis(hs, best_row[None], 0)[0]
    d_row = np.take_along_axis(w.d[lo:], best_row[None], 0)[0]
    best_e = np.maximum(best_e, _offbeat(w, best_t, best_e, used, d_row))
    err = best_e + 2 * p.eps * np.abs(best_t)
    return best_t.T.copy(), err.T.copy(), used.T.copy()


def _offbeat(w: _Walker, best_t: np.ndarray, best_e: np.ndarray, used: np.ndarray,
             d_row: np.ndarray) -> np.ndarray:
    """A lower bound on the error from one more central difference per column, at a step
    ``OFFBEAT`` times the smaller of ``RICHARDSON_BASE`` and the finest step used.

    Steps in ratio 2 can all be multiples of half a period of an oscillation in ``f`` (then
    every one of them misses it), and steps far above 1 average out features of ``f`` on the
    scale 1 (a small ``sin`` on a large power). The extra step is out of beat with the sequence
    and no larger than the scale 1. Its difference is compared with the extrapolated value
    corrected by the ``h**2`` term seen at the chosen row; a disagreement beyond three times
    the noise, the estimate and the next term becomes the estimate, and so does any
    disagreement (plus the check's noise) for an entry built only from steps above the scale 1.
    ``(n, m)``; zeros where the check point is outside ``f``'s domain.
    """
    p = w.p
    n, m = p.n, p.m
    hc = OFFBEAT * np.minimum(RICHARDSON_BASE, used.min(axis=1))
    out = np.zeros((n, m))
    for j in range(n):
        pts, a, b = _check_points(p, j, hc[j], float(used[j].min()))
        if not (a > 0 and b > 0):
            continue
        try:
            fp, fm = p.evaluate(pts[0]), p.evaluate(pts[1])
        except JacobiteError:
            raise
        except (ArithmeticError, ValueError):
            continue
        with np.errstate(all="ignore"):
            d = (b * b * fp - a * a * fm + (a * a - b * b) * p.f0) / (a * b * (a + b))
            mag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(p.f0))
            r = ROUNDING_ULPS * np.maximum(w.noise.of(mag), p.eps * mag) / ((a + b) / 2)
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
