"""Exact call counts, checked with a counting wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.numeric import jacobian
from jacobite.numeric._noise import PROBE_POINTS
from jacobite.numeric.richardson import MAX_ROWS

from ._zoo import CASES, counting


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_nfev_is_exact(case):
    n = case.x.size
    probe = 1 + PROBE_POINTS  # f(x) and the noise probe
    # (fewest, most) calls: one pass of differences, and a second one where the step is refined;
    # the complex step adds two real evaluations (the analyticity check against a difference)
    # and one complex one (the linearity check)
    expected = {"forward": (probe + 2 * n, probe + 4 * n),
                "backward": (probe + 2 * n, probe + 4 * n),
                "central": (probe + 4 * n, probe + 8 * n), "complex": (n + 4, n + 4)}
    for method, (lo, hi) in expected.items():
        g, calls = counting(case.f_np)
        res = jacobian(g, case.x, method)
        assert res.nfev == calls[0], method
        assert lo <= res.nfev <= hi, method
        assert (res.nfev - lo) % (4 if method == "central" else 2) == 0  # whole columns
    g, calls = counting(case.f_np)
    res = jacobian(g, case.x)
    assert res.nfev == calls[0]
    assert (res.nfev - probe) % 2 == 0  # base call, probe, then pairs x +- h
    assert probe + 2 * 4 * n <= res.nfev <= probe + 2 * (MAX_ROWS + 1) * n


def test_torch_nfev_is_exact():
    g, calls = counting(torch.sin)
    res = jacobian(g, torch.ones(3, dtype=torch.float64), "central")
    assert res.nfev == calls[0] == 1 + PROBE_POINTS + 4 * 3


def test_a_given_step_is_not_refined():
    g, calls = counting(np.sin)
    res = jacobian(g, np.ones(3), "forward", step=1e-3)
    assert res.nfev == calls[0] == 1 + PROBE_POINTS + 2 * 3
    np.testing.assert_allclose(np.diag(res.step), 1e-3, rtol=1e-9)


def test_richardson_uses_fewer_calls_than_numdifftools():
    nd = pytest.importorskip("numdifftools")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 8))
    f = lambda v: np.tanh(A @ v) + np.sin(v[:6])  # noqa: E731
    x = rng.uniform(-1, 1, 8)
    g, calls = counting(f)
    res = jacobian(g, x)
    ours = calls[0]
    g2, calls2 = counting(f)
    ref = np.asarray(nd.Jacobian(g2)(x))
    assert res.nfev == ours < calls2[0]
    # same function, analytic Jacobian: at least as accurate
    J = (1 - np.tanh(A @ x) ** 2)[:, None] * A + np.eye(6, 8) * np.cos(x[:6])[:, None]
    assert np.abs(res.jacobian - J).max() <= np.abs(ref - J).max()


def test_richardson_worst_case_stays_below_numdifftools_budget():
    # noise keeps the table from settling; the walk stops at the measured noise floor, within
    # numdifftools' 30 n + 1 calls
    rng = np.random.default_rng(0)
    g, calls = counting(lambda v: np.sin(v) + 1e-9 * rng.standard_normal(v.shape))
    res = jacobian(g, np.ones(3))
    assert res.nfev == calls[0] <= 1 + PROBE_POINTS + 2 * (MAX_ROWS + 1) * 3  # + the check
    assert res.nfev <= 30 * 3 + 1
    assert res.max_error > 1e-10  # the noise shows in the estimate
