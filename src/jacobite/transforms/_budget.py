"""Bounded work for :func:`~jacobite.transforms.integrate`: an evaluation budget, and evidence
that an integral over an unbounded region diverges.

SciPy's adaptive rules keep subdividing as long as the error estimate stays above the
tolerance, so a divergent integral (``∬ 1`` over the plane) or an unreachable tolerance runs
for as long as it is allowed to. :class:`Budgeted` stops it after a number of evaluations;
:func:`divergence_evidence` then integrates over regions whose infinite bounds are cut at
growing radii ``R`` and reports the partial integrals when they keep growing.

>>> import math
>>> from jacobite.transforms import Polar
>>> evidence = divergence_evidence(1.0, Polar(), Polar().region)
>>> [(R, round(v / math.pi)) for R, v in evidence[-2:]]   # πR²: the area of a disk
[(1024.0, 1048576), (2048.0, 4194304)]
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._integrand import Integrand
from .base import Transform

__all__ = ["Budgeted", "OutOfEvaluations", "cut_at", "divergence_evidence"]

#: Radii at which the infinite bounds are cut: 1, 2, 4, …, 2**11.
RADII: tuple[float, ...] = tuple(2.0**k for k in range(12))
#: Evaluations allowed for each partial integral of the divergence test.
PROBE_EVALUATIONS = 60_000


class OutOfEvaluations(Exception):
    """Raised inside SciPy's loop when the evaluation budget is spent (caught by integrate)."""


class Budgeted:
    """An :class:`Integrand` that refuses to be evaluated more than ``limit`` times.

    >>> from jacobite.transforms import Polar
    >>> g = Budgeted(Integrand(1.0, Polar()), limit=2)
    >>> g.at_point(1.0, 0.0), g.at_point(2.0, 0.0)
    (1.0, 2.0)
    >>> g.at_point(3.0, 0.0)
    Traceback (most recent call last):
    ...
    jacobite.transforms._budget.OutOfEvaluations
    """

    def __init__(self, g: Integrand, limit: int) -> None:
        self.g, self.limit = g, limit

    @property
    def neval(self) -> int:
        return self.g.neval

    def at_point(self, *u: float) -> float:
        if self.g.neval + 1 > self.limit:
            raise OutOfEvaluations
        return self.g.at_point(*u)

    def at_points(self, u: np.ndarray) -> np.ndarray:
        if self.g.neval + len(u) > self.limit:
            raise OutOfEvaluations
        return self.g.at_points(u)


def cut_at(bounds: tuple[tuple[float, float], ...], R: float) -> tuple[tuple[float, float], ...]:
    """Every infinite bound replaced by one at distance ``R`` beyond the finite end (or ``±R``).

    >>> cut_at(((0.0, math.inf), (0.0, 1.0), (-math.inf, math.inf)), 8.0)
    ((0.0, 8.0), (0.0, 1.0), (-8.0, 8.0))
    """
    out = []
    for lo, hi in bounds:
        if math.isinf(lo) and math.isinf(hi):
            lo, hi = -R, R
        elif math.isinf(hi):
            hi = max(lo, 0.0) + R
        elif math.isinf(lo):
            lo = min(hi, 0.0) - R
        out.append((lo, hi))
    return tuple(out)


def _partial(f: Any, T: Transform, bounds: tuple[tuple[float, float], ...]) -> float | None:
    import scipy.integrate as si  # loaded on use

    g = Budgeted(Integrand(f, T), PROBE_EVALUATIONS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = si.cubature(g.at_points, [b[0] for b in bounds], [b[1] for b in bounds],
                              rtol=1e-3, atol=0.0)
    except OutOfEvaluations:
        return None
    value = float(res.estimate)
    return value if res.status == "converged" and math.isfinite(value) else None


def divergence_evidence(f: Any, T: Transform, bounds: tuple[tuple[float, float], ...],
                        ) -> list[tuple[float, float]] | None:
    """``[(R, partial integral), ...]`` when the integral over the unbounded ``bounds`` diverges.

    The partial integrals over the region cut at ``R = 1, 2, 4, …, 2048`` are computed (to a
    relative 1e-3) as far as each takes at most :data:`PROBE_EVALUATIONS` evaluations. They are
    taken as evidence of divergence when the largest ``R`` reached is at least 16 and, over its
    last four doublings, the partial integrals change in the same direction without the changes
    shrinking (each at least 0.98 times the one before): a convergent integral's changes shrink
    geometrically once ``R`` is past its mass. ``None`` when the region is bounded or the
    evidence is not conclusive.
    """
    if all(math.isfinite(v) for b in bounds for v in b):
        return None
    seen: list[tuple[float, float]] = []
    for R in RADII:
        value = _partial(f, T, cut_at(bounds, R))
        if value is None:
            break
        seen.append((R, value))
    if len(seen) < 5 or not _keeps_growing([v for _, v in seen[-5:]]):
        return None
    return seen


def _keeps_growing(values: list[float]) -> bool:
    steps = np.diff(values)
    scale = max(abs(v) for v in values)
    if scale == 0 or np.any(np.abs(steps) <= 1e-6 * scale):
        return False
    if not (np.all(steps > 0) or np.all(steps < 0)):
        return False
    return bool(np.all(np.abs(steps[1:]) >= 0.98 * np.abs(steps[:-1])))
