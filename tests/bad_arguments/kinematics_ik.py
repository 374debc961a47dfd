"""Entries for inverse kinematics and differential IK (jacobite.kinematics.ik,
jacobite.kinematics.solve_velocity)."""

from __future__ import annotations

import torch

from jacobite import kinematics as K
from jacobite.errors import ArgumentTypeError, DistributedError, ShapeError

from . import F64, entry, flag, posint, seed, tensor, tol, typed

ARM = K.Chain.from_dh([[0.5, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]])
Q = torch.tensor([0.3, -0.5, 0.8], dtype=F64)
GOAL = ARM.fk(Q)
TWIST = torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, 0.2], dtype=F64)
_chain = [typed(0, "arm", ArgumentTypeError), typed(0, None, ArgumentTypeError),
          typed(0, 3, ArgumentTypeError)]

ENTRIES = [
    entry("jacobite.kinematics.ik", K.ik, ARM, GOAL, seeds=2,
          cases=[*_chain, *tensor(1, (2, 3, 3), (4,), (0, 4, 4)),
                 typed("q0", "abc", ArgumentTypeError), typed("q0", torch.ones(5), ShapeError),
                 ("q0", torch.tensor([0.0, float("nan"), 0.0])), *posint("seeds"),
                 *posint("max_iter"), *tol("tol"), typed("tol", (1e-4,), ArgumentTypeError),
                 *flag("position_only"), *flag("joint_limits"), *seed("seed"),
                 typed("end", 3, ArgumentTypeError),
                 typed("process_group", 3, ArgumentTypeError),
                 typed("process_group", "world", DistributedError)]),
    entry("jacobite.kinematics.solve_velocity", K.solve_velocity, ARM, Q, TWIST,
          cases=[*_chain, *tensor(1, (2,), ()), *tensor(2, (3,), (2, 3, 6)), *tol("damping"),
                 ("frame", "base"), ("frame", 3), typed("end", 3, ArgumentTypeError)]),
]
