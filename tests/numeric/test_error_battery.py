"""Battery: every method's error estimate bounds its true error, and the answer is useful.

Functions × points × methods. The points include large arguments (where floating-point numbers
are far apart and a step proportional to ``|x|`` straddles many periods of ``sin``), tiny ones
and zero; the functions include ones varying on the scale 1 (``sin``), on the scale ``|x|``
(powers, ``atan``), and noisy ones (added noise, results rounded to float32). For each entry

* honest: ``true_error <= 10 * claimed_error`` (plus two units of the oracle's own rounding);
* useful: ``true_error <= 1e-3 (|J| + |f(x)| / max(|x|, 1)) + 1e-6 + 10 sqrt(noise)``: noise of
  size ``e`` limits a one-sided difference to about ``sqrt(e) |f''|``.

Run ``python -m tests.numeric.test_error_battery`` for the worst ratio true/claimed and the
most pessimistic one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from jacobite.numeric import jacobian

EPS = np.finfo(np.float64).eps
HONEST = 10.0
USEFUL = 1e-3


@dataclass(frozen=True)
class Fn:
    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray], np.ndarray]
    analytic: bool = True
    noise: float = 0.0  # absolute noise level (for the usefulness bound)


def _noisy(seed: int, level: float) -> Callable[[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)

    def f(v: np.ndarray) -> np.ndarray:
        return np.sin(v) + level * rng.standard_normal(np.shape(v))

    return f


def _relative_noise(v: np.ndarray) -> np.ndarray:
    # noise that is a deterministic function of the point: seeded by its bits
    rng = np.random.default_rng(int(np.asarray(v, dtype=np.float64).view(np.uint64).sum()))
    return v ** 3 / 3 * (1 + 1e-12 * rng.standard_normal(np.shape(v)))


def _float32(v: np.ndarray) -> np.ndarray:
    return np.sin(v).astype(np.float32).astype(np.float64)


FUNCTIONS = [
    Fn("sin", np.sin, np.cos),
    Fn("square", lambda v: v * v, lambda v: 2 * v),
    Fn("cube", lambda v: v ** 3 / 3, lambda v: v * v),
    Fn("atan", np.arctan, lambda v: 1 / (1 + v * v)),
    Fn("log1p_square", lambda v: np.log1p(v * v), lambda v: 2 * v / (1 + v * v)),
    Fn("sin_plus_noise", _noisy(0, 1e-10), np.cos, analytic=False, noise=1e-10),
    Fn("cube_relative_noise", _relative_noise, lambda v: v * v, analytic=False),
    Fn("sin_float32", _float32, np.cos, analytic=False, noise=6e-8),
]
POINTS = [0.0, 1e-300, 1e-8, -1e-8, 0.7, -2.3, 30.0, 1e5, -1e5, 1e6, 1e8, -1e8]
METHODS = ["richardson", "central", "forward", "backward", "complex"]


def measure(fn: Fn, x0: float, method: str) -> tuple[float, float, float]:
    """``(true error, claimed error, usefulness bound)`` of one entry."""
    x = np.array([x0])
    with np.errstate(all="ignore"):
        res = jacobian(fn.f, x, method)
        exact = float(fn.df(x)[0])
        fx = abs(float(np.sin(x0))) if fn.noise else abs(float(fn.f(x)[0]))
    got = float(np.ravel(res.jacobian)[0])
    claimed = float(np.ravel(res.error)[0])
    true = abs(got - exact)
    size = abs(exact) + fx / max(abs(x0), 1.0)
    # noise of size e limits a first-order difference to about sqrt(e) |f''|
    useful = USEFUL * size + 1e-6 + 10 * fn.noise ** 0.5
    return true, claimed, useful


CASES = [(fn, x0, m) for fn in FUNCTIONS for x0 in POINTS for m in METHODS
         if m != "complex" or fn.analytic]


@pytest.mark.parametrize(("fn", "x0", "method"), CASES,
                         ids=[f"{fn.name}-{x0:g}-{m}" for fn, x0, m in CASES])
def test_estimate_bounds_true_error_and_answer_is_useful(fn: Fn, x0: float, method: str) -> None:
    true, claimed, useful = measure(fn, x0, method)
    exact = abs(float(fn.df(np.array([x0]))[0]))
    assert true <= HONEST * claimed + 2 * EPS * exact, (true, claimed)
    assert true <= useful, (true, useful)


def main() -> None:  # pragma: no cover - a report, not a test
    ratios = []
    for fn, x0, m in CASES:
        true, claimed, _ = measure(fn, x0, m)
        exact = abs(float(fn.df(np.array([x0]))[0]))
        if true > 4 * EPS * exact and true > 1e-200:  # an error worth estimating
            ratios.append((true / claimed, f"{fn.name} at {x0:g}, {m}"))
    ratios.sort()
    print(f"{len(CASES)} entries, {len(ratios)} with a nonzero error; worst true/claimed "
          f"{ratios[-1][0]:.3g} ({ratios[-1][1]}); median {ratios[len(ratios) // 2][0]:.3g}; "
          f"most pessimistic {ratios[0][0]:.3g} ({ratios[0][1]})")


if __name__ == "__main__":  # pragma: no cover
    main()
