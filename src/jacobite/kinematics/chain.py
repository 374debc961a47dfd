"""A kinematic chain (or tree) of a robot: forward kinematics and geometric Jacobians, batched.

Conventions (``docs/conventions.md``, "Kinematics"): a Jacobian is ``(…, 6, dof)`` with rows
0–2 the linear and rows 3–5 the angular velocity; ``frame=`` means what pinocchio's
``ReferenceFrame`` means — ``"local_world_aligned"`` (default; world axes, reference point the
end frame's origin), ``"world"`` (world axes, reference point the world origin) and ``"local"``
(the end frame's axes and origin). Poses are ``(…, 4, 4)`` base←end transforms in metres.

>>> import math, torch
>>> from jacobite.kinematics import Chain
>>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # planar 2-link arm
>>> q = torch.tensor([0.0, math.pi / 2], dtype=torch.float64)
>>> arm.fk(q)[:3, 3]
tensor([1., 1., 0.], dtype=torch.float64)
>>> arm.jacobian(q)[:2]
tensor([[-1., -1.],
        [ 1.,  0.]], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import ArgumentTypeError, DtypeError, InvalidOptionError, ShapeError
from ._dh import dh_joints
from ._fk import Kernel
from ._tree import JointSpec, Model, build_model

__all__ = ["FRAMES", "Chain"]

#: The ``frame=`` vocabulary, as pinocchio's ``ReferenceFrame``.
FRAMES = ("local_world_aligned", "world", "local")
_FLOATS = (torch.float32, torch.float64)


class Chain:
    """A robot's joints from a base link to one or several end links.

    Build one with :meth:`from_urdf` or :meth:`from_dh`. ``dof`` counts the independent joints
    (fixed and mimic joints excluded), in the order of ``joint_names``; ``lower`` and ``upper``
    are their limits (float64, ``±inf`` where unlimited). Results keep ``q``'s dtype and device;
    ``q`` of shape ``(dof,)`` gives unbatched results, ``(B, dof)`` results with a leading ``B``.
    With several end links a result gets an axis ``F`` before the pose / Jacobian axes.

    >>> arm = Chain.from_dh([[0.5, 0.0, 0.0, 0.0]], joint_types="R")
    >>> arm.dof, arm.joint_names, arm.end_names
    (1, ('joint1',), ('end',))
    """

    def __init__(self, model: Model, *, base: np.ndarray | None = None) -> None:
        if not isinstance(model, Model):
            raise ArgumentTypeError(
                f"a Chain is made from a robot description, got {type(model).__name__}; use "
                "Chain.from_urdf(path_or_xml) or Chain.from_dh(table)"
            )
        if base is not None:
            base = np.asarray(base, dtype=np.float64) if isinstance(base, np.ndarray) else base
            if not (isinstance(base, np.ndarray) and base.shape == (4, 4)
                    and np.all(np.isfinite(base))):
                raise ArgumentTypeError(
                    f"base must be None or a finite (4, 4) NumPy transform, got {base!r}"
                )
        self._model = model
        self._kernel = Kernel(model, base)
        self.dof: int = model.dof
        self.joint_names: tuple[str, ...] = model.joint_names
        self.end_names: tuple[str, ...] = model.end_names
        self.lower: torch.Tensor = torch.as_tensor(model.lower, dtype=torch.float64)
        self.upper: torch.Tensor = torch.as_tensor(model.upper, dtype=torch.float64)
        self._ends = {name: i for i, name in enumerate(model.end_names)}

    # --------------------------------------------------------------------- construction
    @classmethod
    def from_urdf(cls, path_or_string: Any, *, end: str | Sequence[str] | None = None,
                  base: str | None = None) -> Chain:
        """The chain of a URDF robot (a file path or the XML text) from link ``base`` (default:
        the root link) to ``end``: a link name, a list of link names, or ``None`` for the single
        leaf link. Revolute, continuous (limits ``±inf``), prismatic, fixed and mimic joints
        (``value = multiplier * value(joint) + offset``; ``dof`` counts the joints they follow);
        joint axes are normalised; planar and floating joints are refused. Needs ``yourdfpy``
        (``jacobite[robotics]``); meshes are never loaded.

        >>> xml = '''<robot name="r"><link name="a"/><link name="b"/>
        ... <joint name="j" type="prismatic"><parent link="a"/><child link="b"/>
        ... <axis xyz="1 0 0"/><limit lower="0" upper="0.5" effort="1" velocity="1"/></joint>
        ... </robot>'''
        >>> Chain.from_urdf(xml).upper
        tensor([0.5000], dtype=torch.float64)
        """
        from ._urdf import read_urdf

        if base is not None and not isinstance(base, str):
            raise ArgumentTypeError(f"base must be a link name (a string), got {base!r}")
        return cls(build_model(read_urdf(path_or_string), end=end, base=base))

    @classmethod
    def from_dh(cls, table: Any, *, convention: str = "standard",
                joint_types: str | Sequence[str] | None = None, limits: Any = None,
                base: Any = None, tool: Any = None) -> Chain:
        """The chain of a Denavit–Hartenberg table: one row ``(a, alpha, d, theta_offset)`` per
        joint (metres, radians; in that column order). ``convention="standard"``:
        ``A_i = Rz(θ_i) Tz(d_i) Tx(a_i) Rx(α_i)``; ``"modified"`` (Craig):
        ``A_i = Rx(α_{i-1}) Tx(a_{i-1}) Rz(θ_i) Tz(d_i)`` with row ``i`` holding
        ``(a_{i-1}, α_{i-1}, d_i, θ_i)``. A revolute joint (``"R"``, the default) adds ``q_i`` to
        ``θ_i``, a prismatic one (``"P"`` in ``joint_types``, e.g. ``"RRPR"``) to ``d_i``.
        ``limits``: ``(dof, 2)`` lower/upper (default ``±inf``); ``base`` and ``tool``: 4×4
        transforms before the first and after the last link. Joints are named ``joint1`` …,
        the end link ``"end"``.

        >>> Chain.from_dh([[0.0, 0.0, 0.1, 0.0]], joint_types="P").fk(
        ...     torch.tensor([0.2], dtype=torch.float64))[2, 3]
        tensor(0.3000, dtype=torch.float64)
        """
        joints: list[JointSpec] = dh_joints(table, convention, joint_types, limits, base, tool)
        return cls(build_model(joints, end=None, base=None))

    def __repr__(self) -> str:
        ends = self.end_names[0] if len(self.end_names) == 1 else list(self.end_names)
        return f"Chain(dof={self.dof}, joints={list(self.joint_names)}, end={ends!r})"

    # --------------------------------------------------------------------- checks
    def _q(self, q: Any) -> torch.Tensor:
        if type(q) is not torch.Tensor and not isinstance(q, torch.Tensor):
            if isinstance(q, (list, tuple, np.ndarray)):
                q = torch.as_tensor(np.asarray(q, dtype=np.float64))
            else:
                raise ArgumentTypeError(
                    f"q must be a tensor of joint values of shape (dof,) or (B, dof) with "
                    f"dof={self.dof}, got {type(q).__name__}"
                )
        if q.dtype not in _FLOATS:
            raise DtypeError(
                f"q must be torch.float32 or torch.float64, got {q.dtype}; convert it with "
                "q.double()"
            )
        if q.ndim == 0 or q.shape[-1] != self.dof:
            raise ShapeError(
                f"q must have shape (dof,) or (B, dof) with dof={self.dof} (joints "
                f"{list(self.joint_names)}), got {tuple(q.shape)}"
            )
        return q

    def _sel(self, end: Any) -> tuple[list[int] | None, bool]:
        """(indices of the selected ends or None for all, whether to keep the F axis)."""
        if end is None:
            return None, len(self.end_names) > 1
        if isinstance(end, str):
            return [self._end_index(end)], False
        if isinstance(end, (list, tuple)) and end and all(isinstance(e, str) for e in end):
            return [self._end_index(e) for e in end], True
        raise InvalidOptionError(
            f"end must be None, one of the chain's end links {list(self.end_names)} or a "
            f"non-empty list of them, got {end!r}"
        )

    def _end_index(self, name: str) -> int:
        i = self._ends.get(name)
        if i is None:
            raise InvalidOptionError(
                f"end={name!r} is not an end link of this chain; its end links are "
                f"{list(self.end_names)}; pass one of them (or build the chain with "
                "Chain.from_urdf(..., end=[...]) to have more)"
            )
        return i

    def _point(self, point: Any, q: torch.Tensor, frame: str) -> torch.Tensor | None:
        if point is None:
            return None
        if frame == "world":
            raise InvalidOptionError(
                "point= is refused with frame='world': that frame's reference point is the "
                "world origin; use frame='local_world_aligned' or 'local' for a point on the end "
                "body"
            )
        if not isinstance(point, torch.Tensor):
            try:
                point = torch.as_tensor(np.asarray(point, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise ArgumentTypeError(
                    f"point must be a tensor of shape (3,) or (B, 3), got {point!r}"
                ) from exc
        if not point.dtype.is_floating_point:
            raise DtypeError(f"point must be floating point, got {point.dtype}")
        batch = q.shape[:-1]
        if point.shape != (3,) and point.shape != (*batch, 3):
            raise ShapeError(
                f"point must have shape (3,) or {(*batch, 3)} (an offset in the end frame, one "
                f"per configuration), got {tuple(point.shape)}"
            )
        return point.to(dtype=q.dtype, device=q.device).reshape(-1, 3) if point.ndim > 1 \
            else point.to(dtype=q.dtype, device=q.device)

    # --------------------------------------------------------------------- kinematics
    def _run(self, q: Any, frame: str, point: Any, end: Any,
             jac: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = self._q(q)
        if frame not in FRAMES:
            _validate.choice(frame, "frame", FRAMES)
        sel, keep_f = self._sel(end)
        p = self._point(point, q, frame) if jac else None
        shape = q.shape[:-1]
        q2 = q if q.ndim == 2 else q.reshape(shape.numel(), self.dof)  # dof may be 0
        k = self._kernel
        if not keep_f and k.use_path and q2.shape[0] <= k.path_batch:
            pose, j = k.single(q2, 0 if sel is None else sel[0], p, frame, jac)
        else:
            pose, j = k.run(q2, p, frame, sel, jac)
            if not keep_f:
                pose = pose[:, 0]
                j = None if j is None else j[:, 0]
        if q.ndim != 2:
            pose = pose.reshape(*shape, *pose.shape[1:])
            j = None if j is None else j.reshape(*shape, *j.shape[1:])
        return pose, j

    def fk(self, q: Any, *, end: str | Sequence[str] | None = None) -> torch.Tensor:
        """The end pose(s): ``(…, 4, 4)`` base←end transforms (``(…, F, 4, 4)`` for several
        ends); ``end`` picks among :attr:`end_names`.

        >>> Chain.from_dh([[1.0, 0.0, 0.0, 0.0]]).fk(torch.zeros(3, 1)).shape
        torch.Size([3, 4, 4])
        """
        return self._run(q, "world", None, end, False)[0]

    def jacobian(self, q: Any, *, frame: str = "local_world_aligned", point: Any = None,
                 end: str | Sequence[str] | None = None) -> torch.Tensor:
        """The geometric Jacobian ``(…, 6, dof)`` (``(…, F, 6, dof)`` for several ends): rows
        0–2 linear velocity, 3–5 angular velocity, per unit joint velocity.

        ``frame``: ``"local_world_aligned"`` — world axes, the velocity of the end frame's
        origin; ``"world"`` — world axes, the velocity of the body-fixed point at the world
        origin (``v_o = v_p − ω × p``); ``"local"`` — both in the end frame's axes, at its
        origin. ``point``: ``(3,)`` or ``(B, 3)`` offset in end-frame coordinates of another
        reference point on the end body (not with ``"world"``).

        >>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0]])
        >>> arm.jacobian(torch.zeros(1, dtype=torch.float64), frame="local")[:, 0]
        tensor([0., 1., 0., 0., 0., 1.], dtype=torch.float64)
        """
        j = self._run(q, frame, point, end, True)[1]
        assert j is not None
        return j

    def fk_and_jacobian(self, q: Any, *, frame: str = "local_world_aligned", point: Any = None,
                        end: str | Sequence[str] | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fk(q), jacobian(q))`` from one pass: the fast path for iterative solvers.

        >>> pose, jac = Chain.from_dh([[1.0, 0.0, 0.0, 0.0]]).fk_and_jacobian(torch.zeros(1))
        >>> pose.shape, jac.shape
        (torch.Size([4, 4]), torch.Size([6, 1]))
        """
        pose, j = self._run(q, frame, point, end, True)
        assert j is not None
        return pose, j

    def analytic_jacobian(self, q: Any, *, orientation: str = "rpy",
                          end: str | Sequence[str] | None = None) -> torch.Tensor:
        """The Jacobian of (end position, orientation parameters) — ``"rpy"`` (roll, pitch,
        yaw; ``(…, 6, dof)``) or ``"quaternion"`` (``(w, x, y, z)``, ``w ≥ 0``; ``(…, 7,
        dof)``); see :func:`jacobite.kinematics.analytic_jacobian`.

        >>> Chain.from_dh([[1.0, 0.0, 0.0, 0.0]]).analytic_jacobian(
        ...     torch.zeros(1), orientation="quaternion").shape
        torch.Size([7, 1])
        """
        from .analytic import analytic_jacobian

        return analytic_jacobian(self, q, orientation=orientation, end=end)

    def solve_velocity(self, q: Any, twist: Any, *, damping: float = 1e-6,
                       frame: str = "local_world_aligned", end: str | None = None
                       ) -> torch.Tensor:
        """Joint velocities giving the end-frame ``twist``, by damped least squares
        (:func:`jacobite.kinematics.solve_velocity`).

        >>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0]])
        >>> arm.solve_velocity(torch.zeros(1), torch.tensor([0.0, 2.0, 0, 0, 0, 0])).shape
        torch.Size([1])
        """
        from .velocity import solve_velocity

        return solve_velocity(self, q, twist, damping=damping, frame=frame, end=end)
