"""Derivatives of IK solutions with respect to the target: the implicit (minimum-norm) J⁺ relation
against NumPy's pseudo-inverse and against finite differences of re-solved IK."""

from __future__ import annotations

import numpy as np
import torch

from jacobite.kinematics import ik
from jacobite.kinematics._lie import so3_exp
from tests.kinematics._robots import load

F64 = torch.float64
TIGHT = 1e-11


def _moved(T0: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """``T0`` moved by the twist ``xi`` (linear then angular, world axes, at the end point)."""
    top = torch.cat([so3_exp(xi[3:]) @ T0[:3, :3], (T0[:3, 3] + xi[:3])[:, None]], 1)
    return torch.cat([top, T0[3:]], 0)


def _solution(chain, q_goal: torch.Tensor) -> torch.Tensor:
    res = ik(chain, chain.fk(q_goal), q0=q_goal + 0.02, seeds=1, tol=TIGHT)
    assert bool(res.success)
    return res.q


def _fd(chain, T0: torch.Tensor, q_star: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences of re-solved IK (from the solution, one seed) along each twist."""
    cols = []
    for k in range(6):
        step = torch.zeros(6, dtype=F64)
        step[k] = h
        qp = ik(chain, _moved(T0, step), q0=q_star, seeds=1, tol=TIGHT)
        qm = ik(chain, _moved(T0, -step), q0=q_star, seeds=1, tol=TIGHT)
        assert bool(qp.success) and bool(qm.success)
        cols.append((qp.q - qm.q) / (2 * h))
    return torch.stack(cols, 1)


def _ik_derivative(chain, q_goal: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """A tight solution ``q*`` near ``q_goal``, its pose ``T0``, autograd's derivative of the
    re-solved ``q`` in a twist of the target at 0, and the Jacobian ``J(q*)`` (NumPy)."""
    q_star = _solution(chain, q_goal)
    T0 = chain.fk(q_star)
    dq = torch.autograd.functional.jacobian(
        lambda xi: ik(chain, _moved(T0, xi), q0=q_star, seeds=1, tol=TIGHT).q,
        torch.zeros(6, dtype=F64))
    return q_star, T0, dq, chain.jacobian(q_star).numpy()


def test_the_gradient_is_the_pseudo_inverse_on_a_redundant_arm():
    chain = load("kuka_iiwa7")
    q_goal = torch.tensor([0.3, 0.7, -0.4, -1.2, 0.5, 0.9, -0.3], dtype=F64)
    q_star, T0, dq, J = _ik_derivative(chain, q_goal)
    assert np.abs(dq.numpy() - np.linalg.pinv(J)).max() < 1e-9
    # re-solved IK moves along some solution of J dq = dξ; its row-space part is J⁺ dξ
    fd = _fd(chain, T0, q_star).numpy()
    assert np.abs(J @ fd - np.eye(6)).max() < 1e-4
    row_space = np.linalg.pinv(J) @ J
    assert np.abs(row_space @ fd - dq.numpy()).max() < 1e-4


def test_the_gradient_is_the_inverse_on_a_six_joint_arm():
    chain = load("ur5")
    q_goal = torch.tensor([0.4, -1.1, 1.3, -0.8, 1.2, 0.3], dtype=F64)
    q_star, T0, dq, J = _ik_derivative(chain, q_goal)
    assert np.abs(dq.numpy() - np.linalg.inv(J)).max() < 1e-8
    assert np.abs(_fd(chain, T0, q_star).numpy() - dq.numpy()).max() < 1e-4


def test_position_only_gradient_in_a_batch():
    chain = load("panda")
    q_goal = torch.tensor([[0.1, 0.3, -0.2, -1.5, 0.4, 1.6, 0.2],
                           [-0.5, -0.4, 0.6, -2.0, -0.3, 2.2, 1.0]], dtype=F64)
    p = chain.fk(q_goal)[:, :3, 3].clone().requires_grad_(True)
    res = ik(chain, p, position_only=True, q0=q_goal + 0.01, tol=TIGHT)
    assert res.success.all()
    w = torch.randn(2, 7, dtype=F64, generator=torch.Generator().manual_seed(0))
    (res.q * w).sum().backward()
    assert p.grad is not None
    Jp = chain.jacobian(res.q.detach())[:, :3].numpy()
    expected = np.einsum("gij,gi->gj", np.linalg.pinv(Jp), w.numpy())
    assert np.abs(p.grad.numpy() - expected).max() < 1e-9


def test_no_gradient_is_recorded_for_a_plain_target():
    chain = load("kuka_iiwa7")
    res = ik(chain, chain.fk(torch.zeros(7, dtype=F64) + 0.3))
    assert not res.q.requires_grad


def test_torch_func_grad_and_jacrev_work_and_vmap_is_refused():
    import pytest

    from jacobite.errors import UnsupportedOperationError

    chain = load("kuka_iiwa7")
    q = torch.tensor([0.3, 0.7, -0.4, -1.2, 0.5, 0.9, -0.3], dtype=F64)
    p = chain.fk(q)[:3, 3]

    def solve(t: torch.Tensor) -> torch.Tensor:
        return ik(chain, t, position_only=True, q0=q, tol=TIGHT).q

    Jp = chain.jacobian(solve(p))[:3].numpy()
    assert np.abs(torch.func.jacrev(solve)(p).numpy() - np.linalg.pinv(Jp)).max() < 1e-9
    g = torch.func.grad(lambda t: solve(t).sum())(p)
    assert np.abs(g.numpy() - np.linalg.pinv(Jp).sum(0)).max() < 1e-9
    with pytest.raises(UnsupportedOperationError, match="stack the targets"):
        torch.func.jacfwd(solve)(p)
