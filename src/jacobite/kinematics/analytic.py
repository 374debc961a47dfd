"""Analytic Jacobians: the derivative of (position, orientation parameters) of an end frame.

The geometric Jacobian gives the angular velocity ``ω`` (world axes); a parametrisation ``φ`` of
the orientation has ``φ̇ = E(φ)⁻¹ ω``, so the analytic Jacobian is ``[J_v; E⁻¹ J_ω]`` with ``J_v``
the velocity of the end frame's origin in world axes (frame ``"local_world_aligned"``).

* ``"rpy"``: roll, pitch, yaw about fixed x, y, z: ``R = Rz(yaw) Ry(pitch) Rx(roll)`` (the ZYX
  Euler angles), pitch in ``[−π/2, π/2]``; singular where ``cos(pitch) = 0`` (gimbal lock:
  entries become infinite). Result ``(…, 6, dof)``.
* ``"quaternion"``: unit quaternion ``(w, x, y, z)`` with ``w ≥ 0``; ``q̇ = ½ (0, ω) ⊗ q``,
  no singularity. Result ``(…, 7, dof)``.

>>> import torch
>>> from jacobite.kinematics import Chain
>>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0]])
>>> analytic_jacobian(arm, torch.zeros(1, dtype=torch.float64))[:, 0]
tensor([0., 1., 0., 0., 0., 1.], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from .. import _validate
from ..errors import ArgumentTypeError, DtypeError, ShapeError

if TYPE_CHECKING:  # pragma: no cover
    from .chain import Chain

__all__ = ["ORIENTATIONS", "analytic_jacobian", "orientation_parameters"]

#: The ``orientation=`` vocabulary of :func:`analytic_jacobian`.
ORIENTATIONS = ("rpy", "quaternion")


def _rpy(r: torch.Tensor) -> torch.Tensor:
    yaw = torch.atan2(r[..., 1, 0], r[..., 0, 0])
    pitch = torch.atan2(-r[..., 2, 0], torch.hypot(r[..., 2, 1], r[..., 2, 2]))
    roll = torch.atan2(r[..., 2, 1], r[..., 2, 2])
    return torch.stack([roll, pitch, yaw], dim=-1)


def _quaternion(r: torch.Tensor) -> torch.Tensor:
    """(w, x, y, z), w ≥ 0, from the largest of |w|, |x|, |y|, |z| (stable everywhere)."""
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    t = torch.stack([1 + r00 + r11 + r22, 1 + r00 - r11 - r22,
                     1 - r00 + r11 - r22, 1 - r00 - r11 + r22], dim=-1)
    h = 0.5 * t.clamp(min=1e-12).sqrt()  # |w|, |x|, |y|, |z| candidates
    a, b, c = r21 - r12, r02 - r20, r10 - r01  # 4w·(x, y, z)
    d, e, f = r01 + r10, r02 + r20, r12 + r21  # 4(xy, xz, yz)
    hw, hx, hy, hz = (4 * h[..., i] for i in range(4))
    cand = torch.stack([
        torch.stack([h[..., 0], a / hw, b / hw, c / hw], -1),
        torch.stack([a / hx, h[..., 1], d / hx, e / hx], -1),
        torch.stack([b / hy, d / hy, h[..., 2], f / hy], -1),
        torch.stack([c / hz, e / hz, f / hz, h[..., 3]], -1),
    ], dim=-2)  # (…, 4 cases, 4)
    pick = t.argmax(dim=-1, keepdim=True).unsqueeze(-1).expand(*t.shape[:-1], 1, 4)
    quat = cand.gather(-2, pick).squeeze(-2)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def orientation_parameters(r: torch.Tensor, orientation: str = "rpy") -> torch.Tensor:
    """The parameters of rotation matrices ``r`` (…, 3, 3): ``"rpy"`` → (…, 3) roll, pitch,
    yaw; ``"quaternion"`` → (…, 4) ``(w, x, y, z)`` with ``w ≥ 0``. Differentiable.

    >>> orientation_parameters(torch.eye(3), "quaternion")
    tensor([1., 0., 0., 0.])
    """
    if not isinstance(r, torch.Tensor):
        raise ArgumentTypeError(
            f"r must be a tensor of rotation matrices (…, 3, 3), got {type(r).__name__}"
        )
    if not r.is_floating_point():
        raise DtypeError(f"r must be floating point, got {r.dtype}; convert it with r.double()")
    if r.ndim < 2 or r.shape[-2:] != (3, 3):
        raise ShapeError(f"r must have shape (…, 3, 3), got {tuple(r.shape)}")
    _validate.choice(orientation, "orientation", ORIENTATIONS)
    return _rpy(r) if orientation == "rpy" else _quaternion(r)


def analytic_jacobian(chain: Chain, q: Any, *, orientation: str = "rpy",
                      end: str | Sequence[str] | None = None) -> torch.Tensor:
    """The Jacobian of ``(position, orientation_parameters(R))`` of the end frame(s) in
    ``q``: ``(…, 6, dof)`` for ``"rpy"``, ``(…, 7, dof)`` for ``"quaternion"`` (``(…, F, ·,
    dof)`` for several ends). Rows 0–2: the end frame origin's velocity in world axes."""
    from .chain import Chain

    if not isinstance(chain, Chain):
        raise ArgumentTypeError(
            f"chain must be a jacobite.kinematics.Chain, got {type(chain).__name__}; make one "
            "with Chain.from_urdf or Chain.from_dh"
        )
    _validate.choice(orientation, "orientation", ORIENTATIONS)
    pose, jac = chain.fk_and_jacobian(q, frame="local_world_aligned", end=end)
    r = pose[..., :3, :3]
    jv, jw = jac[..., :3, :], jac[..., 3:, :]
    wx, wy, wz = jw[..., 0, :], jw[..., 1, :], jw[..., 2, :]
    if orientation == "rpy":
        _, pitch, yaw = _rpy(r).unbind(-1)
        cy, sy = yaw.cos().unsqueeze(-1), yaw.sin().unsqueeze(-1)
        cp, sp = pitch.cos().unsqueeze(-1), pitch.sin().unsqueeze(-1)
        a = cy * wx + sy * wy
        rows = torch.stack([a / cp, cy * wy - sy * wx, wz + sp / cp * a], dim=-2)
    else:
        w, x, y, z = (v.unsqueeze(-1) for v in _quaternion(r).unbind(-1))
        rows = 0.5 * torch.stack([-(x * wx + y * wy + z * wz), w * wx + z * wy - y * wz,
                                  -z * wx + w * wy + x * wz, y * wx - x * wy + w * wz], dim=-2)
    return torch.cat([jv, rows], dim=-2)
