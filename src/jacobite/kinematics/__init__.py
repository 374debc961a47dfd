"""Robot kinematics: forward kinematics and manipulator Jacobians with explicit frames.

* :class:`Chain` — a robot from a URDF (``Chain.from_urdf``, needs ``jacobite[robotics]``) or a
  Denavit–Hartenberg table (``Chain.from_dh``); ``fk``, ``jacobian`` (``frame=`` as pinocchio's
  ``WORLD`` / ``LOCAL`` / ``LOCAL_WORLD_ALIGNED``), ``fk_and_jacobian`` — batched over
  configurations, differentiable, float32/float64 on any device; ``analytic_jacobian`` for
  roll-pitch-yaw or quaternion orientation parameters (:mod:`~jacobite.kinematics.analytic`).
* :mod:`~jacobite.kinematics.analysis` — :func:`manipulability`, :func:`singular_values`,
  :func:`condition_number`, :func:`velocity_ellipsoid` / :func:`force_ellipsoid` of Jacobians,
  and :func:`nearest_singularity` along a path; pictures of them in
  :mod:`~jacobite.kinematics.plots` (``plot`` extra).
* :func:`ik` — batched inverse kinematics (damped least squares on the pose error, many seeds
  per goal, joint limits), differentiable in the target; an :class:`IKResult` per call.
* :func:`solve_velocity` — joint velocities for an end-frame twist (damped least squares).
* :func:`example_urdf` — the URDF files of three arms shipped with jacobite (KUKA iiwa 7, UR5,
  Panda), for examples and tests.

Twists and Jacobian rows are ordered linear then angular (see ``docs/conventions.md``).

>>> import torch
>>> from jacobite.kinematics import Chain
>>> Chain.from_dh([[1.0, 0.0, 0.0, 0.0]]).jacobian(torch.zeros(1)).shape
torch.Size([6, 1])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from ._ik import STATUSES, IKResult, ik
    from .analysis import (
        Ellipsoid,
        NearestSingularity,
        condition_number,
        force_ellipsoid,
        manipulability,
        nearest_singularity,
        singular_values,
        velocity_ellipsoid,
    )
    from .analytic import ORIENTATIONS, analytic_jacobian, orientation_parameters
    from .chain import FRAMES, Chain
    from .examples import EXAMPLE_ROBOTS, example_urdf
    from .plots import plot_ellipsoids, plot_path_measures
    from .velocity import solve_velocity

__all__ = [
    "EXAMPLE_ROBOTS",
    "FRAMES",
    "ORIENTATIONS",
    "STATUSES",
    "Chain",
    "Ellipsoid",
    "IKResult",
    "NearestSingularity",
    "analytic_jacobian",
    "condition_number",
    "example_urdf",
    "force_ellipsoid",
    "ik",
    "manipulability",
    "nearest_singularity",
    "orientation_parameters",
    "plot_ellipsoids",
    "plot_path_measures",
    "singular_values",
    "solve_velocity",
    "velocity_ellipsoid",
]

_SOURCE = {
    **dict.fromkeys(("FRAMES", "Chain"), ".chain"),
    **dict.fromkeys(("Ellipsoid", "NearestSingularity", "condition_number", "force_ellipsoid",
                     "manipulability", "nearest_singularity", "singular_values",
                     "velocity_ellipsoid"), ".analysis"),
    **dict.fromkeys(("plot_ellipsoids", "plot_path_measures"), ".plots"),
    **dict.fromkeys(("STATUSES", "IKResult", "ik"), "._ik"),
    "solve_velocity": ".velocity",
    **dict.fromkeys(("EXAMPLE_ROBOTS", "example_urdf"), ".examples"),
    **dict.fromkeys(("ORIENTATIONS", "analytic_jacobian", "orientation_parameters"),
                    ".analytic"),
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _SOURCE, ())
