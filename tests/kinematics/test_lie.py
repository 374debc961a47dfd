"""SO(3) / SE(3) exp and log against SciPy's Rotation and torch.linalg.matrix_exp, near 0 and π."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from jacobite.kinematics._lie import (
    pose_error,
    pose_residual,
    se3_exp,
    se3_inverse,
    se3_log,
    skew,
    so3_exp,
    so3_log,
    vee,
)

F64 = torch.float64


def _vectors(n: int, angles: np.ndarray, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return torch.tensor(axes * angles[:, None])


ANGLES = np.concatenate([np.random.default_rng(1).uniform(0, math.pi - 1e-3, 64),
                         [0.0, 1e-12, 1e-9, 1e-6, 1e-4, 9e-4, 1.1e-3, 0.5, 2.0, 2.6, 2.7,
                          math.pi - 1e-4, math.pi - 1e-7, math.pi - 1e-10]])


def _hat(xi: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(*xi.shape[:-1], 4, 4, dtype=xi.dtype)
    out[..., :3, :3] = skew(xi[..., 3:])
    out[..., :3, 3] = xi[..., :3]
    return out


def test_skew_is_the_cross_product_and_vee_inverts_it():
    u, v = torch.randn(2, 10, 3, dtype=F64).unbind(0)
    assert torch.allclose((skew(u) @ v[..., None])[..., 0], torch.linalg.cross(u, v))
    assert torch.equal(vee(skew(u)), u)


def test_so3_exp_matches_scipy():
    w = _vectors(len(ANGLES), ANGLES)
    expected = torch.tensor(Rotation.from_rotvec(w.numpy()).as_matrix())
    assert (so3_exp(w) - expected).abs().max() < 1e-14


def test_so3_log_matches_scipy_up_to_pi():
    w = _vectors(len(ANGLES), ANGLES)
    R = torch.tensor(Rotation.from_rotvec(w.numpy()).as_matrix())
    got = so3_log(R)
    expected = torch.tensor(Rotation.from_matrix(R.numpy()).as_rotvec())
    # scipy's own result near π is accurate to ~1e-8 (it goes through quaternions)
    assert (got - expected).abs().max() < 1e-7
    # and both map back to R: the exponential is the independent check at the ends
    assert (so3_exp(got) - R).abs().max() < 1e-14
    assert (got - w).abs().max() < 1e-9


def test_so3_log_at_exactly_a_half_turn_gives_one_of_the_two_answers():
    odd = torch.tensor([1.0, 2.0, -2.0], dtype=F64) / 3
    for axis in (*torch.eye(3, dtype=F64).unbind(0), odd):
        R = so3_exp(math.pi * axis)
        w = so3_log(R)
        assert abs(float(w.norm()) - math.pi) < 1e-12
        assert (so3_exp(w) - R).abs().max() < 1e-14
        assert min(float((w - math.pi * axis).norm()), float((w + math.pi * axis).norm())) < 1e-7


def test_se3_exp_matches_matrix_exp_and_log_inverts_it():
    w = _vectors(len(ANGLES), ANGLES, seed=2)
    v = torch.randn(len(ANGLES), 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    xi = torch.cat([v, w], -1)
    T = se3_exp(xi)
    assert (T - torch.linalg.matrix_exp(_hat(xi))).abs().max() < 1e-13
    back = se3_log(T)
    assert (se3_exp(back) - T).abs().max() < 1e-13
    assert (back - xi).abs().max() < 1e-6   # the v part near π inherits the angle's rounding
    assert (back[:-3] - xi[:-3]).abs().max() < 1e-12


def test_se3_inverse():
    xi = torch.randn(5, 6, dtype=F64)
    T = se3_exp(xi)
    assert torch.allclose(se3_inverse(T), torch.linalg.inv(T))


@pytest.mark.parametrize("angle", [0.0, 1e-8, 5e-4, 0.3, 1.5, 2.9, math.pi - 1e-4])
def test_log_of_exp_has_the_identity_jacobian(angle):
    # for |w| < π, log(exp(w)) = w, so its Jacobian is I: a closed-form oracle for the
    # derivatives of both maps through every branch
    w = _vectors(1, np.array([angle]), seed=4)[0]
    J = torch.autograd.functional.jacobian(lambda x: so3_log(so3_exp(x)), w)
    assert torch.isfinite(J).all()
    tol = 1e-9 if angle < 3 else 1e-4   # conditioning ~ 1/sin θ near π
    assert (J - torch.eye(3, dtype=F64)).abs().max() < tol
    xi = torch.cat([torch.tensor([0.3, -0.2, 0.1], dtype=F64), w])
    J6 = torch.autograd.functional.jacobian(lambda x: se3_log(se3_exp(x)), xi)
    assert (J6 - torch.eye(6, dtype=F64)).abs().max() < tol


@pytest.mark.parametrize("angle", [0.0, 1e-7, 0.7, 2.8, math.pi - 1e-3])
def test_exp_and_log_pass_gradcheck(angle):
    w = _vectors(1, np.array([angle]), seed=5)[0].requires_grad_(True)
    assert torch.autograd.gradcheck(so3_exp, (w,))
    xi = torch.cat([torch.randn(3, dtype=F64), w.detach()]).requires_grad_(True)
    assert torch.autograd.gradcheck(se3_exp, (xi,))
    if angle > 0:   # log's argument must stay on SO(3): differentiate through exp
        assert torch.autograd.gradcheck(lambda x: so3_log(so3_exp(x)), (w,))


def test_a_batch_with_rows_near_zero_and_near_pi_has_finite_gradients():
    w = _vectors(4, np.array([0.0, 1e-9, 1.0, math.pi - 1e-6]), seed=6).requires_grad_(True)
    so3_log(so3_exp(w)).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


def test_float32_keeps_dtype_and_runs_under_vmap():
    w = _vectors(8, np.linspace(0, 3.1, 8), seed=7).float()
    R = so3_exp(w)
    assert R.dtype == torch.float32
    assert (so3_log(R) - w).abs().max() < 1e-4
    T = se3_exp(torch.cat([w, w], -1))
    assert torch.allclose(torch.func.vmap(se3_log)(T), se3_log(T))


def test_pose_error_derivative_is_the_world_aligned_twist():
    # moving T by a twist (v, ω) taken at the end point with world axes changes the error by
    # exactly (v, ω) at zero error
    T0 = se3_exp(torch.tensor([0.2, -0.1, 0.4, 0.3, -0.5, 0.2], dtype=F64))
    v, om = torch.tensor([0.1, 0.2, -0.3], dtype=F64), torch.tensor([-0.2, 0.5, 0.1], dtype=F64)

    def moved(t: torch.Tensor) -> torch.Tensor:
        R = so3_exp(t * om) @ T0[:3, :3]
        p = T0[:3, 3] + t * v
        T = torch.eye(4, dtype=F64).clone()
        T[:3, :3], T[:3, 3] = R, p
        return pose_error(T, T0)

    d = torch.autograd.functional.jacobian(moved, torch.tensor(0.0, dtype=F64))
    assert torch.allclose(d, torch.cat([v, om]), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
       st.floats(0.0, math.pi - 1e-6))
def test_log_inverts_exp(direction, angle):
    d = torch.tensor(direction, dtype=F64)
    if float(d.norm()) < 1e-3:
        d = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    w = d / d.norm() * angle
    assert (so3_log(so3_exp(w)) - w).abs().max() < 1e-8


def test_the_derivative_free_paths_agree_with_the_differentiable_ones():
    w = _vectors(len(ANGLES), ANGLES, seed=8)
    R = so3_exp(w)
    tracked = R.clone().requires_grad_(True)
    assert (so3_log(R) - so3_log(tracked).detach()).abs().max() < 1e-12
    T = se3_exp(torch.cat([torch.randn(len(ANGLES), 3, dtype=F64), w], -1))
    target = se3_exp(torch.randn(len(ANGLES), 6, dtype=F64))
    plain = pose_error(T, target)
    with_grad = pose_error(T.clone().requires_grad_(True), target).detach()
    assert (plain - with_grad).abs().max() < 1e-12
    # and against SciPy: the rotation part is the rotation vector of R Rₜᵀ
    rel = (T[:, :3, :3] @ target[:, :3, :3].transpose(-1, -2)).numpy()
    assert np.abs(plain[:, 3:].numpy() - Rotation.from_matrix(rel).as_rotvec()).max() < 1e-7


def test_the_solver_residual_is_the_pose_error_with_the_true_angle_at_a_half_turn():
    w = _vectors(len(ANGLES), ANGLES, seed=9)
    T = se3_exp(torch.cat([torch.randn(len(ANGLES), 3, dtype=F64), w], -1))
    target = torch.eye(4, dtype=F64).expand(len(ANGLES), 4, 4)
    fast, exact = pose_residual(T, target), pose_error(T, target)
    assert (fast[:-1] - exact[:-1]).abs().max() < 1e-9      # all but the exact half turn
    assert (fast.norm(dim=-1) - exact.norm(dim=-1)).abs().max() < 1e-12
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=F64))   # exactly π about x
    assert abs(float(pose_residual(flip, torch.eye(4, dtype=F64))[3:].norm()) - math.pi) < 1e-15
