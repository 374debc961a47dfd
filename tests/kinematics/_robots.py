"""The robot fixtures of the kinematics tests (URDF files in ``robots/``), shared by the tests,
the benchmarks and the docs.

>>> load("kuka_iiwa7").dof
7
"""

from __future__ import annotations

from pathlib import Path

ROBOTS = Path(__file__).resolve().parent / "robots"

#: the fixtures and their end links
ENDS = {
    "kuka_iiwa7": "iiwa_link_ee",
    "ur5": "tool0",
    "panda": "panda_link8",
    "gripper": None,
}


def robot_path(name: str) -> Path:
    """The URDF file of a fixture robot (``kuka_iiwa7``, ``ur5``, ``panda``, ``gripper``)."""
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
