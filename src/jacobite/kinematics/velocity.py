"""Differential inverse kinematics: the joint velocities that produce an end-frame twist.

:func:`solve_velocity` is damped least squares, ``q̇ = Jᵀ (J Jᵀ + λ² I)⁻¹ ξ``: the joint
velocity minimising ``|J q̇ − ξ|² + λ² |q̇|²``. Away from singularities and for small ``λ`` it
is the minimum-norm exact solution ``J⁺ ξ``; near one, the damping bounds ``|q̇|`` at the price
of tracking error (Nakamura and Hanafusa's singularity-robust inverse). ``damping=0`` gives
the pseudo-inverse ``J⁺ ξ`` (least squares where ``ξ`` is out of reach).

>>> import torch
>>> from jacobite.kinematics import Chain
>>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])   # planar 2-link arm
>>> q = torch.tensor([0.0, 1.5707963267948966], dtype=torch.float64)
>>> twist = torch.tensor([0.0, 0.1, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
>>> solve_velocity(arm, q, twist, damping=0).round(decimals=6)
tensor([ 0.1000, -0.1000], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import ArgumentTypeError, NonFiniteInputError, ShapeError
from ._ik import _check_chain

__all__ = ["solve_velocity"]


def solve_velocity(chain: Any, q: Any, twist: Any, *, damping: float = 1e-6,
                   frame: str = "local_world_aligned", end: str | None = None) -> torch.Tensor:
    """Joint velocities ``q̇`` whose end-frame twist is ``twist``, by damped least squares.

    Args:
        chain: a :class:`~jacobite.kinematics.Chain`.
        q: ``(dof,)`` or ``(B, dof)`` joint values.
        twist: ``(6,)`` or ``(B, 6)`` desired twist, linear then angular, in the convention
            of ``frame`` (see :meth:`Chain.jacobian`); batch dimensions broadcast with ``q``'s.
        damping: ``λ ≥ 0`` in ``Jᵀ (J Jᵀ + λ² I)⁻¹``; ``0`` gives ``J⁺ twist``.
        frame: ``"local_world_aligned"`` (default), ``"world"`` or ``"local"``.
        end: the end link when the chain has several.

    Returns:
        ``q̇`` of shape ``(…, dof)`` in ``q``'s dtype and device; differentiable in ``q`` and
        ``twist``.

    >>> import torch
    >>> from jacobite.kinematics import Chain
    >>> arm = Chain.from_dh([[1.0, 0.0, 0.0, 0.0]])
    >>> solve_velocity(arm, torch.zeros(3, 1), torch.tensor([0.0, 2.0, 0, 0, 0, 0])).shape
    torch.Size([3, 1])
    """
    _check_chain(chain)
    lam = _validate.tolerance(damping, "damping")
    if end is not None and not isinstance(end, str):
        raise ArgumentTypeError(f"end must be one link name (a string) or None, got {end!r}")
    J = chain.jacobian(q, frame=frame, end=end)
    if not _validate.all_finite(J.detach()):
        raise NonFiniteInputError("q gives a Jacobian with NaN or Inf; pass finite joint values")
    xi = _twist(twist, J)
    if lam == 0:
        return (torch.linalg.pinv(J) @ xi[..., None])[..., 0]
    # the stacked least-squares problem [J; λI] q̇ ≈ [ξ; 0] by QR: full column rank for any
    # λ > 0 and no squaring of J's condition number (float32, rank-deficient arms)
    dof = J.shape[-1]
    eye = lam * torch.eye(dof, dtype=J.dtype, device=J.device).expand(*J.shape[:-2], dof, dof)
    Q, R = torch.linalg.qr(torch.cat([J, eye], -2))
    rhs = (Q[..., :6, :].transpose(-1, -2) @ xi[..., None])
    return torch.linalg.solve_triangular(R, rhs, upper=True)[..., 0]


def _twist(twist: Any, J: torch.Tensor) -> torch.Tensor:
    if isinstance(twist, (list, tuple, np.ndarray)):
        twist = torch.as_tensor(np.asarray(twist, dtype=np.float64))
    if not isinstance(twist, torch.Tensor):
        raise ArgumentTypeError(
            f"twist must be a tensor of shape (6,) or (B, 6) (linear then angular velocity), "
            f"got {type(twist).__name__}"
        )
    if twist.dtype.is_complex or twist.dtype == torch.bool:
        raise ArgumentTypeError(f"twist must be real, got dtype {twist.dtype}")
    if twist.ndim not in (1, 2) or twist.shape[-1] != 6:
        raise ShapeError(
            f"twist must have shape (6,) or (B, 6): linear velocity then angular velocity, got "
            f"{tuple(twist.shape)}"
        )
    batch = J.shape[:-2]
    if twist.ndim == 2 and batch and twist.shape[0] != batch[0]:
        raise ShapeError(
            f"twist has {twist.shape[0]} rows but q has {batch[0]}; pass one twist per "
            f"configuration or a single (6,) twist"
        )
    if not _validate.all_finite(twist.detach()):
        raise NonFiniteInputError("twist contains NaN or Inf; pass finite velocities")
    return twist.to(dtype=J.dtype, device=J.device)
