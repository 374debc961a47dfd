"""The noise probe: measured noise levels against the noise that was put in."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.numeric import jacobian
from jacobite.numeric._noise import PROBE_POINTS, noise_level
from jacobite.numeric._problem import Problem

EPS = np.finfo(np.float64).eps


def _problem(f, x) -> Problem:
    return Problem(f, np.asarray(x, dtype=np.float64), (), None, method="central")


@settings(max_examples=20, deadline=None)
@given(st.floats(-12, -5), st.integers(0, 2**31), st.floats(-3.0, 3.0))
def test_additive_noise_is_measured(log_level: float, seed: int, x0: float) -> None:
    level = 10.0 ** log_level
    rng = np.random.default_rng(seed)
    noise = noise_level(_problem(lambda v: np.exp(v) + level * rng.standard_normal(v.shape),
                                 [x0]))
    assert 0.1 * level <= float(noise.sigma[0]) <= 5 * level


def test_rounding_to_float32_is_measured_as_relative_noise() -> None:
    # rounding to float32 is a deterministic staircase; the irregular probe nodes still see it
    for x0 in (0.3, -1e8, 1e5):
        noise = noise_level(_problem(lambda v: np.sin(v).astype(np.float32).astype(float),
                                     [x0]))
        assert 1e-9 <= float(noise.rho[0]) <= 1.2e-7, x0


def test_a_smooth_function_is_not_noisy() -> None:
    for x0 in (0.0, 0.7, 1e5, 1e8):
        p = _problem(lambda v: np.stack([np.sin(v[0]), v[0] ** 3]), [x0])
        noise = noise_level(p)
        assert p.nfev == 1 + PROBE_POINTS
        assert bool((noise.rho <= 16 * EPS).all()), (x0, noise.rho)


def test_probe_turns_back_at_a_domain_edge() -> None:
    # defined (and smooth) only for v >= 0: whichever way the probe starts, it ends up there
    def f(v):
        return np.where(v >= 0, v ** 2 + v, np.nan)

    for x0 in (0.0, -0.0):
        noise = noise_level(_problem(f, [x0]))
        assert float(noise.sigma[0]) < 1e-20


def test_noisy_function_gets_an_honest_useful_derivative() -> None:
    rng = np.random.default_rng(3)
    f = lambda v: np.sin(v) + 1e-8 * rng.standard_normal(v.shape)  # noqa: E731
    x = np.array([0.4, 1e6])
    for method in ("richardson", "central", "forward", "backward"):
        res = jacobian(f, x, method)
        true = np.abs(np.diag(res.jacobian) - np.cos(x))
        assert bool((true <= 10 * np.diag(res.error)).all()), method
        assert float(true.max()) < 1e-3, method


def test_float32_tensor_output_sets_the_noise() -> None:
    x = torch.tensor([1e4], dtype=torch.float64)
    res = jacobian(lambda v: torch.sin(v).float(), x, "central")
    true = abs(float(res.jacobian[0, 0]) - np.cos(1e4))
    assert true <= 10 * float(res.error[0, 0])
    assert true < 1e-3
