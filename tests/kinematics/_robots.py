"""The robot fixtures of the kinematics tests (the arms jacobite ships, from
:func:`jacobite.kinematics.example_urdf`, and a made-up gripper in ``robots/``), shared by the
tests.

>>> load("kuka_iiwa7").dof
7
"""

from __future__ import annotations

import math
from pathlib import Path

ROBOTS = Path(__file__).resolve().parent / "robots"

#: a batch size above which configurations are composed joint by joint (the few-configuration
#: route takes all frames from one triangular solve): tests cover both routes
MANY = 70

#: the fixtures and their end links
ENDS = {
    "kuka_iiwa7": "iiwa_link_ee",
    "ur5": "tool0",
    "panda": "panda_link8",
    "gripper": None,
}


def robot_path(name: str) -> Path:
    """The URDF file of a fixture robot (``kuka_iiwa7``, ``ur5``, ``panda``, ``gripper``)."""
    from jacobite.kinematics import EXAMPLE_ROBOTS, example_urdf

    if name in EXAMPLE_ROBOTS:
        return example_urdf(name)
    path = ROBOTS / f"{name}.urdf"
    if not path.is_file():
        raise FileNotFoundError(f"no robot fixture {name!r}; have {sorted(ENDS)}")
    return path


def urdf_text(name: str) -> str:
    """The URDF XML of a fixture robot."""
    return robot_path(name).read_text()


def load(name: str, **kwargs: object):
    """A :class:`jacobite.kinematics.Chain` of a fixture robot (keyword arguments go to
    ``Chain.from_urdf``)."""
    from jacobite.kinematics import Chain

    if "end" not in kwargs and ENDS.get(name) is not None:
        kwargs["end"] = ENDS[name]
    return Chain.from_urdf(robot_path(name), **kwargs)  # type: ignore[arg-type]


#: UR5 standard DH table (a, alpha, d, theta_offset), as published by Universal Robots;
#: ur5.urdf is the same chain.
UR5_DH = [
    [0.0, math.pi / 2, 0.089159, 0.0],
    [-0.425, 0.0, 0.0, 0.0],
    [-0.39225, 0.0, 0.0, 0.0],
    [0.0, math.pi / 2, 0.10915, 0.0],
    [0.0, -math.pi / 2, 0.09465, 0.0],
    [0.0, 0.0, 0.0823, 0.0],
]

#: Franka Panda modified DH table (a_{i-1}, alpha_{i-1}, d_i, theta_offset), as published by
#: Franka; with the flange tool Tz(0.107) it is panda.urdf's chain.
PANDA_MDH = [
    [0.0, 0.0, 0.333, 0.0],
    [0.0, -math.pi / 2, 0.0, 0.0],
    [0.0, math.pi / 2, 0.316, 0.0],
    [0.0825, math.pi / 2, 0.0, 0.0],
    [-0.0825, -math.pi / 2, 0.384, 0.0],
    [0.0, math.pi / 2, 0.0, 0.0],
    [0.088, math.pi / 2, 0.0, 0.0],
]
PANDA_FLANGE = 0.107
