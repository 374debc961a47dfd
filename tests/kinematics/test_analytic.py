"""Analytic Jacobians (roll-pitch-yaw, quaternion) against jacobite.jacobian through fk and the
parametrisation; the parameters themselves against SciPy's Rotation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import jacobite
from jacobite.errors import InvalidOptionError
from jacobite.kinematics import ORIENTATIONS, analytic_jacobian, orientation_parameters

from ._robots import MANY, load

F64 = torch.float64


def _q(chain, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return chain.lower + (chain.upper - chain.lower) * torch.rand(n, chain.dof, generator=g,
                                                                   dtype=F64)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
@pytest.mark.parametrize("n", [2, MANY])
def test_matches_ad_through_fk(orientation: str, n: int) -> None:
    chain = load("kuka_iiwa7")
    q = _q(chain, n, seed=n)
    jac = chain.analytic_jacobian(q, orientation=orientation)
    assert jac.shape == (n, 6 if orientation == "rpy" else 7, 7)

    def f(v: torch.Tensor) -> torch.Tensor:
        pose = chain.fk(v)
        return torch.cat([pose[:3, 3], orientation_parameters(pose[:3, :3], orientation)])

    for b in range(0, n, 9):
        torch.testing.assert_close(jac[b], jacobite.jacobian(f, q[b]), atol=1e-10, rtol=0)
    torch.testing.assert_close(analytic_jacobian(chain, q, orientation=orientation), jac)


def test_parameters_match_scipy() -> None:
    rot = Rotation.random(200, random_state=0)
    r = torch.as_tensor(rot.as_matrix())
    yaw_pitch_roll = rot.as_euler("ZYX")
    rpy = orientation_parameters(r, "rpy").numpy()
    np.testing.assert_allclose(rpy, yaw_pitch_roll[:, ::-1], atol=1e-12)
    quat = rot.as_quat()  # (x, y, z, w)
    quat = np.where(quat[:, 3:] < 0, -quat, quat)
    np.testing.assert_allclose(orientation_parameters(r, "quaternion").numpy(),
                               quat[:, [3, 0, 1, 2]], atol=1e-12)


def test_quaternion_for_several_ends() -> None:
    chain = load("gripper", end=["left_tip", "right_tip"])
    q = torch.tensor([0.1, 3.1, 0.4], dtype=F64)
    jac = chain.analytic_jacobian(q, orientation="quaternion")
    assert jac.shape == (2, 7, 3)
    for e, link in enumerate(chain.end_names):
        def f(v, link=link):
            pose = chain.fk(v, end=link)
            return torch.cat([pose[:3, 3], orientation_parameters(pose[:3, :3], "quaternion")])
        torch.testing.assert_close(jac[e], jacobite.jacobian(f, q), atol=1e-10, rtol=0)


def test_bad_orientation() -> None:
    chain = load("ur5")
    with pytest.raises(InvalidOptionError, match="rpy"):
        chain.analytic_jacobian(torch.zeros(6, dtype=F64), orientation="euler")
