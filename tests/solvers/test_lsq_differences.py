"""The difference Jacobians of ``least_squares(jac="2-point" | "3-point" | "cs")`` against the
analytic Jacobian: plain, with a sparsity pattern (columns perturbed together), and at points
on the bounds (steps taken the other way or one-sided)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.solvers.lsq._fd import Differences

N = 7
TOL = {"2-point": 1e-6, "3-point": 1e-8, "cs": 1e-12}


def _fun(x: np.ndarray) -> np.ndarray:
    """``f_i = x_i² + sin(x_{i+1})`` (the last without the sine): a bidiagonal Jacobian."""
    out = x ** 2
    out[:-1] = out[:-1] + np.sin(x[1:])
    return out


def _jac(x: np.ndarray) -> np.ndarray:
    return np.diag(2 * x) + np.diag(np.cos(x[1:]), 1)


PATTERN = sp.csr_matrix(np.eye(N) + np.eye(N, k=1))


@settings(max_examples=30, deadline=None)
@given(x=st.lists(st.floats(-3, 3), min_size=N, max_size=N),
       scheme=st.sampled_from(["2-point", "3-point", "cs"]),
       sparse=st.booleans(), on_bound=st.lists(st.sampled_from([0, -1, 1]), min_size=N,
                                               max_size=N))
def test_differences_match_the_analytic_jacobian(x, scheme, sparse, on_bound):
    x = np.array(x)
    side = np.array(on_bound)
    # some coordinates sit on their upper (1) or lower (-1) bound, with room on the other side
    lb = np.where(side == -1, x, -np.inf)
    ub = np.where(side == 1, x, np.inf)
    fd = Differences(scheme, None, _fun, N, PATTERN if sparse else None, lb, ub)
    J = fd.jacobian(x, _fun(x))
    assert sp.issparse(J) == sparse
    dense = sp.csr_matrix(J).toarray()
    np.testing.assert_allclose(dense, _jac(x), rtol=0, atol=TOL[scheme] * 10)


@pytest.mark.parametrize("scheme", ["2-point", "3-point"])
def test_the_perturbed_points_stay_in_the_bounds(scheme):
    x = np.linspace(-1.0, 1.0, N)
    lb, ub = x - np.where(np.arange(N) % 2 == 0, 0.0, np.inf), x + np.where(
        np.arange(N) % 2 == 1, 0.0, np.inf)
    seen: list[np.ndarray] = []

    def f(v: np.ndarray) -> np.ndarray:
        seen.append(v.copy())
        return _fun(v)

    J = Differences(scheme, None, f, N, None, lb, ub).jacobian(x, _fun(x))
    assert all(np.all((v >= lb) & (v <= ub)) for v in seen)
    np.testing.assert_allclose(J, _jac(x), rtol=0, atol=TOL[scheme] * 10)
