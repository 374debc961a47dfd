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
and below 1 checks the chosen entry (see :mod:`._offbeat`): steps in ratio 2 can all miss an
oscillation, and large steps average out features on the scale 1. With the noise probe's 6
calls, at most ``7 + 30 n`` calls are made where ``|x| <= 10`` (numdifftools' default
``Jacobian`` makes ``1 + 30 n``); smooth functions typically need ``7 + 10n`` to ``7 + 16n``.
A function varying on a scale far below 1 (``exp(1e4 x)``) needs ``step=``.

All table arithmetic is vectorised over ``(step, input, output)`` with NumPy, in blocks of
columns and outputs that keep the working set near ``WORK_BYTES`` whatever the Jacobian's size.

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(lambda v: np.exp(v) * np.sin(v), np.array([0.3, 1.7]))
>>> exact = np.exp([0.3, 1.7]) * (np.sin([0.3, 1.7]) + np.cos([0.3, 1.7]))
>>> bool(np.abs(np.diag(res.jacobian) - exact).max() < 1e-13)
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..config import get_memory_budget
from ..errors import JacobiteError, NonFiniteInputError
from ._noise import Noise
from ._offbeat import ROUNDING_ULPS, offbeat
from ._problem import Problem
from ._steps import RICHARDSON_BASE, default_steps, scale
from .differences import three_point

__all__ = ["MAX_ROWS", "extrapolate", "richardson", "select"]

