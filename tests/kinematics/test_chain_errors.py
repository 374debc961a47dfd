"""Bad input to Chain raises typed errors from jacobite.errors whose messages name the fix."""

from __future__ import annotations

import pytest
import torch

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    ShapeError,
)
from jacobite.kinematics import Chain

from ._robots import UR5_DH, load, robot_path

F64 = torch.float64


def _one(joint: str) -> str:
    return ('<robot name="r"><link name="a"/><link name="b"/>'
            f'{joint}</robot>')


@pytest.fixture(scope="module")
def kuka() -> Chain:
    return load("kuka_iiwa7")


@pytest.mark.parametrize(("q", "err", "match"), [
    (torch.zeros(7, dtype=torch.int64), DtypeError, "q.double"),
    (torch.zeros(7, dtype=torch.float16), DtypeError, "q.double"),
    (torch.zeros(6, dtype=F64), ShapeError, "dof=7"),
    (torch.zeros(3, 6, dtype=F64), ShapeError, "dof=7"),
    (torch.tensor(1.0, dtype=F64), ShapeError, "dof=7"),
    ("q", ArgumentTypeError, "tensor of joint values"),
    (None, ArgumentTypeError, "tensor of joint values"),
])
def test_bad_q(kuka: Chain, q, err, match: str) -> None:
    for call in (kuka.fk, kuka.jacobian, kuka.fk_and_jacobian):
        with pytest.raises(err, match=match):
            call(q)


def test_bad_frame_point_and_end(kuka: Chain) -> None:
    q = torch.zeros(2, 7, dtype=F64)
    with pytest.raises(InvalidOptionError, match="local_world_aligned"):
        kuka.jacobian(q, frame="body")
    with pytest.raises(InvalidOptionError, match="frame='local_world_aligned' or 'local'"):
        kuka.jacobian(q, frame="world", point=torch.zeros(3, dtype=F64))
    with pytest.raises(ShapeError, match=r"\(3,\) or \(2, 3\)"):
        kuka.jacobian(q, point=torch.zeros(3, 2, dtype=F64))
    with pytest.raises(DtypeError, match="floating point"):
        kuka.jacobian(q, point=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ArgumentTypeError, match=r"shape \(3,\)"):
        kuka.jacobian(q, point="tip")
    with pytest.raises(InvalidOptionError, match="end links are \\['iiwa_link_ee'\\]"):
        kuka.fk(q, end="iiwa_link_3")
    with pytest.raises(InvalidOptionError, match="non-empty list"):
        kuka.fk(q, end=[])
    with pytest.raises(InvalidOptionError, match="non-empty list"):
        kuka.fk(q, end=3)


def test_urdf_sources() -> None:
    with pytest.raises(InvalidOptionError, match="neither a URDF file"):
        Chain.from_urdf("/no/such/robot.urdf")
    with pytest.raises(InvalidOptionError, match="does not exist"):
        Chain.from_urdf(robot_path("kuka_iiwa7").with_name("none.urdf"))
    with pytest.raises(ArgumentTypeError, match=r"path to a \.urdf file"):
        Chain.from_urdf(3)
    with pytest.raises(InvalidOptionError, match="could not read the URDF"):
        Chain.from_urdf("<robot name='r'><link name='a'>")
    with pytest.raises(InvalidOptionError, match="no joints"):
        Chain.from_urdf("<robot name='r'><link name='a'/></robot>")
    assert Chain.from_urdf(robot_path("kuka_iiwa7").read_bytes()).dof == 7


@pytest.mark.parametrize("kind", ["planar", "floating"])
def test_planar_and_floating_joints_are_refused(kind: str) -> None:
    xml = _one(f'<joint name="j" type="{kind}"><parent link="a"/><child link="b"/></joint>')
    with pytest.raises(InvalidOptionError, match="base frame of the chain"):
        Chain.from_urdf(xml)


def test_ends_and_base() -> None:
    path = robot_path("gripper")
    with pytest.raises(InvalidOptionError, match=r"2 leaf links.*left_tip.*right_tip.*end="):
        Chain.from_urdf(path)
    with pytest.raises(InvalidOptionError, match="not a link of the robot"):
        Chain.from_urdf(path, end="thumb")
    with pytest.raises(InvalidOptionError, match="twice"):
        Chain.from_urdf(path, end=["left_tip", "left_tip"])
    with pytest.raises(InvalidOptionError, match="non-empty list"):
        Chain.from_urdf(path, end=[])
    with pytest.raises(InvalidOptionError, match="not below base='left_finger'"):
        Chain.from_urdf(path, end="right_tip", base="left_finger")
    with pytest.raises(InvalidOptionError, match="base='nowhere' is not a link"):
        Chain.from_urdf(path, end="right_tip", base="nowhere")
    with pytest.raises(ArgumentTypeError, match="base must be a link name"):
        Chain.from_urdf(path, end="right_tip", base=1)


def test_bad_mimic_and_axis() -> None:
    mimic = _one('<joint name="j" type="revolute"><parent link="a"/><child link="b"/>'
                 '<axis xyz="0 0 1"/><limit lower="-1" upper="1" effort="1" velocity="1"/>'
                 '<mimic joint="ghost"/></joint>')
    with pytest.raises(InvalidOptionError, match="mimics 'ghost'"):
        Chain.from_urdf(mimic)
    axis = _one('<joint name="j" type="continuous"><parent link="a"/><child link="b"/>'
                '<axis xyz="0 0 0"/></joint>')
    with pytest.raises(InvalidOptionError, match="zero or non-finite axis"):
        Chain.from_urdf(axis)


def test_bad_dh() -> None:
    with pytest.raises(ShapeError, match=r"\(n_joints, 4\)"):
        Chain.from_dh([[0.0, 1.0, 2.0]])
    with pytest.raises(ShapeError, match=r"\(n_joints, 4\)"):
        Chain.from_dh([])
    with pytest.raises(ArgumentTypeError, match="rows of 4 numbers"):
        Chain.from_dh([["a", "b", "c", "d"]])
    with pytest.raises(InvalidOptionError, match="NaN or Inf"):
        Chain.from_dh([[0.0, 0.0, float("nan"), 0.0]])
    with pytest.raises(InvalidOptionError, match="'standard' or 'modified'"):
        Chain.from_dh(UR5_DH, convention="craig")
    with pytest.raises(InvalidOptionError, match="'standard' or 'modified'"):
        Chain.from_dh(UR5_DH, convention=1)
    with pytest.raises(InvalidOptionError, match="'R' \\(revolute\\) or 'P'"):
        Chain.from_dh(UR5_DH, joint_types="RRR")
    with pytest.raises(ArgumentTypeError, match="joint_types"):
        Chain.from_dh(UR5_DH, joint_types=5)
    with pytest.raises(ShapeError, match=r"limits must have shape \(6, 2\)"):
        Chain.from_dh(UR5_DH, limits=[[0.0, 1.0]])
    with pytest.raises(InvalidOptionError, match="lower ≤ upper"):
        Chain.from_dh(UR5_DH, limits=[[1.0, 0.0]] * 6)
    with pytest.raises(ShapeError, match=r"base must have shape \(4, 4\)"):
        Chain.from_dh(UR5_DH, base=torch.eye(3))
    with pytest.raises(InvalidOptionError, match="tool has NaN"):
        Chain.from_dh(UR5_DH, tool=torch.full((4, 4), float("inf")))
