"""Is a point where the gradient vanishes a minimum? Probes where the derivatives cannot see.

A local solver stops where its gradient test passes. That is a minimum of a smooth cost only
when the curvature the solver does not model is not negative. Three stops pass the test
without being one:

* a **kink**: at ``|p|`` or ``relu(p)`` at 0, AD returns the subgradient 0, so the gradient
  "vanishes" while the cost falls on one or both sides (one-sided slopes that differ);
* a **saddle or maximum** of the cost: ``½‖r‖²`` has the Hessian ``JᵀJ + Σ rᵢ ∇²rᵢ``, and the
  Gauss–Newton model ``JᵀJ`` is blind to the second term along the null directions of ``J``
  (``r = p² − 1`` at 0);
* a **plateau**: the Jacobian is zero and the cost does not change nearby (``relu(p) − 1`` from
  ``p < 0``): a stationary point that says nothing about where a smaller cost lies.

:func:`probe` evaluates the cost at ``x ± t v`` along a few directions ``v`` (the directions the
model cannot see) and compares with what the gradient predicts. A probe point whose cost is
lower than ``cost(x)`` and than the first-order prediction, by more than rounding, proves that
``x`` is not a minimum; halving ``t`` on that side tells a kink (the fall halves: first order)
from a saddle or maximum (the fall quarters: second order). Where no probe falls and the cost is
flat along every direction while ``J = 0``, ``x`` is a plateau.

>>> import numpy as np
>>> cost = lambda x: 0.5 * float((abs(x[0]) - 1.0) ** 2)
>>> v = probe(cost, np.zeros(1), 0.5, np.zeros(1), np.eye(1), jac_zero=True)
>>> v.kind, v.x.round(4).tolist()
('kink', [0.0001])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Verdict", "blind_directions", "curvature_directions", "probe", "zero_columns"]

#: What a probe found: a minimum as far as it can tell, a kink or a saddle / maximum (with a
#: lower point), or a plateau.
Kind = Literal["minimum", "kink", "saddle", "plateau"]

STEP = 1e-4  # probe distance relative to max(1, ‖x‖∞)
WIDE = 1e-2  # where every probe is flat, probe again this far out (quartic minima)
NOISE = 1e-10  # a cost change below NOISE · cost is rounding (float64; more for coarser dtypes)
EPS64 = float(np.finfo(np.float64).eps)
MAX_DIRECTIONS = 4
NULL_RTOL = 1e-8  # singular values below NULL_RTOL · σ_max count as zero (about √eps)


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`probe`: its ``kind``, the lowest probe point ``x`` and its ``cost``
    (``None`` unless a kink or saddle was found) and the cost evaluations it spent."""

    kind: Kind
    x: np.ndarray | None = None
    cost: float | None = None
    nfev: int = 0


def blind_directions(J: np.ndarray, *, first: bool, limit: int = MAX_DIRECTIONS
                     ) -> np.ndarray:
    """Unit directions (rows) along which the Gauss–Newton model of ``J`` sees no curvature:
    the coordinates of zero columns, then the right singular vectors of singular values below
    ``1e-8 σ_max`` (and the null space when ``m < n``). With ``first`` (the solver never moved)
    the direction of the smallest singular value is added even when ``J`` has full rank: the
    start may be a maximum the model's positive curvature hides. At most ``limit`` rows.

    >>> blind_directions(np.array([[1.0, 0.0], [2.0, 0.0]]), first=False).tolist()
    [[0.0, 1.0]]
    """
    m, n = J.shape
    rows = zero_columns(np.flatnonzero(~np.any(J != 0, axis=0)), n, limit)
    if len(rows) < limit and n <= 2000 and np.any(J != 0):
        _, s, Vt = np.linalg.svd(J, full_matrices=m < n)
        s_full = np.concatenate([s, np.zeros(Vt.shape[0] - s.size)])
        order = np.argsort(s_full, kind="stable")
        blind = [i for i in order if s_full[i] <= NULL_RTOL * s[0]]
        if first and not blind:
            blind = [int(order[0])]
        for i in blind:
            if len(rows) >= limit:
                break
            v = Vt[i]
            if all(abs(float(v @ r)) < 1 - 1e-12 for r in rows):
                rows.append(v)
    return np.array(rows).reshape(-1, n)