RATIO = 2.0            # ratio between consecutive steps
MAX_LEVEL = 5          # extrapolation levels (removes h^2 ... h^10)
MIN_STEPS = 4          # steps taken before a column may stop
MAX_STEPS = 12         # steps per column at most when going up is allowed ...
UP_STEPS = 2           # ... plus this many larger steps for columns at the rounding floor
MAX_ROWS = MAX_STEPS + UP_STEPS  # so at most MAX_ROWS steps per column for |x| <= 10 ...
UP_MAX = 8             # ... and up to MAX_STEPS + UP_MAX where |x| is large
UP_WINDOW = 2          # "at the largest steps": best entry within the first UP_WINDOW+1 rows
CONVERGED = 4.0        # estimate <= CONVERGED * rounding model: at the floor
PLAUSIBLE = 1e-6       # a stalled estimate must be below this relative size to stop
CONFIRM_ERR = 10.0     # a confirming entry's estimate may be this much larger than the best's
CONFIRM_AGREE = 3.0    # ... and must agree with it within CONFIRM_AGREE * (sum of estimates)
WORK_BYTES = 8 * 2**20  # the walk's working set at most (tables, differences, trial points)
TABLE_ARRAYS = 6       # arrays of a table's size alive at once (T, E, rounding, temporaries)


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
    """The state of the adaptive walk for one block of columns ``cols`` (flat input indices):
    differences per (row, column of the block, output).

    The table of a column, its error estimates and temporaries take about
    ``TABLE_ARRAYS * levels * rows`` floats per output; they are built for sub-blocks of
    (columns, outputs) of at most ``work`` bytes, so the working set never grows with the
    size of the Jacobian."""

    def __init__(self, p: Problem, h0: np.ndarray, up: int, noise: Noise, cols: np.ndarray,
                 work: int) -> None:
        self.p, self.h0, self.up, self.noise, self.cols = p, h0, up, noise, cols
        rows = up + MAX_ROWS
        self.d = np.full((rows, cols.size, p.m), np.nan)
        self.r = np.full((rows, cols.size, p.m), np.nan)
        self.h = np.full((rows, cols.size), np.nan)
        self.failure: dict[int, BaseException] = {}
        self.vanished: set[int] = set()  # columns where a step vanished in x's precision
        entries = max(1, work // (TABLE_ARRAYS * (MAX_LEVEL + 1) * rows * 8))
        self.out_chunk = min(p.m, entries)
        self.col_chunk = max(1, entries // p.m)

    def evaluate_row(self, i: int, loc: np.ndarray) -> None:
        """Central differences at row ``i`` (step ``h0 * 2**(up - i)``) for the block's columns
        ``loc`` (positions in the block)."""
        p, x = self.p, self.p.x
        if loc.size == 0:
            return
        cols = self.cols[loc]
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
                self.vanished.add(int(j))
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
            self.d[i, loc] = three_point(a, b, fp, fm, p.f0)
            mag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(p.f0))
            nu = np.maximum(self.noise.of(mag), p.eps * mag)
            self.r[i, loc] = ROUNDING_ULPS * nu / ((a + b) / 2)
        self.h[i, loc] = ((a + b) / 2)[:, 0]

    def _tables(self, lo: int, hi: int, loc: np.ndarray) -> Iterator[tuple[Any, ...]]:
        """Per sub-block of ``loc`` and outputs: the positions ``(q, o)`` in the
        ``(loc.size, m)`` arrays, the table, estimates, best entries and their rounding."""
        for c0 in range(0, loc.size, self.col_chunk):
            q = slice(c0, c0 + self.col_chunk)
            for o0 in range(0, self.p.m, self.out_chunk):
                o = slice(o0, o0 + self.out_chunk)
                r = self.r[lo:hi, loc[q], o]
                t, e = extrapolate(self.d[lo:hi, loc[q], o], r)
                best_t, best_e, best_row = select(t, e)
                rb = np.take_along_axis(r, best_row[None], 0)[0]
                yield (q, o), t, e, best_t, best_e, best_row, rb

    def status(self, lo: int, hi: int, loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per column: whether the walk down may stop, and whether it sits at the floor."""
        shape = (loc.size, self.p.m)
        best_t, best_e, rb = np.empty(shape), np.empty(shape), np.empty(shape)
        best_row = np.empty(shape, dtype=np.intp)
        confirmed = np.empty(shape, dtype=bool)
        for at, t, e, bt, be, br, rbb in self._tables(lo, hi, loc):
            best_t[at], best_e[at], best_row[at], rb[at] = bt, be, br, rbb
            confirmed[at] = _confirmed(t, e, bt, be, br, rbb, be <= CONVERGED * rbb)
        k = hi - lo - 1
        at_floor = best_e <= CONVERGED * rb
        size = np.where(np.isfinite(best_t), np.abs(best_t), 0.0).max(axis=1, keepdims=True)
        plausible = best_e <= PLAUSIBLE * size + CONVERGED * rb
        stalled = best_row <= k - 2
        ok = np.isfinite(best_e) & confirmed & (at_floor | (stalled & plausible))
        return (np.asarray(ok.all(axis=1)),
                np.asarray((at_floor & (best_row <= UP_WINDOW)).all(axis=1)))

    def best(self, lo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best value, estimate and row (relative to ``lo``) of every entry of the block,
        ``(block, m)`` each."""
        loc = np.arange(self.cols.size)
        shape = (loc.size, self.p.m)
        best_t, best_e = np.empty(shape), np.empty(shape)
        best_row = np.empty(shape, dtype=np.intp)
        for at, _, _, bt, be, br, _ in self._tables(lo, self.d.shape[0], loc):
            best_t[at], best_e[at], best_row[at] = bt, be, br
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


def richardson(p: Problem, step: np.ndarray | None = None, noise: Noise | None = None,
               budget: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive Richardson Jacobian of ``p``: ``(J, error, step)``, each ``(m, n)``.

    ``step`` (one per input) overrides the largest step ``h0`` and disables the upward steps.
    The columns are walked in blocks whose differences, tables and trial points take at most
    ``WORK_BYTES`` (or a quarter of ``budget``, the thread's memory budget by default); the
    blocks change the order of the calls of ``f``, never the result.

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
    work = min(WORK_BYTES, (get_memory_budget() if budget is None else budget) // 4)
    # per column of a block: its differences and rounding models (rows x m each) and its
    # two trial points (n each)
    block = max(1, work // (2 * 8 * ((up + MAX_ROWS) * m + n)))
    jac, err, used = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    for c0 in range(0, n, block):
        cols = np.arange(c0, min(n, c0 + block))
        w = _Walker(p, h0, up, noise, cols, work)
        bt, be, bu = _walk(w, allowed[cols])
        jac[:, cols], err[:, cols], used[:, cols] = bt.T, be.T, bu.T
    return jac, err, used


def _walk(w: _Walker, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The walk down, the steps up and the off-beat check for the block of ``w``:
    ``(J, error, step)``, each ``(block, m)``."""
    p, up, nb = w.p, w.up, w.cols.size
    active = np.ones(nb, dtype=bool)
    limited = np.zeros(nb, dtype=bool)
    for k in range(MAX_ROWS):
        loc = np.flatnonzero(active)
        w.evaluate_row(up + k, loc)
        if k + 1 < MIN_STEPS:
            continue
        done, floor = w.status(up, up + k + 1, loc)
        # going up adds at most `up` rows: only for columns that stopped within MAX_STEPS
        limited[loc[done]] = floor[done] & (k + 1 <= MAX_STEPS)
        active[loc[done]] = False
        if not active.any():
            break
    lo = up
    for u in range(1, up + 1):
        limited &= allowed >= u
        loc = np.flatnonzero(limited)
        if loc.size == 0:
            break
        lo = up - u
        w.evaluate_row(lo, loc)
        _, floor = w.status(lo, w.d.shape[0], loc)
        limited[loc] = floor
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
        bad = sorted({int(w.cols[c]) for c in np.argwhere(missing)[:, 0]})
        cause = next((w.failure[c] for c in bad if c in w.failure), None)
        if cause is None and all(c in w.vanished for c in bad):
            raise NonFiniteInputError(
                f"every step of the sequence vanished in x's precision along flat input "
                f"index(es) {bad[:5]} (|x| is too large for steps that grow like log|x|): pass "
                "step=... of a few units of |x|'s last digit or more, e.g. step=1e-4 * abs(x), "
                "or use method='central'")
        raise NonFiniteInputError(
            f"f is not finite (or raised) at every trial point along flat input index(es) "
            f"{bad[:5]}, although f(x) is finite: x is too close to the edge of f's domain "
            "for the default steps; pass a smaller step=... (the largest step tried)"
        ) from cause
    hs = np.broadcast_to(w.h[lo:, :, None], (w.h.shape[0] - lo, nb, p.m))
    used = np.take_along_axis(hs, best_row[None], 0)[0]
    d_row = np.take_along_axis(w.d[lo:], best_row[None], 0)[0]
    best_e = np.maximum(best_e, offbeat(p, w.cols, w.noise, best_t, best_e, used, d_row))
    return best_t, best_e + 2 * p.eps * np.abs(best_t), used
