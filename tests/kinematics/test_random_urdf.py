"""Random URDF chains (any unit axes and origins, revolute / continuous / prismatic / fixed
and mimic joints) by hypothesis: the Jacobian in every frame against AD through fk, on both
routes, and fk against yourdfpy's own forward kinematics."""

from __future__ import annotations

import numpy as np
import torch
import yourdfpy
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jacobite.kinematics import FRAMES, Chain

from ._oracle import ad_jacobian
from ._robots import MANY

F64 = torch.float64
_num = st.floats(-1.0, 1.0, allow_nan=False)
_joint = st.fixed_dictionaries({
    "kind": st.sampled_from(["revolute", "continuous", "prismatic", "fixed", "mimic"]),
    "xyz": st.tuples(_num, _num, _num),
    "rpy": st.tuples(_num, _num, _num),
    "axis": st.tuples(_num, _num, _num).filter(lambda a: np.linalg.norm(a) > 0.1),
    "mult": st.floats(-2.0, 2.0),
    "offset": st.floats(-1.0, 1.0),
})


def _urdf(joints: list[dict]) -> str:
    links = "".join(f'<link name="l{i}"/>' for i in range(len(joints) + 1))
    body, first = [], None
    for i, j in enumerate(joints):
        kind, extra = j["kind"], ""
        if kind == "mimic" and first is None:
            kind = "revolute"
        if kind == "mimic":
            kind = "revolute"
            extra = (f'<mimic joint="{first}" multiplier="{j["mult"]}" '
                     f'offset="{j["offset"]}"/>')
        if kind in ("revolute", "prismatic"):
            extra += '<limit lower="-1" upper="1" effort="1" velocity="1"/>'
            if first is None:
                first = f"j{i}"
        xyz = " ".join(map(str, j["xyz"]))
        rpy = " ".join(map(str, j["rpy"]))
        axis = " ".join(map(str, np.asarray(j["axis"]) / np.linalg.norm(j["axis"])))
        body.append(f'<joint name="j{i}" type="{kind}"><parent link="l{i}"/>'
                    f'<child link="l{i + 1}"/><origin xyz="{xyz}" rpy="{rpy}"/>'
                    f'<axis xyz="{axis}"/>{extra}</joint>')
    return f'<robot name="r">{links}{"".join(body)}</robot>'


@settings(max_examples=20, deadline=None)
@given(joints=st.lists(_joint, min_size=1, max_size=6), seed=st.integers(0, 99))
@example(joints=[{"kind": "fixed", "xyz": (0.0, 0.0, 0.5), "rpy": (0.0, 0.0, 0.0),
                  "axis": (0.0, 0.0, 1.0), "mult": 0.0, "offset": 0.0}], seed=0)  # dof 0
def test_random_chains_match_ad_and_yourdfpy(joints: list[dict], seed: int) -> None:
    xml = _urdf(joints)
    chain = Chain.from_urdf(xml)
    q = torch.rand(MANY, chain.dof, dtype=F64, generator=torch.Generator().manual_seed(seed))
    q = 2 * q - 1
    urdf = yourdfpy.URDF.load(__import__("io").BytesIO(xml.encode()), load_meshes=False)
    pose = chain.fk(q)
    for b in (0, MANY - 1):
        urdf.update_cfg(q[b].numpy())
        np.testing.assert_allclose(pose[b].numpy(), urdf.get_transform(chain.end_names[0], "l0"),
                                   atol=1e-12)
    frame = FRAMES[seed % 3]
    many = chain.jacobian(q, frame=frame)
    for b in (2, MANY - 1):
        one = chain.jacobian(q[b], frame=frame)
        torch.testing.assert_close(many[b], one, atol=1e-12, rtol=0)
        torch.testing.assert_close(one, ad_jacobian(chain, q[b], frame), atol=1e-11, rtol=0)
