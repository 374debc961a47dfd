"""The kinematic tree every loader builds: joints between links, reduced to the moving joints on
the way from a base link to the end links, with fixed joints folded into constant transforms.

A loader (URDF, DH) describes joints as :class:`JointSpec`; :func:`build_model` picks the joints
between ``base`` and the ends, resolves mimic joints to the independent ones and returns a
:class:`Model` of float64 NumPy constants that :mod:`._fk` turns into tensors.

>>> import numpy as np
>>> j = JointSpec("j1", "revolute", "base", "tip", np.eye(4), np.array([0.0, 0.0, 1.0]))
>>> m = build_model([j], end=None, base=None)
>>> m.dof, m.joint_names, m.end_names
(1, ('j1',), ('tip',))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidOptionError

__all__ = ["JointSpec", "Model", "build_model"]

KINDS = ("revolute", "continuous", "prismatic", "fixed")


@dataclass(frozen=True)
class JointSpec:
    """One joint: ``child``'s frame is ``parent``'s frame times ``origin`` times the joint's
    motion about (revolute) or along (prismatic) the unit ``axis``, given in the child's frame.
    ``mimic`` is ``(joint, multiplier, offset)``: this joint's value is
    ``multiplier * value(joint) + offset``."""

    name: str
    kind: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray
    lower: float = -math.inf
    upper: float = math.inf
    mimic: tuple[str, float, float] | None = None


@dataclass(frozen=True)
class Model:
    """The moving joints ("nodes", parents before children) from the base to the ends.

    ``parent[i]`` is the index of node ``i``'s nearest moving ancestor (-1: the base);
    ``origin[i]`` the constant transform from that ancestor's frame to node ``i``'s joint frame
    (fixed joints folded in); ``prismatic[i]`` whether it slides; its value is
    ``multiplier[i] * q[q_index[i]] + offset[i]``. End ``f`` is ``tool[f]`` after node
    ``end_parent[f]`` (-1: after the base)."""

    parent: np.ndarray
    origin: np.ndarray
    axis: np.ndarray
    prismatic: np.ndarray
    q_index: np.ndarray
    multiplier: np.ndarray
    offset: np.ndarray
    end_parent: np.ndarray
    tool: np.ndarray
    joint_names: tuple[str, ...]
    end_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    node_names: tuple[str, ...]

    @property
    def dof(self) -> int:
        return len(self.joint_names)


def _names(ends: Sequence[str]) -> str:
    shown = ", ".join(repr(e) for e in sorted(ends)[:12])
    return shown + (", ..." if len(ends) > 12 else "")


def _ends(end: str | Sequence[str] | None, leaves: list[str], links: set[str]) -> list[str]:
    if end is None:
        if len(leaves) != 1:
            raise InvalidOptionError(
                f"the robot has {len(leaves)} leaf links ({_names(leaves)}); pick the end "
                "frame(s) with end='<link>' or end=['<link>', ...]"
            )
        return leaves
    ends = [end] if isinstance(end, str) else list(end) if isinstance(end, (list, tuple)) else []
    if not ends or not all(isinstance(e, str) for e in ends):
        raise InvalidOptionError(
            f"end must be a link name or a non-empty list of link names, got {end!r}"
        )
    if len(set(ends)) != len(ends):
        raise InvalidOptionError(f"end names a link twice ({end!r}); list each link once")
    for e in ends:
        if e not in links:
            raise InvalidOptionError(
                f"end={e!r} is not a link of the robot; pick one of its links: "
                f"{_names(list(links))}"
            )
    return ends


def _resolve_mimic(spec: JointSpec, by_name: dict[str, JointSpec]) -> tuple[str, float, float]:
    """(independent joint, multiplier, offset) for a joint, following chains of mimics."""
    name, mult, off, seen = spec.name, 1.0, 0.0, {spec.name}
    cur = spec
    while cur.mimic is not None:
        target, m, o = cur.mimic
        if target not in by_name:
            raise InvalidOptionError(
                f"joint {cur.name!r} mimics {target!r}, which is not a joint of the robot; "
                "make its <mimic joint=...> name a joint of the robot"
            )
        if target in seen:
            raise InvalidOptionError(
                f"joint {spec.name!r} is part of a cycle of mimic joints; remove one <mimic> "
                "of the cycle"
            )
        seen.add(target)
        mult, off = mult * m, off * 1.0 + mult * o  # value = mult*(m*v + o) + off
        cur = by_name[target]
        name = cur.name
    if cur.kind == "fixed":
        raise InvalidOptionError(
            f"joint {spec.name!r} mimics the fixed joint {name!r}; make it mimic a moving joint"
        )
    return name, mult, off


def build_model(joints: Sequence[JointSpec], *, end: str | Sequence[str] | None,
                base: str | None) -> Model:
    """The :class:`Model` of the joints between ``base`` (default: the root link) and ``end``
    (default: the single leaf link)."""
    by_child = {j.child: j for j in joints}
    by_name = {j.name: j for j in joints}
    links = {j.parent for j in joints} | set(by_child)
    parents = {j.parent for j in joints}
    roots = sorted(parents - set(by_child))
    if base is None:
        base = roots[0] if roots else None
    if base is None or base not in links:
        raise InvalidOptionError(
            f"base={base!r} is not a link of the robot; pick one of its links: "
            f"{_names(list(links))}"
        )
    below: set[str] = set()  # links at or below base
    stack = [base]
    children: dict[str, list[JointSpec]] = {}
    for j in joints:
        children.setdefault(j.parent, []).append(j)
    order: list[JointSpec] = []  # joints below base, parents first
    while stack:
        link = stack.pop()
        below.add(link)
        for j in reversed(children.get(link, [])):
            order.append(j)
            stack.append(j.child)
    order.sort(key=lambda j: _depth(j, by_child))
    leaves = [j.child for j in order if j.child not in children]
    if not order:
        leaves = [base]
    ends = _ends(end, leaves, links)
    for e in ends:
        if e not in below:
            raise InvalidOptionError(
                f"end={e!r} is not below base={base!r}; pick a base among its ancestors or "
                "leave base=None for the root link"
            )
    used: set[str] = set()
    for e in ends:
        link = e
        while link != base:
            j = by_child[link]
            used.add(j.name)
            link = j.parent
    # fold fixed joints: a link's frame is `transform` after node `node`
    state: dict[str, tuple[int, np.ndarray]] = {base: (-1, np.eye(4))}
    parent, origin, axis, prism, names, independent = [], [], [], [], [], []
    qref: list[tuple[str, float, float]] = []
    for j in order:
        if j.name not in used:
            continue
        node, acc = state[j.parent]
        if j.kind == "fixed":
            state[j.child] = (node, acc @ j.origin)
            continue
        ref = _resolve_mimic(j, by_name)
        if ref[0] not in independent:
            independent.append(ref[0])
        parent.append(node)
        origin.append(acc @ j.origin)
        axis.append(np.asarray(j.axis, dtype=np.float64) / np.linalg.norm(j.axis))
        prism.append(j.kind == "prismatic")
        names.append(j.name)
        qref.append(ref)
        state[j.child] = (len(parent) - 1, np.eye(4))
    lower = np.array([by_name[n].lower for n in independent], dtype=np.float64)
    upper = np.array([by_name[n].upper for n in independent], dtype=np.float64)
    return Model(
        parent=np.array(parent, dtype=np.int64),
        origin=np.array(origin, dtype=np.float64).reshape(-1, 4, 4),
        axis=np.array(axis, dtype=np.float64).reshape(-1, 3),
        prismatic=np.array(prism, dtype=bool),
        q_index=np.array([independent.index(r[0]) for r in qref], dtype=np.int64),
        multiplier=np.array([r[1] for r in qref], dtype=np.float64),
        offset=np.array([r[2] for r in qref], dtype=np.float64),
        end_parent=np.array([state[e][0] for e in ends], dtype=np.int64),
        tool=np.array([state[e][1] for e in ends], dtype=np.float64).reshape(-1, 4, 4),
        joint_names=tuple(independent),
        end_names=tuple(ends),
        lower=lower,
        upper=upper,
        node_names=tuple(names),
    )


def _depth(j: JointSpec, by_child: dict[str, JointSpec]) -> int:
    d, link = 0, j.parent
    while link in by_child:
        link = by_child[link].parent
        d += 1
    return d
