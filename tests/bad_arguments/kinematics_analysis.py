"""Entries for the manipulability measures and their pictures (jacobite.kinematics.analysis,
jacobite.kinematics.plots)."""

from __future__ import annotations

import torch

from jacobite import kinematics as K
from jacobite.errors import ArgumentTypeError, InvalidOptionError, ShapeError

from . import F64, Entry, choice, entry, flag, posint, tensor, tol, typed

J = torch.zeros(6, 3, dtype=F64)
J[0, 0], J[1, 1], J[2, 2], J[5, 0] = 0.3, 0.2, 0.1, 1.0
PLANAR = K.Chain.from_dh([[0.7, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]])
PATH = torch.tensor([[0.1, 1.0], [0.1, -1.0]], dtype=F64)
ELL = K.velocity_ellipsoid(J)
T = torch.linspace(0, 1, 5, dtype=F64)


def _jacobian_entry(name: str) -> Entry:
    return entry(f"jacobite.kinematics.{name}", getattr(K, name), J,
                 cases=[*tensor(0, (0, 3)), *choice("part"),
                        typed("part", None, InvalidOptionError)])


ENTRIES = [
    *(_jacobian_entry(n) for n in ("manipulability", "singular_values", "condition_number",
                                   "velocity_ellipsoid", "force_ellipsoid")),
    entry("jacobite.kinematics.nearest_singularity", K.nearest_singularity, PLANAR, PATH,
          samples=5,
          cases=[typed(0, "arm", ArgumentTypeError), typed(0, None, ArgumentTypeError),
                 *tensor(1, (2, 3), (1, 2)), typed(1, 3, ArgumentTypeError),
                 *posint("samples"), *choice("part"), *tol("xatol"),
                 typed("xatol", 0.0, InvalidOptionError)]),
    entry("jacobite.kinematics.plot_ellipsoids", K.plot_ellipsoids, ELL, torch.zeros(3),
          cases=[typed(0, "ellipsoid", ArgumentTypeError), typed(0, None, ArgumentTypeError),
                 typed(0, J, ArgumentTypeError), *tensor(1, (2, 3), ints=False),
                 typed("path", torch.zeros(4, 2), ShapeError), *tol("scale")]),
    entry("jacobite.kinematics.plot_path_measures", K.plot_path_measures, T, {"w": T},
          cases=[typed(0, "t", ArgumentTypeError), typed(0, None, ArgumentTypeError),
                 typed(0, torch.zeros(1), ShapeError), typed(1, None, ArgumentTypeError),
                 typed(1, {}, ArgumentTypeError), typed(1, "w", ArgumentTypeError),
                 typed(1, {"w": torch.zeros(4)}, ShapeError), *flag("log")]),
]
