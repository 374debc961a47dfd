"""Chain.from_dh against a NumPy product of DH matrices written out independently, and against
the equivalent URDF chains (UR5: standard DH, Panda: modified DH), with prismatic rows, base,
tool and limits; random tables by hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.kinematics import FRAMES, Chain

from ._oracle import ad_jacobian, dh_fk
from ._robots import MANY, PANDA_FLANGE, PANDA_MDH, UR5_DH, load

F64 = torch.float64


def _pose(xyz, rpy) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = (math.cos(r), math.sin(r), math.cos(p), math.sin(p),
                              math.cos(y), math.sin(y))
    t = np.eye(4)
    t[:3, :3] = [[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                 [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                 [-sp, cp * sr, cp * cr]]
    t[:3, 3] = xyz
    return t


@pytest.mark.parametrize("convention", ["standard", "modified"])
@pytest.mark.parametrize("n", [3, MANY])
def test_fk_matches_the_numpy_product(convention: str, n: int) -> None:
    table = np.array([[0.3, 0.4, 0.1, 0.2], [-0.2, -1.1, 0.05, -0.4], [0.15, 2.0, -0.3, 1.0],
                      [0.0, 0.7, 0.2, 0.0]])
    types = "RPRP"
    base, tool = _pose([0.1, -0.2, 0.3], [0.3, -0.2, 0.9]), _pose([0.0, 0.05, 0.1], [1, 2, 3])
    chain = Chain.from_dh(table, convention=convention, joint_types=types, base=base,
                          tool=torch.as_tensor(tool))
    q = torch.randn(n, 4, dtype=F64, generator=torch.Generator().manual_seed(n))
    pose = chain.fk(q).numpy()
    for b in range(n):
        want = dh_fk(table, q[b].numpy(), modified=convention == "modified", types=types,
                     base=base, tool=tool)
        np.testing.assert_allclose(pose[b], want, atol=1e-13)
    for frame in FRAMES:
        torch.testing.assert_close(chain.jacobian(q[1], frame=frame),
                                   ad_jacobian(chain, q[1], frame), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [2, MANY])
def test_ur5_standard_dh_is_the_ur5_urdf(n: int) -> None:
    dh, urdf = Chain.from_dh(UR5_DH), load("ur5")
    q = torch.rand(n, 6, dtype=F64, generator=torch.Generator().manual_seed(1)) * 6 - 3
    for frame in FRAMES:
        p1, j1 = dh.fk_and_jacobian(q, frame=frame)
        p2, j2 = urdf.fk_and_jacobian(q, frame=frame)
        torch.testing.assert_close(p1, p2, atol=1e-12, rtol=0)
        torch.testing.assert_close(j1, j2, atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [2, MANY])
def test_panda_modified_dh_is_the_panda_urdf(n: int) -> None:
    urdf = load("panda")
    tool = np.eye(4)
    tool[2, 3] = PANDA_FLANGE
    limits = torch.stack([urdf.lower, urdf.upper], dim=1)
    dh = Chain.from_dh(PANDA_MDH, convention="modified", tool=tool, limits=limits)
    torch.testing.assert_close(dh.lower, urdf.lower)
    torch.testing.assert_close(dh.upper, urdf.upper)
    q = urdf.lower + (urdf.upper - urdf.lower) * torch.rand(
        n, 7, dtype=F64, generator=torch.Generator().manual_seed(2))
    for frame in FRAMES:
        p1, j1 = dh.fk_and_jacobian(q, frame=frame)
        p2, j2 = urdf.fk_and_jacobian(q, frame=frame)
        torch.testing.assert_close(p1, p2, atol=1e-12, rtol=0)
        torch.testing.assert_close(j1, j2, atol=1e-12, rtol=0)


def test_default_limits_are_unbounded_and_names_are_numbered() -> None:
    chain = Chain.from_dh(UR5_DH, joint_types="RRRRRP")
    assert chain.joint_names == tuple(f"joint{i}" for i in range(1, 7))
    assert chain.end_names == ("end",)
    assert torch.all(chain.lower == -math.inf) and torch.all(chain.upper == math.inf)
    assert chain.lower.dtype == F64


_row = st.tuples(st.floats(-1, 1), st.floats(-math.pi, math.pi), st.floats(-1, 1),
                 st.floats(-math.pi, math.pi))


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=7), modified=st.booleans(),
       types=st.lists(st.sampled_from("RP"), min_size=7, max_size=7), seed=st.integers(0, 99))
def test_random_tables_match_the_product_and_ad(rows, modified, types, seed) -> None:
    table = np.array(rows)
    kinds = "".join(types[:len(rows)])
    chain = Chain.from_dh(table, convention="modified" if modified else "standard",
                          joint_types=kinds)
    q = torch.randn(MANY, len(rows), dtype=F64, generator=torch.Generator().manual_seed(seed))
    pose = chain.fk(q)
    for b in (0, MANY - 1):
        want = dh_fk(table, q[b].numpy(), modified=modified, types=kinds)
        np.testing.assert_allclose(pose[b].numpy(), want, atol=1e-12)
    frame = FRAMES[seed % 3]
    jac_many, jac_one = chain.jacobian(q, frame=frame), chain.jacobian(q[3], frame=frame)
    torch.testing.assert_close(jac_many[3], jac_one, atol=1e-12, rtol=0)
    torch.testing.assert_close(jac_one, ad_jacobian(chain, q[3], frame), atol=1e-11, rtol=0)


def test_a_long_chain_composes_joint_by_joint_even_for_one_configuration() -> None:
    # 40 joints: too many for the one-solve route, so every batch size composes joint by joint
    table = np.random.default_rng(1).uniform(-1, 1, (40, 4))
    chain = Chain.from_dh(table, joint_types="RP" * 20)
    q = torch.rand(3, 40, dtype=F64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(chain.fk(q[1]).numpy(),
                               dh_fk(table, q[1].numpy(), modified=False, types="RP" * 20),
                               atol=1e-12)
    for frame in FRAMES:
        jac = chain.jacobian(q, frame=frame)
        torch.testing.assert_close(jac[1], ad_jacobian(chain, q[1], frame), atol=1e-11, rtol=0)
        torch.testing.assert_close(chain.jacobian(q[1], frame=frame), jac[1])
