"""The stationary-point probe on costs whose nature is known in closed form."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.solvers._certify import blind_directions, probe

floats = st.floats(0.1, 10.0)


def _basis(seed: int, n: int) -> np.ndarray:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return Q


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 31), st.integers(1, 4), st.lists(floats, min_size=4, max_size=4),
       st.floats(0.5, 5.0))
def test_strict_minimum_saddle_and_kink(seed, n, curv, c0):
    Q = _basis(seed, n)
    lam = np.array(curv[:n])
    x = np.random.default_rng(seed + 1).uniform(-3, 3, n)

    def quad(lams):
        return lambda y: c0 + 0.5 * float(((Q.T @ (y - x)) ** 2) @ lams)

    # positive curvature everywhere: a strict minimum whatever the directions
    assert probe(quad(lam), x, c0, np.zeros(n), Q.T, jac_zero=False).kind == "minimum"
    # one negative eigenvalue, probed along its eigenvector: a saddle (a maximum when n = 1)
    neg = lam.copy()
    neg[0] = -neg[0]
    v = probe(quad(neg), x, c0, np.zeros(n), Q.T[:1], jac_zero=False)
    assert v.kind == "saddle" and v.cost < c0 and v.x is not None
    # a cost that falls linearly on both sides of a hyperplane through x: a kink
    def kink(y):
        return c0 - curv[0] * abs(float(Q[:, 0] @ (y - x))) + quad(lam)(y) - c0

    v = probe(kink, x, c0, np.zeros(n), Q.T[:1], jac_zero=False)
    assert v.kind == "kink" and v.cost < c0


def test_a_flat_cost_is_a_plateau_only_where_the_jacobian_is_zero():
    flat = lambda y: 2.0  # noqa: E731
    x = np.zeros(2)
    assert probe(flat, x, 2.0, np.zeros(2), np.eye(2), jac_zero=True).kind == "plateau"
    assert probe(flat, x, 2.0, np.zeros(2), np.eye(2), jac_zero=False).kind == "minimum"


def test_the_first_order_prediction_is_not_a_finding():
    # a loose stop on a slope: the fall along the gradient is what the gradient predicts
    g = np.array([1e-3])
    cost = lambda y: 1.0 + float(g @ y) + 0.5 * float(y @ y)  # noqa: E731
    assert probe(cost, np.zeros(1), 1.0, g, np.eye(1), jac_zero=False).kind == "minimum"


def test_blind_directions_of_a_full_rank_jacobian():
    J = np.array([[2.0, 0.0], [0.0, 1e-3]])
    assert blind_directions(J, first=False).shape == (0, 2)
    np.testing.assert_allclose(np.abs(blind_directions(J, first=True)), [[0.0, 1.0]])
    wide = blind_directions(np.array([[1.0, 1.0, 0.0]]), first=False)  # m < n: null space
    np.testing.assert_allclose(wide @ np.array([1.0, 1.0, 0.0]), 0.0, atol=1e-12)
    assert wide.shape == (2, 3)


def test_zero_column_directions_need_no_identity_matrix() -> None:
    # a large sparse problem (n = 2·10⁵) asks for the directions of its zero columns: rows of
    # length n, never an n × n identity (that was 320 GB)
    import tracemalloc

    import numpy as np

    from jacobite.solvers._certify import zero_columns

    n = 200_000
    tracemalloc.start()
    try:
        rows = zero_columns(np.array([3, 150_000]), n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    assert len(rows) == 3
    np.testing.assert_allclose(rows[0][[3, 150_000]], [2 ** -0.5, 2 ** -0.5])
    assert rows[1][3] == 1.0 and rows[2][150_000] == 1.0
    assert all(float(np.abs(r).sum() - np.abs(r[[3, 150_000]]).sum()) == 0.0 for r in rows)
