"""Batched inverse kinematics: joint values that put a chain's end frame at target poses.

:func:`ik` solves many goals at once, each from several starts ("seeds") held as a batch
dimension, by damped least squares (Levenberg–Marquardt) on the pose error of
:func:`~jacobite.kinematics._lie.pose_error`: the position difference (m) and the rotation
``log(R Rₜᵀ)`` (rad), both in world axes at the end frame's origin, whose Jacobian is
``chain.jacobian(q, frame="local_world_aligned")``. Joint limits are kept by projection.
A goal stops as soon as one of its seeds meets ``tol``; ``success`` is judged on the forward
kinematics of the returned ``q``, recomputed, so it never claims what the solution does not do.

The solution is differentiable in ``target`` (autograd) by the implicit function theorem: at a
solution ``J dq = dξ`` for a target motion ``dξ`` (world axes, end point), and for a redundant
arm the minimum-norm answer ``dq = J⁺ dξ`` is returned (the solution set is a manifold; the
solver itself moves by such minimum-norm steps).

>>> import torch
>>> from jacobite.kinematics import Chain, ik
>>> arm = Chain.from_dh([[0.5, 0.0, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0]])   # planar, 2 joints
>>> goal = arm.fk(torch.tensor([0.3, 0.9], dtype=torch.float64))[:3, 3]
>>> res = ik(arm, goal, position_only=True)
>>> bool(res.success), res.status, float(res.position_error) < 1e-4
(True, 'converged', True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from . import _ik_lm
from ._lie import pose_residual, vee

__all__ = ["SHARE", "STATUSES", "IKResult", "ik"]

#: The goals this process solves when :func:`ik` runs on a process group (set by
#: :mod:`._ik_sharded`); None: all of them.
SHARE: ContextVar[slice | None] = ContextVar("jacobite_ik_share", default=None)

#: The per-goal ``status`` values: ``"converged"`` — the returned ``q`` meets ``tol``;
#: ``"max_iterations"`` — not met, and some seed was still improving when it ran out of
#: ``max_iter``; ``"stalled"`` — not met, every seed stopped improving (a goal out of reach,
#: or only local minima from these seeds).
STATUSES = ("converged", "max_iterations", "stalled")


@dataclass(frozen=True)
class IKResult:
    """The answer of :func:`ik`, per goal (``G`` goals; no goal axis for a single ``(4, 4)`` /
    ``(3,)`` target).

    Attributes:
        q: ``(G, dof)`` joint values: the solution, or where a goal failed the best point found
            (lowest squared pose error). Differentiable in ``target`` (see :func:`ik`).
        position_error: ``(G,)`` distance (m) between the end point at ``q`` and the target.
        rotation_error: ``(G,)`` angle (rad) of the rotation between the end frame at ``q`` and
            the target's; NaN with ``position_only``.
        success: ``(G,)`` bool, both errors within ``tol`` (recomputed from ``q``).
        status: one of :data:`STATUSES` per goal (a list; a str for a single target).
        iterations: ``(G,)`` solver rounds the goal took part in.
        nfev: ``(G,)`` forward-kinematics + Jacobian evaluations spent on the goal (all seeds).
        seed: ``(G,)`` index of the seed ``q`` came from (0 is ``q0`` when given).
    """

    q: torch.Tensor
    position_error: torch.Tensor
    rotation_error: torch.Tensor
    success: torch.Tensor
    status: list[str] | str
    iterations: torch.Tensor
    nfev: torch.Tensor
    seed: torch.Tensor


def ik(chain: Any, target: Any, *, q0: Any = None, seeds: int = 10,
       position_only: bool = False, joint_limits: bool = True,
       tol: float | Sequence[float] = (1e-4, 1e-3), max_iter: int = 30,
       end: str | None = None, seed: int | None = 0, process_group: Any = None) -> IKResult:
    """Joint values putting ``chain``'s end frame at ``target``, for many goals at once.

    Args:
        chain: a :class:`~jacobite.kinematics.Chain`.
        target: ``(G, 4, 4)`` or ``(4, 4)`` base←end poses; with ``position_only`` also
            ``(G, 3)`` or ``(3,)`` positions. Computed in float64 on the target's device;
            ``q`` comes back in the target's floating dtype.
        q0: ``(dof,)`` or ``(G, dof)``: the first seed of every goal (e.g. the current
            configuration); the other seeds are spread over the joint limits (``[−π, π]`` for
            an unlimited joint) by Latin hypercube sampling: each joint's range cut into
            ``seeds`` strata with one seed in each.
        seeds: starts per goal (≥ 1), solved as a batch; a goal stops at the first that
            meets ``tol``, and when goals are few, several of a goal's seeds run at once.
        position_only: match the position only (3 equations instead of 6).
        joint_limits: keep every trial within ``chain.lower``/``chain.upper`` by projection.
        tol: ``(position m, rotation rad)`` or one number for both; default ``(1e-4, 1e-3)``.
        max_iter: rounds per seed before the goal moves on to its next seed (≥ 1).
        end: the end link when the chain has several (one name).
        seed: seeds the random starts (``None``: torch's global generator).
        process_group: a ``torch.distributed`` group (or ``"world"``) whose ranks share the
            goals: every rank passes all of them, solves its contiguous share from the starts
            one process would draw, and receives every result (``docs/distributed.md``);
            default None, one process.

    Returns:
        :class:`IKResult`.

    The gradient of ``q`` with respect to ``target`` is the minimum-norm implicit derivative
    ``dq = J⁺ dξ`` (``dξ``: the target's motion, linear then angular, world axes at the end
    point; ``J``: the ``"local_world_aligned"`` Jacobian at ``q``, its first three rows with
    ``position_only``). Exact for a solved goal of a non-singular ``J``, away from active
    joint limits; for a failed goal it is the same formula at the best point.

    >>> import math, torch
    >>> from jacobite.kinematics import Chain, ik
    >>> arm = Chain.from_dh([[0.0, math.pi / 2, 0.3, 0.0], [0.4, 0.0, 0.0, 0.0],
    ...                      [0.3, 0.0, 0.0, 0.0]])
    >>> goals = arm.fk(torch.tensor([[0.1, 0.5, -0.4], [1.0, -0.2, 0.8]], dtype=torch.float64))
    >>> res = ik(arm, goals[:, :3, 3], position_only=True)
    >>> res.success.tolist(), res.status
    ([True, True], ['converged', 'converged'])
    """
    if process_group is not None:
        from ._ik_sharded import on_group

        return on_group(process_group, lambda: ik(
            chain, target, q0=q0, seeds=seeds, position_only=position_only,
            joint_limits=joint_limits, tol=tol, max_iter=max_iter, end=end, seed=seed), target)
    _check_chain(chain)
    position_only = _validate.boolean(position_only, "position_only")
    joint_limits = _validate.boolean(joint_limits, "joint_limits")
    n_seeds = _validate.positive_int(seeds, "seeds")
    max_iter = _validate.positive_int(max_iter, "max_iter")
    tol_p, tol_r = _tolerances(tol)
    if end is not None and not isinstance(end, str):
        raise ArgumentTypeError(
            f"end must be one link name (a string) or None, got {end!r}; solve one end frame "
            "per call"
        )
    ends = tuple(getattr(chain, "end_names", ()))
    if end is None and len(ends) > 1:
        raise InvalidOptionError(
            f"this chain has {len(ends)} end links {list(ends)}; pass end= one of them (one end "
            "frame per call)"
        )
    tgt, single, out_dtype = _targets(target, position_only)
    G, dof = tgt.shape[0], int(chain.dof)
    lower = chain.lower.to(dtype=torch.float64, device=tgt.device)
    upper = chain.upper.to(dtype=torch.float64, device=tgt.device)
    starts = _seeds(G, n_seeds, lower, upper, q0, dof, joint_limits, seed, tgt.device)
    width = _ik_lm.width_for(G, n_seeds, tgt.device)
    share = SHARE.get()
    if share is not None:  # one rank's goals of a process group (._ik_sharded)
        tgt, starts, G = tgt[share], starts[share], share.stop - share.start
    goals = tgt.detach()

    def residual(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pose, J = chain.fk_and_jacobian(q, end=end)
        if position_only:
            return pose[:, :3, 3] - t, J[:, :3]
        return pose_residual(pose, t), J

    p_goal = goals[:, :3, 3] if goals.ndim == 3 else goals
    grad = _validate.tracked(tgt)   # the final Jacobian is needed only for the implicit step
    J: torch.Tensor | None = None
    with torch.no_grad():
        out = _ik_lm.solve(residual, p_goal if position_only else goals, starts, lower, upper,
                           tol=(tol_p,) if position_only else (tol_p, tol_r),
                           max_iter=max_iter, project=joint_limits, width=width)
        if grad:
            pose, J = chain.fk_and_jacobian(out.q, end=end)
        else:
            pose = chain.fk(out.q, end=end)
        if position_only:
            pos_err = (pose[:, :3, 3] - p_goal).norm(dim=-1)
            rot_err = torch.full_like(pos_err, math.nan)
            success = pos_err <= tol_p
        else:   # the rotation angle by atan2, accurate at every angle
            pos_err, rot_err = pose_residual(pose, goals).view(G, 2, 3).norm(dim=-1).unbind(-1)
            success = (pos_err <= tol_p) & (rot_err <= tol_r)
    q = out.q
    if J is not None:
        q = q + _implicit_step(tgt, J[:, :3] if position_only else J, position_only)
    codes = out.code.tolist()
    status = [STATUSES[0] if ok else STATUSES[c if c != 0 else 2]
              for ok, c in zip(success.tolist(), codes, strict=True)]
    res = IKResult(q=q.to(out_dtype), position_error=pos_err.to(out_dtype),
                   rotation_error=rot_err.to(out_dtype), success=success, status=status,
                   iterations=out.iterations, nfev=out.nfev, seed=out.seed)
    if single:
        return IKResult(q=res.q[0], position_error=res.position_error[0],
                        rotation_error=res.rotation_error[0], success=res.success[0],
                        status=status[0], iterations=res.iterations[0], nfev=res.nfev[0],
                        seed=res.seed[0])
    return res


def _implicit_step(tgt: torch.Tensor, J: torch.Tensor, position_only: bool) -> torch.Tensor:
    """``J⁺ dξ`` with ``dξ`` the target's motion away from its current value: zero in value,
    the implicit derivative in gradient."""
    fixed = tgt.detach()
    if tgt.ndim == 2:                     # positions only
        xi = tgt - fixed
    else:
        dp = tgt[:, :3, 3] - fixed[:, :3, 3]
        if position_only:
            xi = dp
        else:   # vee of dR Rᵀ: the world-axes angular motion of the target
            dw = vee(tgt[:, :3, :3] @ fixed[:, :3, :3].transpose(-1, -2))
            xi = torch.cat([dp, dw], -1)
    pinv = torch.linalg.pinv(J)
    return (pinv @ xi[..., None])[..., 0]


def _check_chain(chain: Any) -> None:
    for name in ("dof", "lower", "upper", "fk", "fk_and_jacobian", "jacobian"):
        if not hasattr(chain, name):
            raise ArgumentTypeError(
                f"chain must be a jacobite.kinematics.Chain (it has no {name!r}), got "
                f"{type(chain).__name__}; build one with Chain.from_urdf or Chain.from_dh"
            )


def _tolerances(tol: Any) -> tuple[float, float]:
    if isinstance(tol, (numbers.Real, torch.Tensor)) and not isinstance(tol, bool):
        t = _validate.positive_float(tol, "tol")
        return t, t
    if isinstance(tol, (tuple, list)) and len(tol) == 2:
        return (_validate.positive_float(tol[0], "tol[0] (position, m)"),
                _validate.positive_float(tol[1], "tol[1] (rotation, rad)"))
    raise ArgumentTypeError(
        f"tol must be a positive number or a pair (position m, rotation rad) such as "
        f"(1e-4, 1e-3), got {tol!r}"
    )


def _targets(target: Any, position_only: bool) -> tuple[torch.Tensor, bool, torch.dtype]:
    """The targets as float64 ``(G, 4, 4)`` (or ``(G, 3)``), whether one was given alone, and
    the dtype to return ``q`` in."""
    if isinstance(target, (list, tuple, np.ndarray)):
        target = torch.as_tensor(np.asarray(target, dtype=np.float64))
    if _validate.transform_levels("vmap"):
        raise UnsupportedOperationError(
            "ik cannot run under torch.func.vmap (or jacfwd, which uses it): its iterations "
            "depend on the values; stack the targets into one (G, 4, 4) batch instead, and "
            "differentiate with torch.autograd, torch.func.grad or torch.func.jacrev"
        )
    if not isinstance(target, torch.Tensor):
        raise ArgumentTypeError(
            f"target must be a tensor of poses (G, 4, 4) or, with position_only=True, "
            f"positions (G, 3); got {type(target).__name__}"
        )
    out_dtype = target.dtype if target.dtype in (torch.float32, torch.float64) else torch.float64
    if target.dtype.is_complex:
        raise ArgumentTypeError(f"target must be real, got dtype {target.dtype}")
    shape = tuple(target.shape)
    pose = shape[-2:] == (4, 4) and len(shape) in (2, 3)
    point = position_only and len(shape) in (1, 2) and shape[-1:] == (3,)
    if not (pose or point):
        want = "(G, 4, 4) or (4, 4) poses" + (", or (G, 3) or (3,) positions"
                                              if position_only else "")
        hint = ("; for positions pass position_only=True" if shape[-1:] == (3,)
                and len(shape) <= 2 else "")
        raise ShapeError(f"target must have shape {want}, got {shape}{hint}")
    single = len(shape) == (2 if pose else 1)
    t = target.to(torch.float64)
    t = t[None] if single else t
    if t.shape[0] == 0:
        raise ShapeError("target holds no goals (G = 0); pass at least one pose")
    if not _validate.all_finite(t.detach()):
        raise NonFiniteInputError("target contains NaN or Inf; pass finite poses")
    if pose:
        _check_rigid(t.detach())
    return t, single, out_dtype


def _check_rigid(T: torch.Tensor) -> None:
    R = T[:, :3, :3]
    eye = torch.eye(4, dtype=T.dtype, device=T.device)
    ortho = (R.transpose(-1, -2) @ R - eye[:3, :3]).abs().amax((-1, -2))
    bottom = (T[:, 3] - eye[3]).abs().amax(-1)
    det = (torch.linalg.cross(R[..., 0], R[..., 1], dim=-1) * R[..., 2]).sum(-1)
    bad = (ortho > 1e-5) | (det < 0) | (bottom > 0)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise InvalidOptionError(
            f"target[{i}] is not a rigid transform: its rotation block must be orthonormal "
            f"with det +1 (to 1e-5) and its last row [0, 0, 0, 1]; re-orthonormalise the "
            f"rotation (e.g. through scipy.spatial.transform.Rotation) or pass "
            f"position_only=True with positions"
        )


def _seeds(G: int, S: int, lower: torch.Tensor, upper: torch.Tensor, q0: Any, dof: int,
           clamp: bool, seed: Any, device: torch.device) -> torch.Tensor:
    """``(G, S, dof)`` starts: ``q0`` first where given, the rest spread within the limits."""
    gen = _validate.generator(seed, device)
    lo = torch.where(torch.isfinite(lower), lower, -math.pi)
    hi = torch.where(torch.isfinite(upper), upper, math.pi)
    # Latin hypercube per goal: each joint's range cut into S equal strata, one seed in each,
    # the strata paired at random across joints (more even cover than independent draws)
    u = torch.rand(G, S, dof, dtype=torch.float64, device=device, generator=gen)
    strata = torch.rand(G, S, dof, dtype=torch.float64, device=device, generator=gen).argsort(1)
    u = (strata + u) / S
    starts = lo + (hi - lo) * u
    if q0 is not None:
        if isinstance(q0, (list, tuple, np.ndarray)):
            q0 = torch.as_tensor(np.asarray(q0, dtype=np.float64))
        if not isinstance(q0, torch.Tensor):
            raise ArgumentTypeError(f"q0 must be a tensor (dof,) or (G, dof), got "
                                    f"{type(q0).__name__}")
        if q0.dtype.is_complex or not (q0.dtype.is_floating_point or q0.dtype == torch.long):
            raise ArgumentTypeError(f"q0 must be real joint values, got dtype {q0.dtype}")
        if tuple(q0.shape) not in ((dof,), (G, dof)):
            raise ShapeError(f"q0 must have shape ({dof},) or ({G}, {dof}) (one start per "
                             f"goal), got {tuple(q0.shape)}")
        q0 = q0.detach().to(dtype=torch.float64, device=device)
        if not _validate.all_finite(q0):
            raise NonFiniteInputError("q0 contains NaN or Inf; pass finite joint values")
        starts[:, 0] = torch.clamp(q0, lower, upper) if clamp else q0
    return starts
