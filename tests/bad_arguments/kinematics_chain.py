"""Entries for robot chains (jacobite.kinematics.Chain: construction, fk, Jacobians, analytic
Jacobians) and orientation parameters."""

from __future__ import annotations

import torch

from jacobite import kinematics as K
from jacobite.errors import ArgumentTypeError, InvalidOptionError, ShapeError

from . import F64, choice, entry, tensor, typed

ARM = K.Chain.from_dh([[0.5, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]])  # dof 2: (3,) is wrong
Q = torch.tensor([0.3, -0.5], dtype=F64)
TABLE = [[0.5, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]]
XML = ('<robot name="r"><link name="a"/><link name="b"/><joint name="j" type="revolute">'
       '<parent link="a"/><child link="b"/><axis xyz="0 0 1"/>'
       '<limit lower="-1" upper="1" effort="1" velocity="1"/></joint></robot>')
_T, _V = ArgumentTypeError, InvalidOptionError
_q = tensor(0, (2, 3), (), none=True)
_end = [typed("end", "nowhere", _V), typed("end", 3, _V), typed("end", [], _V)]
_point = [typed("point", "tip", _T), typed("point", torch.ones(2, dtype=F64), ShapeError),
          ("point", torch.ones(3, dtype=torch.int64))]

ENTRIES = [
    entry("jacobite.kinematics.Chain", K.Chain, ARM._model,
          cases=[typed(0, v, _T) for v in ("robot.urdf", None, 3, TABLE, torch.ones(3))]
          + [typed("base", v, _T) for v in ("x", torch.eye(4), [[1.0]])]),
    entry("jacobite.kinematics.Chain.from_urdf", K.Chain.from_urdf, XML,
          cases=[typed(0, 3, _T), typed(0, None, _T), typed(0, "no/such/file.urdf", _V),
                 typed(0, "<robot name='r'><link", _V), typed(0, "<robot name='r'/>", _V),
                 *_end, typed("base", 1, _T), typed("base", "nowhere", _V)]),
    entry("jacobite.kinematics.example_urdf", K.example_urdf, "ur5",
          cases=[typed(0, v, _V) for v in ("pr2", "UR5", "", "ur5.urdf", 3, None, ["ur5"],
                                            b"ur5")]),
    entry("jacobite.kinematics.Chain.from_dh", K.Chain.from_dh, TABLE,
          cases=[typed(0, "abc", _T), (0, None), typed(0, [[1.0, 2.0, 3.0]], ShapeError),
                 typed(0, [[0.0, 0.0, float("nan"), 0.0]], _V), *choice("convention"),
                 typed("joint_types", "RX", _V), typed("joint_types", 5, _T),
                 typed("limits", [[0.0, 1.0]], ShapeError),
                 typed("base", torch.eye(3), ShapeError), typed("tool", "abc", _T)]),
    entry("jacobite.kinematics.Chain.fk", ARM.fk, Q, cases=[*_q, *_end]),
    entry("jacobite.kinematics.Chain.jacobian", ARM.jacobian, Q,
          cases=[*_q, *_end, *choice("frame"), *_point]),
    entry("jacobite.kinematics.Chain.fk_and_jacobian", ARM.fk_and_jacobian, Q,
          cases=[*_q, *_end, *choice("frame"), *_point]),
    entry("jacobite.kinematics.Chain.analytic_jacobian", ARM.analytic_jacobian, Q,
          cases=[*_q, *_end, *choice("orientation")]),
    entry("jacobite.kinematics.analytic_jacobian", K.analytic_jacobian, ARM, Q,
          cases=[typed(0, "arm", _T), typed(0, None, _T), typed(0, 3, _T),
                 *tensor(1, (2, 3), ()), *choice("orientation")]),
    entry("jacobite.kinematics.orientation_parameters", K.orientation_parameters,
          torch.eye(3, dtype=F64), cases=[*tensor(0, (3,), (2, 3)), *choice(1)]),
]
