"""URDF to :class:`._tree.JointSpec` through ``yourdfpy`` (the ``robotics`` extra), meshes off.

>>> xml = '''<robot name="r"><link name="a"/><link name="b"/>
... <joint name="j" type="continuous"><parent link="a"/><child link="b"/>
... <axis xyz="0 0 1"/></joint></robot>'''
>>> [(j.name, j.kind, j.lower) for j in read_urdf(xml)]
[('j', 'revolute', -inf)]
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, InvalidOptionError, require
from ._tree import JointSpec

__all__ = ["read_urdf"]


def _source(path_or_string: Any) -> Any:
    """A file name or a file object holding the URDF, for ``yourdfpy.URDF.load``."""
    if isinstance(path_or_string, Path):
        if not path_or_string.is_file():
            raise InvalidOptionError(f"URDF file {str(path_or_string)!r} does not exist")
        return str(path_or_string)
    if isinstance(path_or_string, bytes):
        path_or_string = path_or_string.decode()
    if not isinstance(path_or_string, str):
        raise ArgumentTypeError(
            "from_urdf needs a path to a .urdf file or the URDF XML as a string, got "
            f"{type(path_or_string).__name__}; pass one of them"
        )
    text = path_or_string.lstrip()
    if text.startswith("<"):
        return io.BytesIO(text.encode())
    if not os.path.isfile(path_or_string):
        raise InvalidOptionError(
            f"{path_or_string[:80]!r} is neither a URDF file that exists nor URDF XML "
            "(a string starting with '<'); pass the file's path or its contents"
        )
    return path_or_string


def _well_formed(src: Any) -> None:
    """Refuse XML that is not well-formed (yourdfpy would recover a partial robot from it)."""
    from xml.etree import ElementTree

    try:
        if isinstance(src, io.BytesIO):
            ElementTree.fromstring(src.getvalue())
        else:
            ElementTree.parse(src)
    except ElementTree.ParseError as exc:
        raise InvalidOptionError(
            f"could not read the URDF: it is not well-formed XML ({exc}); make it well-formed"
        ) from exc


def read_urdf(path_or_string: Any) -> list[JointSpec]:
    """The joints of a URDF robot, in file order."""
    yourdfpy = require("yourdfpy", "robotics")
    src = _source(path_or_string)
    _well_formed(src)
    try:
        urdf = yourdfpy.URDF.load(src, build_scene_graph=False, load_meshes=False,
                                  build_collision_scene_graph=False,
                                  load_collision_meshes=False)
    except Exception as exc:  # yourdfpy and lxml raise many kinds
        raise InvalidOptionError(
            f"could not read the URDF ({type(exc).__name__}: {exc}); make sure it is "
            "well-formed XML with a <robot> element"
        ) from exc
    robot = urdf.robot
    if robot is None or not robot.joints:
        raise InvalidOptionError("the URDF has no joints; a chain needs at least one <joint>")
    out = []
    for j in robot.joints:
        kind = j.type
        if kind in ("planar", "floating"):
            raise InvalidOptionError(
                f"joint {j.name!r} is {kind}; a Chain takes revolute, continuous, prismatic, "
                "fixed and mimic joints: model a floating base as the base frame of the chain "
                "(pick base= below it) or as six prismatic/revolute joints"
            )
        if kind not in ("revolute", "continuous", "prismatic", "fixed"):
            raise InvalidOptionError(
                f"joint {j.name!r} has unknown type {kind!r}; use revolute, continuous, "
                "prismatic or fixed"
            )
        origin = np.eye(4) if j.origin is None else np.asarray(j.origin, dtype=np.float64)
        axis = np.array([1.0, 0.0, 0.0]) if j.axis is None else np.asarray(j.axis, np.float64)
        if kind != "fixed" and not (np.all(np.isfinite(axis)) and np.linalg.norm(axis) > 0):
            raise InvalidOptionError(
                f"joint {j.name!r} has a zero or non-finite axis {axis}; give a unit "
                "<axis xyz=...>"
            )
        lower, upper = -math.inf, math.inf
        if kind in ("revolute", "prismatic") and j.limit is not None:
            if j.limit.lower is not None:
                lower = float(j.limit.lower)
            if j.limit.upper is not None:
                upper = float(j.limit.upper)
        mimic = None
        if j.mimic is not None:
            mimic = (str(j.mimic.joint),
                     1.0 if j.mimic.multiplier is None else float(j.mimic.multiplier),
                     0.0 if j.mimic.offset is None else float(j.mimic.offset))
        out.append(JointSpec(
            name=str(j.name), kind="revolute" if kind == "continuous" else kind,
            parent=str(j.parent), child=str(j.child), origin=origin, axis=axis,
            lower=lower, upper=upper, mimic=mimic))
    return out
