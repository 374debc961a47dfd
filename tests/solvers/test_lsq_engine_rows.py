"""The solver loop goes on with the running rows of a batch alone once most have stopped: every
row still ends exactly as its own solve (B = 1) ends."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.solvers.lsq.engine import batch
from jacobite.solvers.lsq.engine.line_search import Armijo
from jacobite.solvers.lsq.engine.loop import COMPACT_MIN, solve
from jacobite.solvers.lsq.engine.state import State
from jacobite.solvers.lsq.engine.status import RUNNING, Tolerances
from jacobite.solvers.lsq.engine.steps.gauss_newton import GaussNewton
from jacobite.solvers.lsq.engine.steps.lm import LevenbergMarquardt, more_step
from jacobite.solvers.lsq.engine.trust_region import TrustRegion
from tests.solvers.test_lsq_engine import EPS, F64, T, _data


class Exponential:
    """``f_b(x) = x0 e^{-x1 t} + x2 − y_b``; records the number of rows of every evaluation."""

    def __init__(self, Y: torch.Tensor, log: list[int]) -> None:
        self.Y, self.log = Y, log

    def f(self, x: torch.Tensor) -> torch.Tensor:
        self.log.append(x.shape[0])
        return x[:, :1] * torch.exp(-x[:, 1:2] * T) + x[:, 2:3] - self.Y

    def J(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(-x[:, 1:2] * T)
        return torch.stack([e, -x[:, :1] * T * e, torch.ones_like(e)], -1)


class Splittable(Exponential):
    """The same problems, able to hand out the problems at an index (per-problem data split)."""

    def rows(self, idx: torch.Tensor) -> Splittable:
        return Splittable(self.Y.index_select(0, idx), self.log)


def _solve(P: Exponential, B: int, max_nfev: int | torch.Tensor = 400,
           method: str = "lm") -> State:
    x0 = torch.tensor([[1.0, 1.0, 0.0]], dtype=F64).repeat(B, 1)
    tol = Tolerances.make(1e-15, 1e-15, 1e-15, B, eps=EPS, max_nfev=max_nfev)
    rule, glob = ((LevenbergMarquardt(), TrustRegion()) if method == "lm"
                  else (GaussNewton(), Armijo()))
    return solve(P, State.start(x0, P.f(x0), P.J(x0)), rule, glob, tol)


def _same(s: State, b: int, one: State) -> None:
    for name in ("x", "f", "J", "cost", "g", "D", "status", "nit", "nfev", "njev"):
        assert torch.equal(getattr(s, name)[b], getattr(one, name)[0]), name


@pytest.mark.parametrize("method", ["lm", "gauss-newton"])
@pytest.mark.parametrize("kind", [Exponential, Splittable])
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_rows_split_off_a_batch_end_as_their_own_solves(kind, method, seed):
    B = 2 * COMPACT_MIN
    Y, log = _data(B, seed), []
    s = _solve(kind(Y, log), B, method=method)
    assert not bool((s.status == RUNNING).any())
    if kind is Splittable:  # the late passes evaluate the running problems only
        assert min(log) < B
    else:  # the whole batch is evaluated, its running rows kept
        assert set(log) == {B}
    for b in range(0, B, 3):
        _same(s, b, _solve(Exponential(Y[b:b + 1], []), 1, method=method))


def test_per_problem_budgets_hold_in_the_split_rows():
    B = 2 * COMPACT_MIN
    Y = _data(B, 3)
    budget = torch.arange(B) % 7 + 3  # 3 .. 9 evaluations
    s = _solve(Splittable(Y, []), B, max_nfev=budget)
    for b in range(B):
        one = _solve(Exponential(Y[b:b + 1], []), 1, max_nfev=int(budget[b]))
        _same(s, b, one)
        assert int(s.nfev[b]) <= int(budget[b]) + 1  # at most the acceleration's evaluation


def test_chunks_of_the_front_end_split_by_rows_like_the_whole_batch(monkeypatch):
    # 1000 problems are solved in chunks whose running rows go on alone (data through args);
    # a closure over the same data keeps the batch whole: the same solutions, bit for bit
    monkeypatch.setattr(batch, "CPU_CHUNK", 2 ** 17)  # chunks of 500 problems
    B = 1000
    Y = _data(B, 1)
    x0 = torch.tensor([[1.0, 1.0, 0.0]], dtype=F64).repeat(B, 1)
    split = jacobite.least_squares(
        lambda p, y: p[:, :1] * torch.exp(-p[:, 1:2] * T) + p[:, 2:3] - y, x0, args=(Y,),
        batch=True)
    whole = jacobite.least_squares(
        lambda p: p[:, :1] * torch.exp(-p[:, 1:2] * T) + p[:, 2:3] - Y, x0, batch=True)
    assert bool(split.success.all())
    for name in ("x", "cost", "status", "nfev", "njev", "nit"):
        assert torch.equal(getattr(split, name), getattr(whole, name)), name


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), B=st.integers(2, 6))
@example(seed=-1, B=2)  # two problems whose iterations on λ stop at different passes
def test_more_steps_of_a_batch_are_those_of_each_problem(seed, B):
    # Moré's iteration on λ stops per problem: a problem that has converged keeps its λ while
    # the others iterate, so that its step is the one it gets alone (and ‖q‖ ≈ Δ where damped)
    Y = _data(B, seed) if seed >= 0 else _data(32, 3)[1:3]
    x0 = torch.tensor([[1.0, 1.0, 0.0]], dtype=F64).repeat(B, 1)
    P = Exponential(Y, [])
    J = P.J(x0)
    D = torch.linalg.vector_norm(J, dim=1)
    U, s, Vh = torch.linalg.svd(J / D[:, None, :], full_matrices=False)
    uf = (U.mT @ P.f(x0)[..., None])[..., 0]
    delta = torch.linalg.vector_norm(D * x0, dim=-1)  # the first trust radius
    q, lam = more_step(uf, s, Vh.mT, delta, torch.zeros(B, dtype=F64), m=T.numel())
    for b in range(B):
        qb, lb = more_step(uf[b:b + 1], s[b:b + 1], Vh.mT[b:b + 1], delta[b:b + 1],
                           torch.zeros(1, dtype=F64), m=T.numel())
        assert torch.equal(q[b], qb[0]) and torch.equal(lam[b], lb[0])
        if float(lam[b]) > 0:  # the damped step lies on the trust region's boundary
            assert float(torch.linalg.vector_norm(q[b])) == pytest.approx(float(delta[b]),
                                                                          rel=0.02)
