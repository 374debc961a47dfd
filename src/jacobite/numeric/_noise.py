"""The noise level of ``f`` near ``x``, measured from high-order differences.

Rounding inside ``f``, results computed in a lower precision, or a simulation's jitter make
``f`` noisy: ``f(x) = g(x) + e(x)`` with a smooth ``g`` and an erratic ``e``. A difference with
step ``h`` then carries an error of about ``|e| / h``, which the machine epsilon alone does not
predict. The probe evaluates ``f`` at ``K`` points ``x + t_k d u`` (irregular integers ``t_k``
up to ``2K``) along a fixed direction ``u`` with a small spacing ``d``: divided differences of
order ``k`` remove the smooth part (it contributes ``~|g^(k)| / k!``) but keep the noise, whose
size for independent errors ``sigma`` follows from the weights of the difference. The estimate
is the largest of these normalised root-mean-square differences over the orders ``4 .. K``, per
output. ``K`` calls of ``f``.

>>> import numpy as np
>>> from jacobite.numeric._problem import Problem
>>> rng = np.random.default_rng(0)
>>> p = Problem(lambda v: np.sin(v) + 1e-9 * rng.standard_normal(v.shape), np.array([1.0]),
...             (), None, method="central")
>>> noise = noise_level(p)
>>> bool(1e-10 < noise.sigma[0] < 1e-8), p.nfev
(True, 7)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import JacobiteError
from ._problem import Problem
from ._steps import nominal_scale

__all__ = ["PROBE_POINTS", "PROBE_SPACING", "Noise", "noise_level"]

PROBE_POINTS = 6       # calls of f besides f(x)
PROBE_SPACING = 1e-6   # d: spacing of the probe, times nominal_scale(x)
MIN_ORDER = 4          # lower orders still see the smooth part
MAX_RELATIVE = 1e-6    # cap on the relative noise used to choose steps


# probe nodes: irregular integers (gaps 1, 2, 1, 3, 2, 3), so that a function rounded to a
# coarse grid (float32 results) cannot step through them in equal increments that hide the
# rounding, while x + node * spacing stays exactly representable
NODES = np.array([0.0, 1.0, 3.0, 4.0, 7.0, 9.0, 12.0])


def _normalised_rms(values: np.ndarray, order: int) -> np.ndarray:
    """Root mean square of the divided differences of ``order`` over consecutive nodes, each
    divided by the size it has for independent unit errors. For a smooth function and a small
    spacing it is the noise level ``sigma`` (per output).

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> bool(0.3 < float(_normalised_rms(rng.standard_normal((7, 1)), 4)[0]) < 3)
    True
    """
    total = np.zeros(values.shape[1:])
    windows = values.shape[0] - order
    for start in range(windows):
        t = NODES[start:start + order + 1]
        w = np.array([1.0 / np.prod([t[i] - t[j] for j in range(order + 1) if j != i])
                      for i in range(order + 1)])
        dd = w @ values[start:start + order + 1]
        total += dd ** 2 / np.sum(w ** 2)
    return np.sqrt(total / windows)


@dataclass(frozen=True)
class Noise:
    """The measured noise of ``f``: ``sigma`` (absolute, per output) and ``rho`` (relative:
    ``sigma`` over the size of the values it was measured on, at least the machine epsilon).

    Whether noise is additive (``f + e``) or relative (``f (1 + e)``, rounding to a lower
    precision) cannot be told from one probe, so both readings are kept: the noise of a value of
    size ``|f|`` is taken as ``max(sigma, rho |f|)``.

    >>> import numpy as np
    >>> Noise(np.array([1e-10]), np.array([1e-9])).of(np.array([10.0])).tolist()
    [1e-08]
    """

    sigma: np.ndarray
    rho: np.ndarray

    def of(self, size: np.ndarray) -> np.ndarray:
        """Noise of values of size ``size`` (trailing axis: outputs)."""
        return np.maximum(self.sigma, self.rho * np.abs(size))

    @property
    def relative(self) -> float:
        """The relative level that chooses the steps, capped at ``MAX_RELATIVE``."""
        return float(min(float(np.max(self.rho, initial=0.0)), MAX_RELATIVE))


def noise_level(p: Problem) -> Noise:
    """The noise of each flat output of ``p.f`` near ``p.x``, measured with ``PROBE_POINTS``
    calls. Where the probe left ``f``'s domain, only the machine epsilon is assumed.
    """
    n, m = p.n, p.m
    rng = np.random.default_rng(0)
    u = rng.uniform(0.5, 1.0, n) * rng.choice([-1.0, 1.0], n)
    d = PROBE_SPACING * nominal_scale(p.x)
    for direction in (1.0, -1.0):
        # a spacing that x + k * spacing represents exactly, so that rounding of the points
        # does not pass for noise
        first = p.actual_points((p.x + direction * d * u / 2)[None])[0] - p.x
        pts = p.actual_points(p.x[None] + NODES[1:, None] * first[None])
        values = np.empty((PROBE_POINTS + 1, m))
        values[0] = p.f0
        try:
            for i in range(PROBE_POINTS):
                values[i + 1] = p.evaluate(pts[i])
        except JacobiteError:
            raise
        except (ArithmeticError, ValueError):
            continue
        if np.all(np.isfinite(values)):
            # the differences are linear in the values: measure them on values scaled to at
            # most 1, so that squaring cannot overflow where |f| is near the float64 limit
            size = np.abs(values).max(axis=0)
            unit = np.where(size > 0, size, 1.0)
            sigma = np.zeros(m)
            for order in range(MIN_ORDER, PROBE_POINTS + 1):
                sigma = np.maximum(sigma, _normalised_rms(values / unit, order))
            sigma = sigma * unit
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = np.where(sigma > 0, sigma / size, 0.0)
            return Noise(sigma, np.maximum(rho, p.eps))
    return Noise(np.zeros(m), np.full(m, p.eps))
