"""Chain.fk / jacobian / fk_and_jacobian against automatic differentiation through fk, in all
three frames, with reference points, several ends, mimic, fixed and prismatic joints, on both
routes (a few configurations and many), in float32 and float64, under gradcheck and vmap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yourdfpy

from jacobite.kinematics import FRAMES, Chain

from ._oracle import ad_jacobian
from ._robots import MANY, load, robot_path

F64 = torch.float64


def _q(chain: Chain, n: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lo, hi = chain.lower.clamp(min=-3.0), chain.upper.clamp(max=3.0)
    return (lo + (hi - lo) * torch.rand(n, chain.dof, generator=g, dtype=F64)).to(dtype)


@pytest.mark.parametrize("n", [3, MANY])  # both routes: few configurations and many
@pytest.mark.parametrize("frame", FRAMES)
def test_kuka_jacobian_matches_ad_through_fk(frame: str, n: int) -> None:
    chain = load("kuka_iiwa7")
    q = _q(chain, n, seed=n)
    jac = chain.jacobian(q, frame=frame)
    assert jac.shape == (n, 6, 7)
    for b in range(0, n, 6):
        torch.testing.assert_close(jac[b], ad_jacobian(chain, q[b], frame), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [2, MANY])
@pytest.mark.parametrize("frame", ["local", "local_world_aligned"])
def test_point_per_configuration_matches_ad(frame: str, n: int) -> None:
    chain = load("ur5")
    q = _q(chain, n, seed=1)
    pts = torch.randn(n, 3, dtype=F64, generator=torch.Generator().manual_seed(2)) * 0.1
    jac = chain.jacobian(q, frame=frame, point=pts)
    for b in range(0, n, 6):
        torch.testing.assert_close(jac[b], ad_jacobian(chain, q[b], frame, point=pts[b]),
                                   atol=1e-12, rtol=0)
    # the world frame's reference point is fixed: its Jacobian ignores where the end is
    jp = chain.jacobian(q, frame="local_world_aligned", point=pts)
    jw = chain.jacobian(q, frame="world")
    p = chain.fk(q)[:, :3, 3] + (chain.fk(q)[:, :3, :3] @ pts.unsqueeze(-1)).squeeze(-1)
    moved = jp[:, :3] - torch.linalg.cross(jp[:, 3:], p.unsqueeze(-1).expand(-1, -1, 6), dim=1)
    torch.testing.assert_close(moved, jw[:, :3], atol=1e-12, rtol=0)


def test_gripper_mimic_fixed_and_prismatic_joints() -> None:
    chain = load("gripper", end=["left_tip", "right_tip"])
    assert chain.joint_names == ("lift", "wrist", "finger_left_joint")
    assert chain.end_names == ("left_tip", "right_tip")
    torch.testing.assert_close(chain.lower, torch.tensor([0.0, -np.inf, 0.0], dtype=F64))
    torch.testing.assert_close(chain.upper, torch.tensor([0.3, np.inf, 0.8], dtype=F64))
    urdf = yourdfpy.URDF.load(str(robot_path("gripper")), build_scene_graph=True,
                              load_meshes=False)
    for n in (3, MANY):
        q = _q(chain, n, seed=n)
        pose = chain.fk(q)
        assert pose.shape == (n, 2, 4, 4)
        for b in range(0, n, 5):
            urdf.update_cfg(q[b].numpy())
            for e, link in enumerate(chain.end_names):
                want = urdf.get_transform(link, "base_link")
                np.testing.assert_allclose(pose[b, e].numpy(), want, atol=1e-12)
        for frame in FRAMES:
            jac = chain.jacobian(q, frame=frame)
            assert jac.shape == (n, 2, 6, 3)
            for b in range(0, n, 9):
                for e, link in enumerate(chain.end_names):
                    torch.testing.assert_close(
                        jac[b, e], ad_jacobian(chain, q[b], frame, end=link), atol=1e-12, rtol=0)
    pt = torch.tensor([0.01, -0.02, 0.03], dtype=F64)
    for n in (3, MANY):
        q = _q(chain, n, seed=11)
        for frame in ("local", "local_world_aligned"):
            jac = chain.jacobian(q, frame=frame, point=pt)
            for e, link in enumerate(chain.end_names):
                torch.testing.assert_close(jac[-1, e], ad_jacobian(chain, q[-1], frame, pt, link),
                                           atol=1e-12, rtol=0)
    # a prismatic joint moves without turning; the mimic finger turns the other way
    jac = chain.jacobian(_q(chain, 1, seed=0)[0])
    assert torch.all(jac[:, 3:, 0] == 0)
    torch.testing.assert_close(jac[0, 3:, 2], -jac[1, 3:, 2], atol=1e-14, rtol=0)


def test_end_selection_matches_single_end_chains() -> None:
    both = load("gripper", end=["left_tip", "right_tip"])
    right = load("gripper", end="right_tip")
    for n in (2, MANY):
        q = _q(both, n, seed=5)
        torch.testing.assert_close(both.fk(q, end="right_tip"), right.fk(q))
        torch.testing.assert_close(both.jacobian(q, end="right_tip", frame="local"),
                                   right.jacobian(q, frame="local"))
        picked = both.fk_and_jacobian(q, end=["right_tip", "left_tip"], frame="world")
        torch.testing.assert_close(picked[0], both.fk(q).flip(1))
        torch.testing.assert_close(picked[1], both.jacobian(q, frame="world").flip(1))


def test_intermediate_link_as_an_end_has_zero_columns_after_it() -> None:
    chain = load("kuka_iiwa7", end=["iiwa_link_4", "iiwa_link_ee"])
    for n in (1, MANY):
        q = _q(chain, n, seed=3)
        jac = chain.jacobian(q)
        assert torch.all(jac[:, 0, :, 4:] == 0)
        torch.testing.assert_close(jac[:, 1], load("kuka_iiwa7").jacobian(q))
        torch.testing.assert_close(jac[0, 0], ad_jacobian(chain, q[0], end="iiwa_link_4"),
                                   atol=1e-12, rtol=0)


def test_base_link_below_the_root() -> None:
    full = load("kuka_iiwa7")
    sub = load("kuka_iiwa7", base="iiwa_link_2")
    assert sub.joint_names == tuple(f"iiwa_joint_{i}" for i in range(3, 8))
    q = _q(full, 4, seed=9)
    t2 = load("kuka_iiwa7", end="iiwa_link_2").fk(q[:, :2])
    torch.testing.assert_close(t2 @ sub.fk(q[:, 2:]), full.fk(q))


@pytest.mark.parametrize("n", [2, MANY])
def test_float32_keeps_dtype_and_agrees_with_float64(n: int) -> None:
    chain = load("panda")
    q = _q(chain, n, seed=4)
    pose32, jac32 = chain.fk_and_jacobian(q.float(), frame="local")
    assert pose32.dtype == jac32.dtype == torch.float32
    pose, jac = chain.fk_and_jacobian(q, frame="local")
    torch.testing.assert_close(pose32.double(), pose, atol=1e-5, rtol=0)
    torch.testing.assert_close(jac32.double(), jac, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n", [1, MANY])
def test_gradcheck_float64(n: int) -> None:
    chain = load("gripper", end=["left_tip", "right_tip"])
    q = _q(chain, n, seed=2).requires_grad_()
    pt = torch.tensor([0.01, 0.02, -0.03], dtype=F64, requires_grad=True)
    for frame in FRAMES if n == 1 else ["local"]:
        def f(v, p, frame=frame):
            return chain.fk_and_jacobian(v, frame=frame,
                                         point=None if frame == "world" else p)
        assert torch.autograd.gradcheck(f, (q, pt), fast_mode=n > 1)
    kuka = load("kuka_iiwa7")
    assert torch.autograd.gradcheck(kuka.jacobian, (_q(kuka, n, 1).requires_grad_(),),
                                    fast_mode=n > 1)


def test_vmap_and_leading_batch_dims_match_the_batch() -> None:
    chain = load("kuka_iiwa7")
    q = _q(chain, 2 * MANY, seed=8)
    jac = chain.jacobian(q, frame="world")
    torch.testing.assert_close(torch.func.vmap(lambda v: chain.jacobian(v, frame="world"))(q),
                               jac)
    torch.testing.assert_close(chain.jacobian(q.view(2, MANY, 7), frame="world"),
                               jac.view(2, MANY, 6, 7))
    inner = torch.func.vmap(lambda v: chain.jacobian(v, frame="world"))(q.view(2, MANY, 7))
    torch.testing.assert_close(inner, jac.view(2, MANY, 6, 7))
    torch.testing.assert_close(chain.fk(q.tolist()), chain.fk(q))


def test_a_chain_of_fixed_joints_only_is_constant() -> None:
    xml = ('<robot name="r"><link name="a"/><link name="b"/><joint name="j" type="fixed">'
           '<parent link="a"/><child link="b"/><origin xyz="1 2 3"/></joint></robot>')
    chain = Chain.from_urdf(xml)
    assert chain.dof == 0
    pose, jac = chain.fk_and_jacobian(torch.zeros(5, 0, dtype=F64))
    assert jac.shape == (5, 6, 0)
    torch.testing.assert_close(pose[:, :3, 3], torch.tensor([[1.0, 2.0, 3.0]] * 5,
                                                            dtype=F64))


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    chain = load("kuka_iiwa7")
    for n in (1, 1000):
        q = _q(chain, n, seed=0)
        pose, jac = chain.fk_and_jacobian(q.cuda(), frame="local")
        assert jac.device.type == "cuda"
        torch.testing.assert_close(jac.cpu(), chain.jacobian(q, frame="local"))
        torch.testing.assert_close(pose.cpu(), chain.fk(q))


def test_a_chain_without_movable_joints_has_a_constant_pose_and_an_empty_jacobian() -> None:
    xml = ('<robot name="r"><link name="a"/><link name="b"/><joint name="j" type="fixed">'
           '<parent link="a"/><child link="b"/><origin xyz="0 0 1" rpy="0 0 0.5"/></joint>'
           '</robot>')
    chain = Chain.from_urdf(xml)
    assert chain.dof == 0
    q = torch.zeros(0, dtype=torch.float64)
    expected = torch.eye(4, dtype=torch.float64)
    expected[:2, :2] = torch.tensor([[math.cos(0.5), -math.sin(0.5)],
                                     [math.sin(0.5), math.cos(0.5)]], dtype=torch.float64)
    expected[2, 3] = 1.0
    torch.testing.assert_close(chain.fk(q), expected)
    assert chain.jacobian(q).shape == (6, 0)
    assert chain.jacobian(torch.zeros(3, 0, dtype=torch.float64)).shape == (3, 6, 0)
    assert chain.fk(torch.zeros(2, 3, 0, dtype=torch.float64)).shape == (2, 3, 4, 4)
