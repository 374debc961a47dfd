"""``root`` and ``newton_minimize`` where the derivative vanishes or lies: kinks, critical points,
plateaus and jumps. Neither may report convergence there unless the tolerance is truly met."""

from __future__ import annotations

import math

import pytest
import torch

import jacobite
from jacobite.solvers import newton_minimize

DT = torch.float64
ZERO_JACOBIAN = {  # F with a zero Jacobian at the start and no root there
    "|x| - 1 at its kink": (lambda x: x.abs() - 1, 0.0),
    "relu(x) - 1 where it is off": (lambda x: torch.relu(x) - 1, -1.0),
    "x² - 1 at its critical point": (lambda x: x ** 2 - 1, 0.0),
    "x² + 1, which has no root": (lambda x: x ** 2 + 1, 0.0),
}


@pytest.mark.parametrize("method", ["hybrid", "newton"])
@pytest.mark.parametrize("name", list(ZERO_JACOBIAN))
def test_root_does_not_converge_where_the_jacobian_is_zero(name, method):
    F, x0 = ZERO_JACOBIAN[name]
    res = jacobite.root(F, [x0], method=method)
    assert not res.success and res.status == -1
    assert "Jacobian is zero" in res.message and "another x0" in res.message
    assert res.x.tolist() == [x0] and abs(res.fun.item()) == 1.0


@pytest.mark.parametrize("method", ["hybrid", "newton"])
def test_root_at_a_jump_is_not_the_rounding_limit(method):
    c = 1e7 + 0.25  # F jumps from −0.5 to 0.5 at c and has no root; its Newton step is 0.5

    res = jacobite.root(lambda x: x - c + torch.where(x > c, 0.5, -0.5), [c + 3.0],
                        method=method)
    assert not res.success and res.status == -1 and "not smooth" in res.message
    assert abs(res.fun.item()) == 0.5


@pytest.mark.parametrize("method", ["hybrid", "newton"])
def test_root_started_at_a_root(method):
    res = jacobite.root(lambda x: x.abs() - 1, [1.0], method=method)
    assert res.success and res.status == 1 and res.x.tolist() == [1.0]


@pytest.mark.parametrize("mode", ["exact", "gauss-newton"])
def test_newton_leaves_a_kink(mode):
    kw = (dict(f=lambda v: 0.5 * ((v.abs() - 1) ** 2).sum()) if mode == "exact"
          else dict(f=None, residuals=lambda v: v.abs() - 1))
    res = newton_minimize(x0=[0.0], hessian=mode, **kw)
    assert res.success and "kink" in res.message
    assert res.x.tolist() == pytest.approx([1.0], abs=1e-10) and res.fun < 1e-20


def test_newton_leaves_a_kink_behind_a_positive_definite_hessian():
    # f = x² − 0.1|x|: AD gives ∇f = 0 and H = 2 at 0, yet f(±0.05) = −0.0025 < 0
    res = newton_minimize(lambda v: (v ** 2 - 0.1 * v.abs()).sum(), [0.0])
    assert res.success and "kink" in res.message
    assert abs(res.x.item()) == pytest.approx(0.05, rel=1e-12) and res.fun == pytest.approx(
        -0.0025, rel=1e-12)


def test_newton_leaves_a_maximum_and_a_saddle():
    res = newton_minimize(lambda v: 0.5 * ((v ** 2 - 1) ** 2).sum(), [0.0])
    assert res.success and "saddle point or maximum" in res.message
    assert abs(res.x.item()) == pytest.approx(1.0, abs=1e-10)
    # x² − y² + y⁴ from (1, 0): Newton runs into the saddle at 0 along y = 0, then leaves it
    res = newton_minimize(lambda v: v[0] ** 2 - v[1] ** 2 + v[1] ** 4, [1.0, 0.0])
    assert res.success and "saddle point or maximum" in res.message
    assert res.x[0].item() == pytest.approx(0.0, abs=1e-10)
    assert abs(res.x[1].item()) == pytest.approx(math.sqrt(0.5), rel=1e-10)
    assert res.fun == pytest.approx(-0.25, rel=1e-12)


def test_newton_without_iterations_left_reports_the_maximum():
    res = newton_minimize(lambda v: 0.5 * ((v ** 2 - 1) ** 2).sum(), [0.0], max_iter=0)
    assert not res.success and res.message.startswith("stopped at a saddle point or maximum")
    assert res.x.tolist() == [0.0]


@pytest.mark.parametrize("mode", ["exact", "gauss-newton"])
def test_newton_on_a_plateau_fails(mode):
    kw = (dict(f=lambda v: 0.5 * ((torch.relu(v) - 1) ** 2).sum()) if mode == "exact"
          else dict(f=None, residuals=lambda v: torch.relu(v) - 1))
    res = newton_minimize(x0=[-1.0], hessian=mode, **kw)
    assert not res.success and "plateau" in res.message and res.x.tolist() == [-1.0]


@pytest.mark.parametrize("f", [lambda v: ((v ** 2 + 1) ** 2).sum(), lambda v: (v ** 4 + 1).sum(),
                               lambda v: (v.abs() + 1).sum()])
def test_newton_at_a_minimum_where_the_hessian_vanishes_or_lies(f):
    res = newton_minimize(f, [0.0])
    assert res.success and res.nit == 0 and res.x.tolist() == [0.0] and res.fun == 1.0
