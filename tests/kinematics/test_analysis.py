"""Manipulability, singular values, condition number, ellipsoids and the nearest singularity
along a path, against NumPy's SVD and determinant and the planar two-link arm's closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.kinematics.analysis import (
    condition_number,
    force_ellipsoid,
    manipulability,
    nearest_singularity,
    singular_values,
    velocity_ellipsoid,
)

F64 = torch.float64
L1, L2 = 0.7, 0.4


def planar_jacobian(q: torch.Tensor) -> torch.Tensor:
    """(…, 6, 2) Jacobian of a planar two-link arm (links L1, L2, joints about z), in the
    linear-then-angular row order."""
    a, b = q[..., 0], q[..., 0] + q[..., 1]
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    cols = [
        torch.stack([-L1 * a.sin() - L2 * b.sin(), L1 * a.cos() + L2 * b.cos(), zero,
                     zero, zero, one], -1),
        torch.stack([-L2 * b.sin(), L2 * b.cos(), zero, zero, zero, one], -1),
    ]
    return torch.stack(cols, -1)


class Planar2:
    """Stands in for a Chain: ``dof`` and ``jacobian``; counts its calls."""

    dof = 2

    def __init__(self) -> None:
        self.calls = 0

    def jacobian(self, q: torch.Tensor, *, frame: str = "local_world_aligned",
                 point: object = None, end: object = None) -> torch.Tensor:
        self.calls += 1
        return planar_jacobian(q)


def random_jacobians(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("shape", [(6, 7), (4, 6, 7), (2, 3, 6, 6), (6, 3), (3, 5)])
def test_singular_values_and_manipulability_match_numpy(shape: tuple[int, ...]) -> None:
    J = random_jacobians(1, shape)
    a = J.numpy()
    s_np = np.linalg.svd(a, compute_uv=False)
    np.testing.assert_allclose(singular_values(J).numpy(), s_np, rtol=1e-12, atol=1e-12)
    m, n = shape[-2:]
    gram = a @ np.swapaxes(a, -1, -2) if m <= n else np.swapaxes(a, -1, -2) @ a
    np.testing.assert_allclose(manipulability(J).numpy(), np.sqrt(np.linalg.det(gram)),
                               rtol=1e-10)
    np.testing.assert_allclose(condition_number(J).numpy(), np.linalg.cond(a), rtol=1e-10)


@given(st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi))
def test_planar_arm_manipulability_is_l1_l2_sin_q2(q1: float, q2: float) -> None:
    J = planar_jacobian(torch.tensor([q1, q2], dtype=F64))
    w = float(manipulability(J, part="linear"))
    assert w == pytest.approx(L1 * L2 * abs(math.sin(q2)), abs=1e-12)


def test_parts_take_the_linear_and_angular_rows() -> None:
    J = random_jacobians(2, (5, 6, 7))
    for part, rows in (("linear", slice(0, 3)), ("angular", slice(3, 6))):
        s_np = np.linalg.svd(J[:, rows].numpy(), compute_uv=False)
        np.testing.assert_allclose(singular_values(J, part=part).numpy(), s_np, rtol=1e-12)


def test_singular_configuration_has_zero_manipulability_and_infinite_condition() -> None:
    J = planar_jacobian(torch.tensor([[0.3, 0.0], [0.3, math.pi]], dtype=F64))
    assert torch.all(manipulability(J, part="linear") < 1e-15)
    # Rounding leaves σ_min at ~1e-17 or exactly 0; either way the condition number is huge.
    assert torch.all(condition_number(J, part="linear") > 1e15)
    exact = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64)
    assert math.isinf(float(condition_number(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))))
    assert float(manipulability(exact)) == pytest.approx(0.0, abs=1e-15)


def test_results_keep_dtype_and_are_differentiable() -> None:
    q = torch.tensor([0.4, 1.1], dtype=torch.float32, requires_grad=True)
    w = manipulability(planar_jacobian(q), part="linear")
    assert w.dtype == torch.float32
    (g,) = torch.autograd.grad(w, q)
    # w = L1 L2 sin q2 for q2 in (0, π): dw/dq1 = 0, dw/dq2 = L1 L2 cos q2
    torch.testing.assert_close(g, torch.tensor([0.0, L1 * L2 * math.cos(1.1)]), atol=1e-5,
                               rtol=1e-5)


def test_velocity_and_force_ellipsoids_from_the_svd() -> None:
    J = random_jacobians(3, (4, 6, 7))
    vel, force = velocity_ellipsoid(J), force_ellipsoid(J)
    U, s, _ = np.linalg.svd(J[:, :3].numpy())
    np.testing.assert_allclose(vel.radii.numpy(), s, rtol=1e-12)
    np.testing.assert_allclose(force.radii.numpy(), 1 / s, rtol=1e-12)
    # axes: unit columns spanning the same lines as NumPy's left singular vectors
    np.testing.assert_allclose(np.abs(np.einsum("bik,bik->bk", vel.axes.numpy(), U)), 1.0,
                               rtol=1e-10)
    # every point of the unit ball's image lies inside the velocity ellipsoid
    qdot = random_jacobians(4, (4, 7, 50))
    qdot = qdot / qdot.norm(dim=1, keepdim=True)
    v = J[:, :3] @ qdot
    local = vel.axes.transpose(-1, -2) @ v / vel.radii.unsqueeze(-1)
    assert float(local.norm(dim=1).max()) <= 1 + 1e-12
    volume = 4 / 3 * math.pi * np.prod(s, axis=-1)
    np.testing.assert_allclose(vel.volume().numpy(), volume, rtol=1e-12)
    assert vel.kind == "velocity" and force.kind == "force" and vel.part == "linear"


def test_ellipsoid_of_an_arm_with_fewer_joints_than_directions() -> None:
    J = planar_jacobian(torch.tensor([0.2, 0.9], dtype=F64))
    vel, force = velocity_ellipsoid(J), force_ellipsoid(J)
    assert vel.radii.shape == (3,) and float(vel.radii[2]) == 0.0
    assert math.isinf(float(force.radii[2]))
    # the zero-radius axis is z: the planar arm cannot move out of its plane
    assert abs(float(vel.axes[2, 2])) == pytest.approx(1.0)
    ang = velocity_ellipsoid(J, part="angular")
    assert float(ang.radii[0]) == pytest.approx(math.sqrt(2))


def test_nearest_singularity_of_a_callable_path_is_refined_past_the_samples() -> None:
    chain = Planar2()
    t0 = 0.4321  # q2 crosses 0 at t0, between two of the 11 samples

    def path(t: float) -> torch.Tensor:
        return torch.tensor([0.3, 2.0 * (t - t0)], dtype=F64)

    r = nearest_singularity(chain, path, samples=11, part="linear", xatol=1e-12)
    assert r.t == pytest.approx(t0, abs=1e-8)
    assert r.sigma_min < 1e-7 and r.manipulability < 1e-7 and r.condition_number > 1e6
    torch.testing.assert_close(r.q, path(r.t))
    assert r.t_samples.shape == r.sigma_samples.shape == r.manipulability_samples.shape == (11,)
    # the samples are evaluated in one batched call
    s_np = [np.linalg.svd(planar_jacobian(path(float(t)))[:3].numpy(), compute_uv=False)[-1]
            for t in r.t_samples]
    np.testing.assert_allclose(r.sigma_samples.numpy(), s_np, rtol=1e-10, atol=1e-15)


def test_nearest_singularity_of_tabulated_samples() -> None:
    # q2 goes 1.0 -> -1.0 -> 0.5: linear pieces; the zero crossing of the first piece is t=0.25
    Q = torch.tensor([[0.1, 1.0], [0.1, -1.0], [0.1, 0.5]], dtype=F64)
    r = nearest_singularity(Planar2(), Q, samples=41, part="linear")
    assert r.t == pytest.approx(0.25, abs=1e-6)
    assert abs(float(r.q[1])) < 1e-5


def test_nearest_singularity_without_a_singularity_returns_the_least_conditioned_point() -> None:
    # q2 from 0.5 to 1.5: σ_min of the linear block grows with |sin q2| near there; the
    # smallest is at the start
    path = torch.tensor([[0.0, 0.5], [0.0, 1.5]], dtype=F64)
    r = nearest_singularity(Planar2(), path, samples=5, part="linear")
    s = [np.linalg.svd(planar_jacobian(torch.tensor([0.0, x], dtype=F64))[:3].numpy(),
                       compute_uv=False)[-1] for x in np.linspace(0.5, 1.5, 201)]
    assert r.sigma_min == pytest.approx(min(s), rel=1e-6)


@pytest.mark.parametrize("call, error", [
    (lambda: manipulability([[1.0]]), ArgumentTypeError),  # type: ignore[arg-type]
    (lambda: manipulability(torch.ones(3, dtype=torch.int64)), DtypeError),
    (lambda: manipulability(torch.ones(3)), ShapeError),
    (lambda: manipulability(torch.ones(4, 3), part="linear"), ShapeError),
    (lambda: condition_number(torch.full((6, 7), math.nan)), NonFiniteInputError),
    (lambda: singular_values(torch.ones(6, 3), part="rotational"), InvalidOptionError),  # type: ignore[arg-type]
    (lambda: nearest_singularity(object(), torch.zeros(2, 2)), ArgumentTypeError),  # type: ignore[arg-type]
    (lambda: nearest_singularity(Planar2(), torch.zeros(2, 3)), ShapeError),
    (lambda: nearest_singularity(Planar2(), torch.zeros(1, 2)), ShapeError),
    (lambda: nearest_singularity(Planar2(), torch.full((2, 2), math.nan)), NonFiniteInputError),
    (lambda: nearest_singularity(Planar2(), "line"), ArgumentTypeError),
    (lambda: nearest_singularity(Planar2(), lambda t: torch.zeros(3)), ShapeError),
    (lambda: nearest_singularity(Planar2(), torch.zeros(2, 2), samples=2), InvalidOptionError),
])
def test_bad_arguments_raise_typed_errors(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_nearest_singularity_finds_the_stretched_elbow_of_the_kuka() -> None:
    pytest.importorskip("yourdfpy")
    from tests.kinematics._robots import load

    arm = load("kuka_iiwa7")
    t0 = 0.37  # the elbow joint (4) crosses 0 there: the arm is stretched, J (6×7) has rank 5

    def path(t: float) -> torch.Tensor:
        return torch.tensor([0.3, 0.6, -0.4, 1.5 * (t - t0), 0.5, -0.7, 0.2], dtype=F64)

    r = nearest_singularity(arm, path, samples=21)
    assert r.t == pytest.approx(t0, abs=1e-6)
    assert r.sigma_min < 1e-6 and r.condition_number > 1e5
    s = np.linalg.svd(arm.jacobian(path(r.t)).numpy(), compute_uv=False)
    assert s[-1] == pytest.approx(r.sigma_min, abs=1e-12) and s[-2] > 0.1
    # the sampled σ_min match NumPy's SVD of the same Jacobians
    s_np = [np.linalg.svd(arm.jacobian(path(float(t))).numpy(), compute_uv=False)[-1]
            for t in r.t_samples[::5]]
    np.testing.assert_allclose(r.sigma_samples[::5].numpy(), s_np, rtol=1e-10, atol=1e-14)


def test_measures_under_vmap_and_the_gradient_of_manipulability() -> None:
    J = random_jacobians(5, (4, 6, 7))
    torch.testing.assert_close(torch.func.vmap(manipulability)(J), manipulability(J))
    torch.testing.assert_close(torch.func.vmap(condition_number)(J), condition_number(J))
    # d√det(J Jᵀ)/dJ = w · (J Jᵀ)⁻¹ J (Jacobi's formula)
    grad = torch.func.vmap(torch.func.grad(manipulability))(J)
    w = manipulability(J)
    torch.testing.assert_close(grad, w[:, None, None] * torch.linalg.solve(J @ J.mT, J))


def test_nearest_singularity_asks_for_one_end_frame() -> None:
    from jacobite.kinematics import Chain

    class TwoEnds(Planar2):
        def jacobian(self, q: torch.Tensor, **kw: object) -> torch.Tensor:
            return torch.stack([planar_jacobian(q)] * 2, dim=-3)

    with pytest.raises(ShapeError, match="end="):
        nearest_singularity(TwoEnds(), torch.zeros(2, 2, dtype=F64))
    arm = Chain.from_dh([[0.7, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]])
    r = nearest_singularity(arm, torch.tensor([[0.2, 1.0], [0.2, -1.0]], dtype=F64),
                            part="linear")
    assert r.t == pytest.approx(0.5, abs=1e-6)


def test_force_ellipsoid_surface_needs_unit_joint_torque() -> None:
    J = random_jacobians(6, (3, 6, 7))
    ell = force_ellipsoid(J)
    u = random_jacobians(7, (3, 3, 40))
    u = u / u.norm(dim=1, keepdim=True)            # unit directions in the ellipsoid's frame
    f = ell.axes @ (ell.radii.unsqueeze(-1) * u)  # points on the surface, (3, 3, 40)
    tau = J[:, :3].mT @ f                          # τ = Jᵀ f (linear block)
    torch.testing.assert_close(tau.norm(dim=1), torch.ones(3, 40, dtype=F64))
