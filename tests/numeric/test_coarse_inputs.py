"""Inputs whose dtype cannot hold a small step (float32 at large |x|).

Where x's spacing is comparable to the scale on which f varies, no finite difference recovers the
derivative; Richardson must then say so through its claimed error instead of confirming an
entry against a check step that rounding landed on one of its own steps.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import jacobite


@pytest.mark.parametrize("x0", [1e7, -1e7, 3e7, 1e8, -1e8])
def test_richardson_claim_covers_the_error_at_coarse_float32_inputs(x0: float) -> None:
    x = torch.tensor([x0], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jacobite.errors.JacobiteWarning)
        r = jacobite.numeric.jacobian(torch.sin, x, method="richardson")
    got = float(torch.as_tensor(r.jacobian).reshape(-1)[0])
    true = math.cos(float(x))  # x is exactly representable; the oracle is float64 cos
    assert abs(got - true) <= 10 * r.max_error


def test_float64_large_inputs_stay_sharp() -> None:
    for x0 in (1e7, 1e8):
        r = jacobite.numeric.jacobian(torch.sin, torch.tensor([x0], dtype=torch.float64),
                                      method="richardson")
        got = float(torch.as_tensor(r.jacobian).reshape(-1)[0])
        assert abs(got - math.cos(x0)) < 1e-9 and r.max_error < 1e-9
