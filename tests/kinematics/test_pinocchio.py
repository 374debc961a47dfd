"""Poses and Jacobians in all three frames against pinocchio (test-only dependency) on the
fixture robots, at 100 random configurations within the joint limits, to 1e-10 in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ._robots import ENDS, load, urdf_text

pin = pytest.importorskip("pinocchio")

F64 = torch.float64
FRAMES = {"world": "WORLD", "local": "LOCAL", "local_world_aligned": "LOCAL_WORLD_ALIGNED"}
ARMS = ["kuka_iiwa7", "ur5", "panda"]


def _configs(chain, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo = chain.lower.clamp(min=-np.pi)
    hi = chain.upper.clamp(max=np.pi)
    return lo + (hi - lo) * torch.rand(n, chain.dof, generator=g, dtype=F64)


def _pinocchio(name: str, q: torch.Tensor, frame: str, point=None):
    model = pin.buildModelFromXML(urdf_text(name))
    data = model.createData()
    fid = model.getFrameId(ENDS[name])
    if point is not None:  # a frame at the offset, rigidly attached to the end link
        parent = model.frames[fid]
        placement = parent.placement * pin.SE3(np.eye(3), np.asarray(point))
        fid = model.addFrame(pin.Frame("offset", parent.parentJoint, fid, placement,
                                       pin.FrameType.OP_FRAME))
        data = model.createData()
    poses, jacs = [], []
    for qi in q.numpy():
        pin.forwardKinematics(model, data, qi)
        pin.updateFramePlacements(model, data)
        poses.append(data.oMf[fid].homogeneous.copy())
        jacs.append(pin.computeFrameJacobian(model, data, qi, fid,
                                             getattr(pin.ReferenceFrame, FRAMES[frame])))
    return np.stack(poses), np.stack(jacs)


@pytest.mark.parametrize("name", ARMS)
@pytest.mark.parametrize("frame", list(FRAMES))
def test_jacobian_matches_pinocchio(name: str, frame: str) -> None:
    chain = load(name)
    q = _configs(chain, 100, seed=len(name))
    pose, jac = chain.fk_and_jacobian(q, frame=frame)
    pose_pin, jac_pin = _pinocchio(name, q, frame)
    assert np.abs(pose.numpy() - pose_pin).max() <= 1e-10
    assert np.abs(jac.numpy() - jac_pin).max() <= 1e-10
    assert torch.equal(chain.jacobian(q, frame=frame), jac)


@pytest.mark.parametrize("frame", ["local", "local_world_aligned"])
def test_point_matches_a_pinocchio_frame_at_the_offset(frame: str) -> None:
    chain = load("kuka_iiwa7")
    q = _configs(chain, 20, seed=3)
    point = [0.05, -0.02, 0.1]
    jac = chain.jacobian(q, frame=frame, point=torch.tensor(point, dtype=F64))
    _, jac_pin = _pinocchio("kuka_iiwa7", q, frame, point=point)
    assert np.abs(jac.numpy() - jac_pin).max() <= 1e-10


@pytest.mark.parametrize("name", ARMS)
@pytest.mark.parametrize("frame", list(FRAMES))
def test_few_and_unbatched_configurations_match_pinocchio(name: str, frame: str) -> None:
    # a few configurations take another route (all frames from one triangular solve)
    chain = load(name)
    q = _configs(chain, 3, seed=7)
    pose_pin, jac_pin = _pinocchio(name, q, frame)
    pose, jac = chain.fk_and_jacobian(q, frame=frame)
    assert np.abs(pose.numpy() - pose_pin).max() <= 1e-10
    assert np.abs(jac.numpy() - jac_pin).max() <= 1e-10
    pose1, jac1 = chain.fk_and_jacobian(q[1], frame=frame)
    assert pose1.shape == (4, 4) and jac1.shape == (6, chain.dof)
    assert np.abs(jac1.numpy() - jac_pin[1]).max() <= 1e-10
    assert np.abs(chain.fk(q[1]).numpy() - pose_pin[1]).max() <= 1e-10
