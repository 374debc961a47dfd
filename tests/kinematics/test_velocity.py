"""Differential IK (damped least squares) against NumPy's solve and pseudo-inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.errors import InvalidOptionError, ShapeError
from jacobite.kinematics import solve_velocity
from tests.kinematics._robots import load

F64 = torch.float64


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(n, 7, generator=g, dtype=F64) * 2 - 1
    twist = torch.randn(n, 6, generator=g, dtype=F64)
    return q, twist


@pytest.mark.parametrize("frame", ["local_world_aligned", "world", "local"])
def test_damped_least_squares_matches_numpy(frame):
    chain = load("kuka_iiwa7")
    q, twist = _data(5, 0)
    qd = solve_velocity(chain, q, twist, damping=0.1, frame=frame)
    J = chain.jacobian(q, frame=frame).numpy()
    A = J @ J.transpose(0, 2, 1) + 0.01 * np.eye(6)
    expected = np.einsum("bji,bj->bi", J, np.linalg.solve(A, twist.numpy()[..., None])[..., 0])
    assert np.abs(qd.numpy() - expected).max() < 1e-12


def test_zero_damping_is_the_pseudo_inverse_and_tracks_the_twist():
    chain = load("kuka_iiwa7")
    q, twist = _data(4, 1)
    qd = solve_velocity(chain, q, twist, damping=0)
    J = chain.jacobian(q).numpy()
    assert np.abs(qd.numpy() - np.einsum("bij,bj->bi", np.linalg.pinv(J), twist.numpy())).max() \
        < 1e-10
    assert np.abs(np.einsum("bij,bj->bi", J, qd.numpy()) - twist.numpy()).max() < 1e-10


def test_a_small_step_moves_the_end_frame_by_the_twist():
    chain = load("ur5")
    q = torch.tensor([0.3, -1.0, 1.2, -0.5, 0.8, 0.1], dtype=F64)
    twist = torch.tensor([0.05, -0.02, 0.03, 0.1, 0.0, -0.2], dtype=F64)
    dt = 1e-6
    q1 = q + dt * solve_velocity(chain, q, twist)
    T0, T1 = chain.fk(q), chain.fk(q1)
    assert torch.allclose((T1[:3, 3] - T0[:3, 3]) / dt, twist[:3], atol=1e-4)
    dR = (T1[:3, :3] - T0[:3, :3]) / dt @ T0[:3, :3].T       # [ω]× to first order
    assert torch.allclose(torch.stack([dR[2, 1], dR[0, 2], dR[1, 0]]), twist[3:], atol=1e-4)


def test_damping_bounds_the_joint_speed_at_a_singularity():
    chain = load("kuka_iiwa7")
    q = torch.zeros(7, dtype=F64)            # stretched upright: a singular configuration
    twist = torch.tensor([0.0, 0.0, 0.1, 0.0, 0.0, 0.0], dtype=F64)   # along the arm
    for lam in (1e-3, 1e-2, 1e-1):
        qd = solve_velocity(chain, q, twist, damping=lam)
        assert torch.isfinite(qd).all()
        # |q̇| ≤ |ξ| / (2λ) for the damped inverse: σ / (σ² + λ²) ≤ 1 / (2λ)
        assert float(qd.norm()) <= 0.1 / (2 * lam) + 1e-12


def test_batches_broadcast_keep_dtype_and_differentiate():
    chain = load("kuka_iiwa7")
    q, twist = _data(3, 2)
    assert solve_velocity(chain, q, twist[0]).shape == (3, 7)
    assert solve_velocity(chain, q[0], twist[0]).shape == (7,)
    qf = solve_velocity(chain, q.float(), twist.float(), damping=1e-3)
    assert qf.dtype == torch.float32
    ref = solve_velocity(chain, q, twist, damping=1e-3)
    assert ((qf.double() - ref).abs().max() / ref.abs().max()) < 1e-4
    qq = q[0].clone().requires_grad_(True)
    tw = twist[0].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: solve_velocity(chain, a, b, damping=0.1), (qq, tw))


def test_bad_twist_and_damping_are_refused():
    chain = load("kuka_iiwa7")
    q = torch.zeros(7, dtype=F64)
    with pytest.raises(ShapeError, match="linear velocity then angular"):
        solve_velocity(chain, q, torch.zeros(3, dtype=F64))
    with pytest.raises(InvalidOptionError, match="damping"):
        solve_velocity(chain, q, torch.zeros(6, dtype=F64), damping=-1.0)


def test_the_chain_method_is_the_function():
    chain = load("kuka_iiwa7")
    q, twist = _data(2, 3)
    assert torch.equal(chain.solve_velocity(q, twist, damping=0.05),
                       solve_velocity(chain, q, twist, damping=0.05))
