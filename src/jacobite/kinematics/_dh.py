"""Denavit–Hartenberg tables to :class:`._tree.JointSpec` (standard and modified conventions).

Rows are ``(a, alpha, d, theta_offset)``. Standard (Denavit–Hartenberg 1955, Spong):
``A_i = Rz(θ_i) Tz(d_i) Tx(a_i) Rx(α_i)``; modified (Craig): ``A_i = Rx(α_i) Tx(a_i) Rz(θ_i)
Tz(d_i)``, the row holding ``a_{i-1}, α_{i-1}`` of the previous link. A revolute joint adds
``q_i`` to ``θ_i``, a prismatic one adds ``q_i`` to ``d_i``. Both become a joint about (along)
the local z axis after a constant transform:

>>> import numpy as np
>>> joints = dh_joints(np.array([[1.0, 0.0, 0.0, 0.0]]), "standard", "R", None, None, None)
>>> [j.kind for j in joints], float(joints[-1].origin[0, 3])
(['revolute', 'fixed'], 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentTypeError, InvalidOptionError, ShapeError
from ._tree import JointSpec

__all__ = ["dh_joints", "rot_x", "rot_z", "trans"]


def rot_x(t: float) -> np.ndarray:
    c, s = math.cos(t), math.sin(t)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]], dtype=np.float64)


def rot_z(t: float) -> np.ndarray:
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float64)


def trans(x: float, y: float, z: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


def _matrix(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value,
                         dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"{name} must be an array of numbers, got {value!r}") from exc
    if arr.shape != shape:
        raise ShapeError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidOptionError(f"{name} has NaN or Inf entries; give finite numbers")
    return arr


def _table(table: Any) -> np.ndarray:
    try:
        arr = np.asarray(table.detach().cpu() if hasattr(table, "detach") else table,
                         dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            "the DH table must be rows of 4 numbers (a, alpha, d, theta_offset), got "
            f"{type(table).__name__}"
        ) from exc
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise ShapeError(
            "the DH table must have shape (n_joints, 4) with columns (a, alpha, d, "
            f"theta_offset), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise InvalidOptionError("the DH table has NaN or Inf entries; give finite numbers")
    return arr


def _types(joint_types: str | Sequence[str] | None, n: int) -> list[str]:
    if joint_types is None:
        return ["R"] * n
    if not isinstance(joint_types, (str, list, tuple)):
        raise ArgumentTypeError(
            f"joint_types must be a string such as 'RRPRRR' or a list of 'R'/'P', got "
            f"{type(joint_types).__name__}"
        )
    types = [str(t).upper() for t in joint_types]
    if len(types) != n or any(t not in ("R", "P") for t in types):
        raise InvalidOptionError(
            f"joint_types must give 'R' (revolute) or 'P' (prismatic) for each of the {n} "
            f"rows, got {joint_types!r}"
        )
    return types


def dh_joints(table: Any, convention: str, joint_types: str | Sequence[str] | None,
              limits: Any, base: Any, tool: Any) -> list[JointSpec]:
    """The joints ``joint1 … jointN`` from ``link0`` to ``linkN``, then a fixed joint to the
    end link ``"end"`` (the tool frame)."""
    rows = _table(table)
    n = rows.shape[0]
    types = _types(joint_types, n)
    if convention not in ("standard", "modified"):
        raise InvalidOptionError(
            f"convention must be 'standard' or 'modified', got {convention!r}"
        )
    lim = np.full((n, 2), [-math.inf, math.inf]) if limits is None else np.asarray(
        _lim(limits, n))
    b = np.eye(4) if base is None else _matrix(base, "base", (4, 4))
    t = np.eye(4) if tool is None else _matrix(tool, "tool", (4, 4))
    consts = []
    for a, alpha, d, theta in rows:
        if convention == "standard":
            consts.append(rot_z(theta) @ trans(0, 0, d) @ trans(a, 0, 0) @ rot_x(alpha))
        else:
            consts.append(rot_x(alpha) @ trans(a, 0, 0) @ rot_z(theta) @ trans(0, 0, d))
    z = np.array([0.0, 0.0, 1.0])
    joints = []
    for i in range(n):
        if convention == "standard":  # A_i = motion(q_i) @ K_i: K_{i-1} precedes joint i
            origin = b if i == 0 else consts[i - 1]
        else:  # A_i = K_i @ motion(q_i)
            origin = b @ consts[i] if i == 0 else consts[i]
        joints.append(JointSpec(
            name=f"joint{i + 1}", kind="revolute" if types[i] == "R" else "prismatic",
            parent=f"link{i}", child=f"link{i + 1}", origin=origin, axis=z,
            lower=float(lim[i, 0]), upper=float(lim[i, 1])))
    last = consts[-1] @ t if convention == "standard" else t
    joints.append(JointSpec(name="tool", kind="fixed", parent=f"link{n}", child="end",
                            origin=last, axis=z))
    return joints


def _lim(limits: Any, n: int) -> np.ndarray:
    try:
        arr = np.asarray(limits.detach().cpu() if hasattr(limits, "detach") else limits,
                         dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"limits must be an array of shape ({n}, 2) of (lower, upper), got {limits!r}"
        ) from exc
    if arr.shape != (n, 2):
        raise ShapeError(f"limits must have shape ({n}, 2) of (lower, upper), got {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr[:, 0] > arr[:, 1]):
        raise InvalidOptionError(
            "limits must be (lower, upper) pairs with lower ≤ upper (±inf for none)"
        )
    return arr
