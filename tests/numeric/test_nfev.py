"""Exact call counts, checked with a counting wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.numeric import jacobian
from jacobite.numeric.richardson import MAX_ROWS

from ._zoo import CASES, counting


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_nfev_is_exact(case):
    n = case.x.size
    # the complex step adds two real evaluations: the analyticity check against a difference
    expected = {"forward": n + 1, "central": 2 * n + 1, "complex": n + 3}
    for method, count in expected.items():
        g, calls = counting(case.f_np)
        res = jacobian(g, case.x, method)
        assert res.nfev == calls[0] == count, method
    g, calls = counting(case.f_np)
    res = jacobian(g, case.x)
    assert res.nfev == calls[0]
    assert (res.nfev - 1) % 2 == 0  # base call plus pairs x +- h
    assert 1 + 2 * 4 * n <= res.nfev <= 1 + 2 * MAX_ROWS * n


def test_torch_nfev_is_exact():
    g, calls = counting(torch.sin)
    res = jacobian(g, torch.ones(3, dtype=torch.float64), "central")
    assert res.nfev == calls[0] == 7


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
    # a function that never settles (noise) walks the whole sequence, still < 30 n + 1
    rng = np.random.default_rng(0)
    g, calls = counting(lambda v: np.sin(v) + 1e-9 * rng.standard_normal(v.shape))
    res = jacobian(g, np.ones(3))
    assert res.nfev == calls[0] <= 1 + 2 * MAX_ROWS * 3 < 30 * 3 + 1
    assert res.max_error > 1e-10  # the noise shows in the estimate
