"""The least-squares engine (Levenberg–Marquardt and Gauss–Newton on B problems at once) against
a loop of single-problem solves and SciPy's ``least_squares`` per problem."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.errors import JacobiteWarning
from jacobite.solvers.lsq.engine.line_search import Armijo
from jacobite.solvers.lsq.engine.loop import solve
from jacobite.solvers.lsq.engine.robust import robust
from jacobite.solvers.lsq.engine.state import State
from jacobite.solvers.lsq.engine.status import (
    LINE_SEARCH,
    MAX_NFEV,
    MESSAGES,
    RUNNING,
    Tolerances,
    messages,
)
from jacobite.solvers.lsq.engine.steps.gauss_newton import GaussNewton
from jacobite.solvers.lsq.engine.steps.lm import LevenbergMarquardt
from jacobite.solvers.lsq.engine.trust_region import TrustRegion

F64 = torch.float64
T = torch.linspace(0, 4, 50, dtype=F64)
EPS = float(torch.finfo(F64).eps)


def _data(B: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = 1 + 2 * torch.rand(B, 1, generator=g, dtype=F64)
    k = 0.3 + 1.5 * torch.rand(B, 1, generator=g, dtype=F64)
    c = torch.rand(B, 1, generator=g, dtype=F64) - 0.5
    noise = 0.02 * torch.randn(B, T.numel(), generator=g, dtype=F64)
    return a * torch.exp(-k * T) + c + noise


class Exponential:
    """``f_b(x) = x0 e^{-x1 t} + x2 − y_b`` with its analytic Jacobian, problem by problem."""

    def __init__(self, Y: torch.Tensor) -> None:
        self.Y = Y

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * torch.exp(-x[:, 1:2] * T) + x[:, 2:3] - self.Y

    def J(self, x: torch.Tensor) -> torch.Tensor:
        e = torch.exp(-x[:, 1:2] * T)
        return torch.stack([e, -x[:, :1] * T * e, torch.ones_like(e)], -1)

    def one(self, b: int) -> tuple:  # problem b as least_squares takes it
        return (lambda p: p[0] * torch.exp(-p[1] * T) + p[2] - self.Y[b],
                lambda p: self.J(p[None])[0])


def _engine(P, x0, method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=400, loss=None,
            geodesic=True):
    B = x0.shape[0]
    state = State.start(x0, P.f(x0), P.J(x0), loss)
    rule, glob = ((LevenbergMarquardt(geodesic=geodesic), TrustRegion()) if method == "lm"
                  else (GaussNewton(), Armijo()))
    tol = Tolerances.make(ftol, xtol, gtol, B, eps=EPS, max_nfev=max_nfev)
    return solve(P, state, rule, glob, tol)


def _np(v) -> np.ndarray:
    return v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _start(B: int) -> torch.Tensor:
    return torch.tensor([[1.0, 1.0, 0.0]], dtype=F64).repeat(B, 1)


@pytest.mark.parametrize("method", ["lm", "gauss-newton"])
def test_a_batch_agrees_with_a_loop_of_single_solves(method):
    B = 6
    P = Exponential(_data(B, 0))
    s = _engine(P, _start(B), method)
    assert not bool((s.status == RUNNING).any())
    for b in range(B):
        fun, jac = P.one(b)
        r = jacobite.least_squares(fun, [1.0, 1.0, 0.0], jac=jac, method=method)
        np.testing.assert_allclose(s.x[b].numpy(), _np(r.x), rtol=1e-12)
        assert int(s.status[b]) == r.status and int(s.nit[b]) == r.nit
        assert int(s.nfev[b]) == r.nfev and int(s.njev[b]) == r.njev
        assert float(s.cost[b]) == pytest.approx(r.cost, rel=1e-14)


@pytest.mark.parametrize("geodesic", [False, True])
def test_a_batch_agrees_with_scipy_lm_per_problem(geodesic):
    B = 5
    Y = _data(B, 1)
    s = _engine(Exponential(Y), _start(B), geodesic=geodesic, ftol=1e-12, xtol=1e-12,
                gtol=1e-12)
    tn = T.numpy()
    for b in range(B):
        y = Y[b].numpy()
        sc = scipy.optimize.least_squares(lambda p, y=y: p[0] * np.exp(-p[1] * tn) + p[2] - y,
                                          [1.0, 1.0, 0.0], method="lm", ftol=1e-12,
                                          xtol=1e-12, gtol=1e-12)
        assert sc.status > 0 and int(s.status[b]) > 0
        np.testing.assert_allclose(s.x[b].numpy(), sc.x, rtol=1e-7)
        assert float(s.cost[b]) == pytest.approx(sc.cost, rel=1e-10)


def test_an_exhausted_budget_is_status_0_like_scipy():
    B = 3
    Y = _data(B, 2)
    s = _engine(Exponential(Y), _start(B), max_nfev=4, geodesic=False)
    tn = T.numpy()
    for b in range(B):
        y = Y[b].numpy()
        sc = scipy.optimize.least_squares(lambda p, y=y: p[0] * np.exp(-p[1] * tn) + p[2] - y,
                                          [1.0, 1.0, 0.0], method="lm", max_nfev=4)
        assert sc.status == 0 and int(s.status[b]) == MAX_NFEV
        assert not messages(s.status)[b].startswith("gtol")
    assert messages(s.status) == [MESSAGES[MAX_NFEV]] * B


def test_per_problem_budgets_and_stopped_problems_do_not_move():
    # problem 0 starts at its exact solution (gtol at once), problem 1 has a budget of 3
    B = 3
    x_star = torch.tensor([2.0, 0.7, 0.1], dtype=F64)
    Y = _data(B, 3)
    Y[0] = x_star[0] * torch.exp(-x_star[1] * T) + x_star[2]
    x0 = _start(B)
    x0[0] = x_star
    P = Exponential(Y)
    state = State.start(x0, P.f(x0), P.J(x0))
    tol = Tolerances.make(1e-15, 1e-15, 1e-15, B, eps=EPS,
                          max_nfev=torch.tensor([400, 3, 400]))
    s = solve(P, state, LevenbergMarquardt(), TrustRegion(), tol)
    assert torch.equal(s.x[0], x_star) and int(s.nfev[0]) == 1 and int(s.nit[0]) == 0
    assert int(s.status[0]) == 1 and int(s.status[1]) == MAX_NFEV and int(s.status[2]) > 0
    assert int(s.nfev[1]) <= 4 < int(s.nfev[2])


def test_a_rank_deficient_batch_agrees_with_single_solves():
    # x0 and x2 enter only through their sum: J has rank 2, the minimum-norm steps keep
    # x0 - x2 where it started
    Y = _data(3, 4)

    class Summed(Exponential):
        def f(self, x):
            return (x[:, :1] + x[:, 2:3]) * torch.exp(-x[:, 1:2] * T) - self.Y

        def J(self, x):
            e = torch.exp(-x[:, 1:2] * T)
            return torch.stack([e, -(x[:, :1] + x[:, 2:3]) * T * e, e], -1)

    P = Summed(Y)
    for method in ("lm", "gauss-newton"):
        s = _engine(P, _start(3), method)
        for b in range(3):
            with pytest.warns(JacobiteWarning, match="rank deficient"):
                r = jacobite.least_squares(
                    lambda p, b=b: (p[0] + p[2]) * torch.exp(-p[1] * T) - Y[b],
                    [1.0, 1.0, 0.0], jac=lambda p: P.J(p[None])[0], method=method)
            assert int(s.status[b]) == r.status and r.status > 0
            np.testing.assert_allclose(s.x[b].numpy(), _np(r.x), rtol=1e-10, atol=1e-12)
            assert float(s.x[b, 0] - s.x[b, 2]) == pytest.approx(1.0, abs=1e-12)


def test_a_robust_batch_agrees_with_single_solves():
    B = 4
    Y = _data(B, 5)
    Y[:, ::7] += 3.0  # outliers
    fs = torch.tensor([0.1, 0.2, 0.5, 1.0], dtype=F64)
    P = Exponential(Y)
    s = _engine(P, _start(B), loss=robust("soft_l1", fs))
    for b in range(B):
        fun, jac = P.one(b)
        r = jacobite.least_squares(fun, [1.0, 1.0, 0.0], jac=jac, method="lm", loss="soft_l1",
                                   f_scale=float(fs[b]))
        assert int(s.status[b]) > 0 and r.success
        np.testing.assert_allclose(s.x[b].numpy(), _np(r.x), rtol=1e-8)
        assert float(s.cost[b]) == pytest.approx(r.cost, rel=1e-12)


def test_a_rejected_step_is_not_convergence():
    # the cost is flat (2) on (-1, 2) and falls again below -1: from x = 2 the Gauss–Newton step
    # lands on the flat part at every step length, so the search finds no decrease although
    # the model predicts the whole cost away; that is no ftol convergence (it used to be)
    def fun(x):
        return torch.where(x >= 2, x, torch.where(x > -1, 2.0 + 0 * x, x + 3))

    res = jacobite.least_squares(fun, torch.tensor([2.0], dtype=F64), method="gauss-newton")
    assert res.status == LINE_SEARCH and not res.success
    assert _np(res.x).tolist() == [2.0]


def test_rounding_level_steps_that_undo_each_other_stop():
    # near this fit's solution two Gauss–Newton steps of 1.6e-14 alternate, each within the
    # cost's rounding; they used to be taken until the budget was spent (status 0, 400 evals)
    Y = _data(100, 0)[68:69]
    s = _engine(Exponential(Y), _start(1))
    y, tn = Y[0].numpy(), T.numpy()
    sc = scipy.optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * tn) + p[2] - y,
                                      [1.0, 1.0, 0.0], method="lm", ftol=1e-15, xtol=1e-15,
                                      gtol=1e-15)
    assert int(s.status[0]) > 0 and int(s.nfev[0]) < 40
    np.testing.assert_allclose(s.x[0].numpy(), sc.x, rtol=1e-8)  # SciPy stops at ftol
    assert float(s.cost[0]) <= sc.cost


def test_a_gauss_newton_stop_below_the_rounding_of_the_cost_is_convergence():
    # at this fit's solution the Gauss–Newton step predicts a relative reduction (~1e-14)
    # that the cost's rounding hides: no decrease is found, and that is a converged stop
    Y = _data(500, 1)[257:258]
    s = _engine(Exponential(Y), _start(1), "gauss-newton")
    y, tn = Y[0].numpy(), T.numpy()
    sc = scipy.optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * tn) + p[2] - y,
                                      [1.0, 1.0, 0.0], method="lm", ftol=1e-15, xtol=1e-15,
                                      gtol=1e-15)
    assert int(s.status[0]) > 0
    np.testing.assert_allclose(s.x[0].numpy(), sc.x, rtol=1e-8)
    assert float(s.cost[0]) <= sc.cost * (1 + 1e-14)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 4), st.integers(0, 10_000), st.sampled_from(["lm", "gauss-newton"]))
def test_each_row_of_a_batch_is_its_own_solve(B, seed, method):
    # a problem's result does not depend on the other problems in its batch
    Y = _data(B, seed)
    s = _engine(Exponential(Y), _start(B), method)
    for b in range(B):
        one = _engine(Exponential(Y[b:b + 1]), _start(1), method)
        assert torch.equal(one.x[0], s.x[b]) and torch.equal(one.status[0], s.status[b])
        assert torch.equal(one.nfev[0], s.nfev[b]) and torch.equal(one.nit[0], s.nit[b])
