"""The batched complementarity solver behind UPGrad, DualProj, MGDA and CAGrad: KKT
conditions, agreement with quadprog, batching, pivoting fallbacks and errors."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobite.errors import ConvergenceError, InvalidOptionError, MissingExtraError
from jacobite.multiobjective.aggregators import _qp as qp
from jacobite.multiobjective.aggregators._qp import project_dual_cone, solve_lcp
from tests.mo_problems import random_jacobian

DT = torch.float64


def _kkt_violation(M: torch.Tensor, Q: torch.Tensor, X: torch.Tensor) -> float:
    W = X @ M + Q
    scale = float(Q.abs().max())
    return max(float((-X).clamp_min(0).max()), float((-W).clamp_min(0).max()),
               float((X * W).abs().max()) / scale) / scale


def _spd(m: int, seed: int, ridge: float = 1e-3) -> torch.Tensor:
    J = random_jacobian(m, max(2, m // 2), seed)  # rank-deficient on purpose: the ridge saves it
    G = J @ J.T
    return G / G.trace() + ridge * torch.eye(m, dtype=DT)


@given(m=st.integers(1, 45), b=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_lcp_satisfies_kkt(m: int, b: int, seed: int) -> None:
    M = _spd(m, seed)
    Q = torch.randn(b, m, dtype=DT, generator=torch.Generator().manual_seed(seed))
    X = solve_lcp(M, Q)
    assert X.shape == Q.shape
    assert _kkt_violation(M, Q, X) < 1e-10


@given(m=st.integers(2, 25), seed=st.integers(0, 10_000))
def test_batched_equals_one_at_a_time(m: int, seed: int) -> None:
    M = _spd(m, seed)
    Q = torch.randn(6, m, dtype=DT, generator=torch.Generator().manual_seed(seed + 1))
    X = solve_lcp(M, Q)
    for i in range(6):
        torch.testing.assert_close(solve_lcp(M, Q[i:i + 1])[0], X[i], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("m", [1, 2, 5, 20, 70])
def test_torch_path_equals_numpy_path(m: int) -> None:
    M = _spd(m, m)
    Q = torch.randn(7, m, dtype=DT, generator=torch.Generator().manual_seed(m))
    X_np = solve_lcp(M, Q)
    X_torch = solve_lcp(M, Q, backend="torch")
    torch.testing.assert_close(X_torch, X_np, rtol=1e-9, atol=1e-13)
    assert _kkt_violation(M, Q, X_torch) < 1e-10


@pytest.mark.parametrize("m", [1, 2, 7, 20, 40])
def test_projection_matches_quadprog(m: int) -> None:
    pytest.importorskip("qpsolvers")
    pytest.importorskip("quadprog")
    G = _spd(m, m, ridge=1e-4)
    U = torch.diag(torch.full((m,), 1.0 / m, dtype=DT))
    V = project_dual_cone(G, U, "torch")
    V_ref = project_dual_cone(G, U, "quadprog")
    torch.testing.assert_close(V, V_ref, rtol=1e-7, atol=1e-10)
    assert bool((V >= U - 1e-14).all())
    assert bool((V @ G >= -1e-12).all())  # each Jᵀv lies in the dual cone


def test_projection_of_a_non_conflicting_row_is_itself() -> None:
    G = torch.tensor([[1.0, 0.2], [0.2, 1.0]], dtype=DT)  # no conflict at all
    U = torch.tensor([[0.5, 0.0], [0.0, 0.5]], dtype=DT)
    torch.testing.assert_close(project_dual_cone(G, U), U)


def test_known_two_by_two() -> None:
    # g0 = (1, 0), g1 = (-1, 1): projecting g0 onto {d : g1·d >= 0} gives (0.5, 0.5) = g0 + g1/2
    J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=DT)
    v = project_dual_cone(J @ J.T, torch.tensor([[1.0, 0.0]], dtype=DT))[0]
    torch.testing.assert_close(v, torch.tensor([1.0, 0.5], dtype=DT))
    torch.testing.assert_close(J.T @ v, torch.tensor([0.5, 0.5], dtype=DT))


def test_float32_in_float32_out_and_device() -> None:
    M = _spd(5, 0).float()
    Q = -torch.ones(2, 5)
    X = solve_lcp(M, Q)
    assert X.dtype == torch.float32 and X.device == Q.device


def test_empty_batch() -> None:
    assert solve_lcp(_spd(3, 0), torch.zeros(0, 3, dtype=DT)).shape == (0, 3)


@pytest.mark.parametrize("m", [12, 60])  # masked stacked solves / one Cholesky per problem
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_strongly_coupled_problems(m: int, backend: str) -> None:
    idx = torch.arange(m, dtype=DT)
    M = 0.97 ** (idx[:, None] - idx[None, :]).abs() + 1e-6 * torch.eye(m, dtype=DT)
    Q = torch.randn(40, m, dtype=DT, generator=torch.Generator().manual_seed(3))
    assert _kkt_violation(M, Q, solve_lcp(M, Q, backend=backend)) < 1e-9


@pytest.mark.parametrize("m", [12, 40])
@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_murty_single_exchanges_alone_reach_the_solution(m: int, backend: str,
                                                         monkeypatch) -> None:
    # no full-exchange budget at all: every step is Murty's single exchange (finite by theory)
    monkeypatch.setattr(qp, "_BACKUP", -1)
    M = _spd(m, 5)
    Q = torch.randn(8, m, dtype=DT, generator=torch.Generator().manual_seed(5))
    X = solve_lcp(M, Q, backend=backend)
    monkeypatch.undo()
    assert _kkt_violation(M, Q, X) < 1e-10
    torch.testing.assert_close(X, solve_lcp(M, Q), rtol=1e-9, atol=1e-13)


def test_iteration_limit_raises() -> None:
    m = 12
    idx = torch.arange(m, dtype=DT)
    M = 0.95 ** (idx[:, None] - idx[None, :]).abs()
    Q = torch.randn(40, m, dtype=DT, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ConvergenceError, match="max_iter"):
        solve_lcp(M, Q, max_iter=1)


def test_missing_quadprog_extra_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "qpsolvers", None)  # import qpsolvers -> ImportError
    with pytest.raises(MissingExtraError, match=r"jacobite\[quadprog\]"):
        project_dual_cone(torch.eye(2, dtype=DT), torch.eye(2, dtype=DT), "quadprog")


def test_unknown_solver() -> None:
    with pytest.raises(InvalidOptionError, match="auto"):
        project_dual_cone(torch.eye(2, dtype=DT), torch.eye(2, dtype=DT), "cvx")
