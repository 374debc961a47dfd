"""Hypothesis: at points of any magnitude, every method's error estimate bounds its error."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.numeric import jacobian

EPS = np.finfo(np.float64).eps


@st.composite
def points(draw) -> float:
    """Magnitudes from 1e-300 to 1e8 (log-uniform), either sign, and zero."""
    if draw(st.integers(0, 9)) == 0:
        return 0.0
    sign = draw(st.sampled_from([-1.0, 1.0]))
    return sign * 10.0 ** draw(st.floats(-300, 8))


@st.composite
def smooth_functions(draw):
    """``a sin(b x + c) + d x**k / k`` with its derivative: an oscillation on its own scale
    plus a power on the scale of ``x``."""
    a = draw(st.floats(0.1, 10.0))
    b = draw(st.floats(0.1, 3.0))
    c = draw(st.floats(-3.0, 3.0))
    d = draw(st.floats(-2.0, 2.0))
    k = draw(st.integers(1, 3))

    def f(v):
        return a * np.sin(b * v + c) + d * v ** k / k

    def df(v):
        return a * b * np.cos(b * v + c) + d * v ** (k - 1)

    return f, df, (a, b, c, d, k)


@settings(max_examples=40, deadline=None)
@given(smooth_functions(), points(), st.sampled_from(["richardson", "central", "forward",
                                                      "backward", "complex"]))
def test_estimate_bounds_error_at_any_magnitude(fdf, x0: float, method: str) -> None:
    f, df, params = fdf
    x = np.array([x0])
    res = jacobian(f, x, method)
    exact = float(df(x)[0])
    got = float(np.ravel(res.jacobian)[0])
    claimed = float(np.ravel(res.error)[0])
    assert abs(got - exact) <= 10 * claimed + 4 * EPS * abs(exact), (params, got, exact, claimed)
