"""Richardson internals: the table, adaptivity, domain edges, memory chunking."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import jacobite
from jacobite.numeric import jacobian
from jacobite.numeric._noise import PROBE_POINTS
from jacobite.numeric._steps import default_steps
from jacobite.numeric.richardson import extrapolate, select

from ._zoo import counting


def test_table_is_exact_on_even_polynomials_in_h():
    h = 0.5 ** np.arange(6)
    d = 2.0 + 3 * h ** 2 - h ** 4 + 0.5 * h ** 6
    t, e = extrapolate(d, np.zeros(6))
    assert t.shape == (6, 6)
    assert abs(t[3, -1] - 2.0) < 1e-14  # level 3 removes h^2, h^4, h^6
    assert np.isnan(t[2, 0]) and np.isinf(e[2, 0])  # a level cannot fill its first rows
    val, est, _row = select(t, e)
    assert abs(val - 2.0) < 1e-14 and est < 1e-14


def test_table_carries_trailing_shapes_and_skips_nan():
    h = 0.5 ** np.arange(5)
    d = np.stack([np.cos(1.0) + h ** 2, np.full(5, 7.0)], axis=1)
    d[0, 0] = np.nan
    t, e = extrapolate(d, np.full_like(d, 1e-16))
    val, _est, row = select(t, e)
    assert val.shape == (2,)
    assert abs(val[0] - np.cos(1.0)) < 1e-14 and val[1] == 7.0
    assert row[0] >= 1  # the NaN row is never selected


def test_function_undefined_at_large_steps():
    # log at 0.3: the first trial steps (+-0.5) leave the domain; they are skipped
    g, calls = counting(np.log)
    with np.errstate(all="ignore"):
        res = jacobian(g, np.array([0.3, 5.0]))
    np.testing.assert_allclose(np.diag(res.jacobian), [1 / 0.3, 0.2], rtol=1e-12)
    assert res.nfev == calls[0]


def test_function_raising_outside_its_domain():
    import math

    def f(v):
        return np.array([math.log(v[0]), math.sqrt(v[1])])

    res = jacobian(f, np.array([0.2, 0.1]))
    np.testing.assert_allclose(res.jacobian, np.diag([5.0, 0.5 / math.sqrt(0.1)]), rtol=1e-11)


def test_aliasing_frequency_is_not_trusted():
    # sin(50 x): the default steps 0.5, 0.25, 0.125 are almost whole periods, so the first
    # differences agree by accident; the walk must go on until a smaller step confirms
    x = np.array([0.3, -0.7])
    res = jacobian(lambda v: np.sin(50 * v), x)
    np.testing.assert_allclose(np.diag(res.jacobian), 50 * np.cos(50 * x), rtol=1e-12)


def test_polynomials_try_larger_steps():
    # rounding-limited at the first steps: the walk goes up to larger steps, where rounding
    # is smaller, and stops early
    x = np.array([3.0])
    res = jacobian(lambda v: v ** 3 - 2 * v, x)
    assert abs(float(res.jacobian[0, 0]) - 25.0) <= 4e-15 * 25
    start = float(default_steps("richardson", x, 2.0 ** -52)[0])
    assert float(res.step.max()) >= start  # finest step of the chosen entry
    assert res.nfev <= 1 + PROBE_POINTS + 2 * 6 + 2  # probe, six steps, the off-beat check


def test_linear_function_is_cheap_and_exact():
    A = np.arange(12.0).reshape(3, 4)
    g, calls = counting(lambda v: A @ v)
    res = jacobian(g, np.ones(4))
    np.testing.assert_allclose(res.jacobian, A, atol=1e-14)
    assert calls[0] <= 1 + PROBE_POINTS + 2 * 6 * 4 + 2 * 4


def test_memory_budget_only_changes_chunking():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 6))

    def f(v):
        return np.tanh(A @ v)

    x = rng.standard_normal(6)
    ref = jacobian(f, x)
    with jacobite.config.memory_budget(4096):
        small = jacobian(f, x)
    np.testing.assert_array_equal(ref.jacobian, small.jacobian)
    assert ref.nfev == small.nfev


def test_user_step_bounds_the_steps():
    res = jacobian(np.exp, np.array([1.0]), step=1e-2)
    assert float(res.step.max()) <= 1e-2
    assert abs(float(res.jacobian[0, 0]) - np.e) < 1e-12


@pytest.mark.parametrize("x0", [0.2, 1.0, 1e3, 1e6])
def test_scale_invariance_of_default_steps(x0):
    with np.errstate(invalid="ignore"):
        res = jacobian(lambda v: np.sqrt(v) * v, np.array([x0]))
    exact = 1.5 * np.sqrt(x0)
    assert abs(float(res.jacobian[0, 0]) - exact) <= 1e-12 * exact


def test_close_to_a_domain_edge_the_estimate_stays_honest():
    # sqrt(x) x at 1e-3: every default step above 1e-3 leaves the domain; few steps remain
    with np.errstate(invalid="ignore"):
        res = jacobian(lambda v: np.sqrt(v) * v, np.array([1e-3]))
    exact = 1.5 * np.sqrt(1e-3)
    err = abs(float(res.jacobian[0, 0]) - exact)
    assert err <= 10 * float(res.error[0, 0])
    assert err <= 1e-6 * exact


@pytest.mark.parametrize("x0", [1e5, -3e7])
def test_a_small_oscillation_on_a_large_power_is_not_hidden(x0):
    # 0.1 sin(2v) + v**2 / 4: steps in ratio 2 from about 2 pi are all multiples of half its
    # period, and steps far above 1 average it out; the off-beat check at a step below 1 sees
    # it (or, where the power's rounding drowns it there, claims that much error)
    def f(v):
        return 0.1 * np.sin(2 * v) + v ** 2 / 4

    x = np.array([x0])
    res = jacobian(f, x)
    exact = 0.2 * np.cos(2 * x0) + x0 / 2
    true = abs(float(res.jacobian[0, 0]) - exact)
    assert true <= 10 * float(res.error[0, 0])


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_working_set_stays_a_small_multiple_of_the_result():
    # a 300 x 300 Jacobian is 0.7 MB; its tables once took the whole 1 GiB budget
    n = 300
    A = np.random.default_rng(3).standard_normal((n, n))
    x = np.full(n, 0.1)
    res, peak = _peak(lambda: jacobian(lambda v: np.sin(A @ v), x))
    exact = np.cos(A @ x)[:, None] * A
    assert peak < 32 * 2**20, peak
    np.testing.assert_allclose(res.jacobian, exact, rtol=0, atol=1e-12)
    # a smaller budget gives smaller blocks, the same numbers and calls
    small, small_peak = _peak(lambda: jacobian(lambda v: np.sin(A @ v), x,
                                               memory_budget="8 MiB"))
    assert small_peak < 16 * 2**20, small_peak
    np.testing.assert_array_equal(small.jacobian, res.jacobian)
    np.testing.assert_array_equal(small.error, res.error)
    assert small.nfev == res.nfev


def test_many_outputs_of_one_input_are_tabled_in_blocks_of_outputs():
    # one column of 200000 outputs: its table alone would be about 1 GiB
    m = 200_000
    c = np.linspace(0.5, 2.0, m)
    res, peak = _peak(lambda: jacobian(lambda v: np.sin(c * v[0]), np.array([0.3])))
    assert peak < 160 * 2**20, peak
    np.testing.assert_allclose(res.jacobian[:, 0], c * np.cos(0.3 * c), rtol=1e-11, atol=1e-12)
