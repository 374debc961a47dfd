"""URDF files of three arms shipped with jacobite, so that examples run after ``pip install``.

Kinematics only (no meshes, no inertia), each written from the maker's published kinematic
parameters: ``"kuka_iiwa7"`` (KUKA LBR iiwa 7 R800, end link ``iiwa_link_ee``), ``"ur5"``
(Universal Robots UR5, end link ``tool0``) and ``"panda"`` (Franka Emika Panda arm without the
hand, end link ``panda_link8``). Each file's header comment names its source parameters.

>>> from jacobite.kinematics import example_urdf
>>> example_urdf("ur5").name
'ur5.urdf'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .._validate import choice

__all__ = ["EXAMPLE_ROBOTS", "example_urdf"]

#: the arms :func:`example_urdf` knows, each with its end link
EXAMPLE_ROBOTS = {"kuka_iiwa7": "iiwa_link_ee", "ur5": "tool0", "panda": "panda_link8"}


def example_urdf(name: str) -> Path:
    """The path of a shipped example robot's URDF file, for ``Chain.from_urdf``.

    Args:
        name: ``"kuka_iiwa7"``, ``"ur5"`` or ``"panda"`` (:data:`EXAMPLE_ROBOTS`).

    >>> from jacobite.kinematics import Chain, example_urdf
    >>> Chain.from_urdf(example_urdf("panda")).dof
    7
    """
    name = choice(name, "name", tuple(EXAMPLE_ROBOTS))
    return Path(str(resources.files("jacobite.kinematics") / "data" / f"{name}.urdf"))