def curvature_directions(H: np.ndarray, *, first: bool, limit: int = MAX_DIRECTIONS
                         ) -> np.ndarray:
    """Unit directions (rows) where the symmetric Hessian ``H`` shows no positive curvature:
    eigenvectors of eigenvalues below ``1e-8 max|λ|`` (negative ones first), or the zero columns
    of ``H = 0``; with ``first``, the eigenvector of the smallest eigenvalue in any case (a kink
    may hide behind a positive definite Hessian). At most ``limit`` rows.

    >>> curvature_directions(np.diag([2.0, -1.0]), first=False).tolist()
    [[0.0, 1.0]]
    """
    n = H.shape[0]
    if not np.any(H != 0):
        return np.array(zero_columns(np.arange(n), n, limit)).reshape(-1, n)
    lam, Q = np.linalg.eigh(0.5 * (H + H.T))
    keep = np.flatnonzero(lam <= NULL_RTOL * float(np.max(np.abs(lam))))
    if first and not keep.size:
        keep = np.array([0])
    return Q[:, keep[:limit]].T.copy()


def zero_columns(cols: np.ndarray, n: int, limit: int = MAX_DIRECTIONS) -> list[np.ndarray]:
    """Probe directions for the variables ``cols`` the residuals do not depend on: all of them
    at once (separable kinks such as ``|p| − 1`` from 0 then move together), then each alone.

    >>> [r.tolist() for r in zero_columns(np.array([0, 2]), 3)]
    [[0.7071067811865475, 0.0, 0.7071067811865475], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    def unit(idx: np.ndarray) -> np.ndarray:  # one row of length n, never an n × n identity
        v = np.zeros(n)
        v[idx] = 1.0 / np.sqrt(idx.size)
        return v

    rows = [unit(cols)] if cols.size > 1 else []
    rows += [unit(cols[k:k + 1]) for k in range(min(cols.size, limit - len(rows)))]
    return rows[:limit]


def probe(cost: Callable[[np.ndarray], float], x: np.ndarray, c0: float, grad: np.ndarray,
          directions: np.ndarray, *, jac_zero: bool,
          clip: Callable[[np.ndarray], np.ndarray] | None = None,
          eps: float = EPS64) -> Verdict:
    """Classify the stopping point ``x`` (cost ``c0``, gradient ``grad``) by the cost at
    ``x ± t v`` for each row ``v`` of ``directions``; ``clip`` maps a probe point into the
    feasible set (then the probe is along what remains of ``± t v``). A non-finite cost counts
    as no decrease. ``jac_zero``: the Jacobian at ``x`` is zero (a flat cost then means a
    plateau). ``eps``: the machine epsilon of the dtype the cost is computed in; rounding
    (``1e3 eps`` relative, at least ``1e-10``) sets the noise level, and the step grows with it
    so that a second-order fall stays above the noise."""
    rel = max(NOISE, 1e3 * eps)
    scale = max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)
    t = max(STEP, 10.0 * float(np.sqrt(rel))) * scale
    noise = rel * abs(c0)
    spent = 0

    def at(step: np.ndarray) -> tuple[np.ndarray, float]:
        nonlocal spent
        y = x + step if clip is None else clip(x + step)
        spent += 1
        c = cost(y)
        return y, (c if np.isfinite(c) else np.inf)

    def scan(t: float) -> tuple[tuple[float, np.ndarray, float] | None, bool]:
        """The lowest probe ``(cost, point, fall)`` that beats the prediction, and whether the
        cost was flat (within rounding) at every probe."""
        best: tuple[float, np.ndarray, float] | None = None
        flat = True
        for v in directions:
            for sign in (1.0, -1.0):
                y, c = at(sign * t * v)
                fall = c - c0
                flat = flat and abs(fall) <= noise
                if fall < -noise and fall < float(grad @ (y - x)) - noise and \
                        (best is None or c < best[0]):
                    best = (c, y, fall)
        return best, flat

    best, flat = scan(t)
    if best is None and flat and directions.size and WIDE * scale > t:
        best, flat = scan(WIDE * scale)  # flat, or only quartic-flat: look wider
    if best is None:
        return Verdict("plateau" if jac_zero and flat and directions.size else "minimum",
                       nfev=spent)
    c, y, fall = best
    _, c_half = at(0.5 * (y - x))
    # a kink falls linearly (half the fall at half the step), a saddle quadratically (a quarter)
    kind: Kind = "kink" if (c_half - c0) < 0.35 * fall else "saddle"
    return Verdict(kind, y, c, spent)
