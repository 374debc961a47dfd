"""Batched Lie-group maps of rotations and rigid motions: SO(3) and SE(3) exp / log.

Every function takes any number of leading batch dimensions, keeps the dtype and device of its
input and is differentiable (autograd and ``torch.func``), including at the identity and at a
half turn, where the textbook formulas divide by zero: small angles use Taylor series and
angles near π read the rotation axis from the symmetric part of ``R``.

Twists are ordered **linear then angular**, ``ξ = (v, ω)``, as everywhere in
:mod:`jacobite.kinematics`. ``se3_exp(ξ)`` is ``expm([[ω]×, v], [0, 0]])``.

:func:`pose_error` is the residual inverse kinematics drives to zero: the position difference
and the rotation ``log(R Rₜᵀ)``, both in world axes at the end frame's origin — the frame of
``chain.jacobian(q, frame="local_world_aligned")``, so that Jacobian is its derivative in ``q``
(exactly at a zero error, to first order elsewhere).

>>> import math, torch
>>> w = torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64)
>>> R = so3_exp(w)
>>> R.round(decimals=12).tolist()[0]
[0.0, -1.0, 0.0]
>>> torch.allclose(so3_log(R), w)
True
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import tracked

__all__ = ["pose_error", "se3_exp", "se3_inverse", "se3_log", "skew", "so3_exp", "so3_log",
           "vee"]

_SMALL = 1e-3     # below this angle (rad) the series are exact to rounding in float64
_NEAR_PI = -0.9   # cos θ below this: the axis comes from the symmetric part of R


def skew(v: torch.Tensor) -> torch.Tensor:
    """The cross-product matrix ``[v]×`` of ``v`` (…, 3): ``skew(v) @ u == v × u``.

    >>> skew(torch.tensor([1.0, 2.0, 3.0])).tolist()
    [[0.0, -3.0, 2.0], [3.0, 0.0, -1.0], [-2.0, 1.0, 0.0]]
    """
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape[:-1], 3, 3)


def vee(S: torch.Tensor) -> torch.Tensor:
    """The vector of the skew-symmetric part of ``S`` (…, 3, 3): ``vee(skew(v)) == v``.

    >>> vee(skew(torch.tensor([1.0, 2.0, 3.0]))).tolist()
    [1.0, 2.0, 3.0]
    """
    return 0.5 * torch.stack([S[..., 2, 1] - S[..., 1, 2], S[..., 0, 2] - S[..., 2, 0],
                              S[..., 1, 0] - S[..., 0, 1]], -1)


def _coefficients(theta2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``sin θ / θ``, ``(1 − cos θ) / θ²`` and ``(θ − sin θ) / θ³`` from ``θ²``, with series
    below ``_SMALL`` (no division by a small number, finite derivatives at 0)."""
    small = theta2 < _SMALL ** 2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)   # a safe stand-in for the series
    t = t2.sqrt()
    s = torch.sin(t)
    a = torch.where(small, 1 - theta2 / 6 + theta2 ** 2 / 120, s / t)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 ** 2 / 720,
                    2 * torch.sin(t / 2) ** 2 / t2)
    d = torch.where(small, 1 / 6 - theta2 / 120 + theta2 ** 2 / 5040, (t - s) / (t2 * t))
    return a, b, d


def so3_exp(w: torch.Tensor) -> torch.Tensor:
    """The rotation matrix (…, 3, 3) of the rotation vector ``w`` (…, 3) (Rodrigues' formula:
    axis ``w/|w|``, angle ``|w|``).

    >>> so3_exp(torch.zeros(3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    a, b, _ = _coefficients((w * w).sum(-1))
    K = skew(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a[..., None, None] * K + b[..., None, None] * (K @ K)


def so3_log(R: torch.Tensor) -> torch.Tensor:
    """The rotation vector (…, 3) of the rotation matrix ``R`` (…, 3, 3), angle in ``[0, π]``.

    Stable everywhere: the angle is ``atan2(|vee(R)|, (tr R − 1)/2)``; for small angles a
    series, for angles near π (``cos θ < −0.9``) the axis is the largest column of the
    symmetric part ``(R + Rᵀ)/2 − cos θ I = (1 − cos θ) a aᵀ``, signed by ``vee(R)``. At exactly
    π both signs are correct; one is returned.

    >>> import math
    >>> R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    >>> (so3_log(R).abs() - torch.tensor([math.pi, 0, 0], dtype=torch.float64)).abs().max() < 1e-12
    tensor(True)
    """
    if not tracked(R):
        return _log_values(R)
    s = vee(R)                                        # sin θ · axis
    c = ((R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2] - 1) / 2).clamp(-1.0, 1.0)
    s2 = (s * s).sum(-1)
    near_pi = c < _NEAR_PI
    # away from π: w = θ / sin θ · s, with θ / sin θ as a series for small angles
    small = s2 < _SMALL ** 2
    s2_safe = torch.where(small | near_pi, torch.ones_like(s2), s2)
    sn = s2_safe.sqrt()
    c_safe = torch.where(near_pi, torch.zeros_like(c), c)
    theta = torch.atan2(sn, c_safe)
    factor = torch.where(small, 1 + s2 / 6 + 3 * s2 ** 2 / 40, theta / sn)
    w = factor[..., None] * s
    return torch.where(near_pi[..., None], _log_near_pi(R, s, c, near_pi), w)


def _log_values(R: torch.Tensor) -> torch.Tensor:
    """``so3_log`` with no derivatives to keep, in few operations."""
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    s2 = torch.linalg.cross(eye.expand_as(R), R, dim=-2).sum(-1)  # vee(R − Rᵀ) = 2 sin θ · a
    c2 = torch.diagonal(R, dim1=-2, dim2=-1).sum(-1) - 1          # 2 cos θ
    return _rotvec(s2, c2, lambda rows: R[rows])


def _rotvec(s2: torch.Tensor, c2: torch.Tensor,
            matrix: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """The rotation vector from ``2 sin θ · a`` and ``2 cos θ``: ``θ / sin θ`` is accurate down
    to ``sin θ = 0`` (both from ``atan2``); only rows near π (whose matrices ``matrix(rows)``
    gives) take the other branch."""
    sn2 = torch.linalg.vector_norm(s2, dim=-1)
    w = (torch.atan2(sn2, c2) / sn2.clamp_min(torch.finfo(s2.dtype).tiny))[..., None] * s2
    near_pi = c2 < 2 * _NEAR_PI
    if bool(near_pi.any()):
        c = (0.5 * c2[near_pi]).clamp(-1.0, 1.0)
        w[near_pi] = _log_near_pi(matrix(near_pi), 0.5 * s2[near_pi], c,
                                  torch.ones_like(c, dtype=torch.bool))
    return w


def _log_near_pi(R: torch.Tensor, s: torch.Tensor, c: torch.Tensor,
                 near_pi: torch.Tensor) -> torch.Tensor:
    """``so3_log`` for ``cos θ < −0.9`` (rows elsewhere get a finite stand-in, discarded)."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=R.dtype, device=R.device))
    Rs = torch.where(near_pi[..., None, None], R, flip)
    cs = torch.where(near_pi, c, -torch.ones_like(c))
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    B = 0.5 * (Rs + Rs.transpose(-1, -2)) - cs[..., None, None] * eye
    k = torch.diagonal(B, dim1=-2, dim2=-1).argmax(-1)
    col = torch.take_along_dim(B, k[..., None, None].expand(*k.shape, 3, 1), -1)[..., 0]
    axis = col / (col * col).sum(-1, keepdim=True).sqrt()
    sign = torch.where((axis * s).sum(-1) < 0, -1.0, 1.0).to(R.dtype)
    s2 = torch.where(near_pi, (s * s).sum(-1), torch.zeros_like(cs))
    theta = torch.atan2(s2.clamp_min(torch.finfo(R.dtype).tiny).sqrt(), cs)
    return (sign * theta)[..., None] * axis


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """The homogeneous transform (…, 4, 4) of the twist ``ξ = (v, ω)`` (…, 6), i.e.
    ``expm([[ω]×, v], [0, 0]])``.

    >>> T = se3_exp(torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    >>> T[:3, 3].tolist()
    [1.0, 0.0, 0.0]
    """
    v, w = xi[..., :3], xi[..., 3:]
    a, b, d = _coefficients((w * w).sum(-1))
    K = skew(w)
    K2 = K @ K
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    R = eye + a[..., None, None] * K + b[..., None, None] * K2
    V = eye + b[..., None, None] * K + d[..., None, None] * K2
    p = (V @ v[..., None])[..., 0]
    return _homogeneous(R, p)


def se3_log(T: torch.Tensor) -> torch.Tensor:
    """The twist ``ξ = (v, ω)`` (…, 6) with ``se3_exp(ξ) == T`` and ``|ω| ≤ π``.

    >>> xi = torch.tensor([0.1, -0.2, 0.3, 0.4, 0.5, -0.6], dtype=torch.float64)
    >>> torch.allclose(se3_log(se3_exp(xi)), xi)
    True
    """
    w = so3_log(T[..., :3, :3])
    theta2 = (w * w).sum(-1)
    # V⁻¹ = I − ½[ω]× + e [ω]×² with e = (1 − (θ/2) cot(θ/2)) / θ²; the difference cancels
    # for small θ, so a series (exact to rounding for θ < 0.1) takes over there
    small = theta2 < 1e-2
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    half = t2.sqrt() / 2
    series = 1 / 12 + theta2 * (1 / 720 + theta2 * (1 / 30240 + theta2 / 1209600))
    e = torch.where(small, series, (1 - half * torch.cos(half) / torch.sin(half)) / t2)
    K = skew(w)
    eye = torch.eye(3, dtype=T.dtype, device=T.device)
    Vinv = eye - 0.5 * K + e[..., None, None] * (K @ K)
    v = (Vinv @ T[..., :3, 3:4])[..., 0]
    return torch.cat([v, w], -1)


def se3_inverse(T: torch.Tensor) -> torch.Tensor:
    """The inverse (…, 4, 4) of a rigid transform: ``[Rᵀ, −Rᵀ p]``.

    >>> T = se3_exp(torch.tensor([1.0, 2.0, 3.0, 0.1, 0.2, 0.3], dtype=torch.float64))
    >>> torch.allclose(se3_inverse(T) @ T, torch.eye(4, dtype=torch.float64))
    True
    """
    Rt = T[..., :3, :3].transpose(-1, -2)
    return _homogeneous(Rt, -(Rt @ T[..., :3, 3:4])[..., 0])


def _homogeneous(R: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    top = torch.cat([R, p[..., None]], -1)
    bottom = torch.zeros(*R.shape[:-2], 1, 4, dtype=R.dtype, device=R.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def pose_error(T: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The error (…, 6) of the pose ``T`` from ``target`` (both (…, 4, 4), base←end):
    ``(p − pₜ, log(R Rₜᵀ))`` — position difference and the rotation taking the target's axes to
    the pose's, both in world (base) axes, reference point the end frame's origin.

    Its derivative along a joint motion is the ``"local_world_aligned"`` Jacobian exactly where
    the error is zero (to first order in the angle elsewhere); its norms are the position error
    (m) and the rotation angle (rad) that ``ik`` tests against ``tol``.

    >>> T = se3_exp(torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, 0.2], dtype=torch.float64))
    >>> pose_error(T, torch.eye(4, dtype=torch.float64))[3:].tolist()
    [0.0, 0.0, 0.2]
    """
    R, Rt = T[..., :3, :3], target[..., :3, :3]
    dp = T[..., :3, 3] - target[..., :3, 3]
    if tracked(T) or tracked(target):
        return torch.cat([dp, so3_log(R @ Rt.transpose(-1, -2))], -1)
    # R Rₜᵀ = Σⱼ rⱼ tⱼᵀ, so vee(R Rₜᵀ − Rₜ Rᵀ) = Σⱼ tⱼ × rⱼ and tr(R Rₜᵀ) = Σ R ∘ Rₜ
    s2 = torch.linalg.cross(Rt, R, dim=-2).sum(-1)
    c2 = (R * Rt).sum((-2, -1)) - 1
    w = _rotvec(s2, c2, lambda rows: R[rows] @ Rt[rows].transpose(-1, -2))
    return torch.cat([dp, w], -1)


def pose_residual(T: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`pose_error` for an iterative solver, without derivatives and without branches:
    the angle is exact everywhere (``atan2``) and the axis is ``vee(R Rₜᵀ)`` normalised, exact
    except within rounding of a half turn, where any axis is as good (the x axis is taken when
    ``vee`` vanishes), so ``|error|`` is always the true distance.

    >>> T = se3_exp(torch.tensor([0.1, 0.0, 0.0, 0.0, 0.0, 3.0], dtype=torch.float64))
    >>> torch.allclose(pose_residual(T, torch.eye(4, dtype=torch.float64)),
    ...                pose_error(T, torch.eye(4, dtype=torch.float64)))
    True
    """
    R, Rt = T[..., :3, :3], target[..., :3, :3]
    s2 = torch.linalg.cross(Rt, R, dim=-2).sum(-1)                # 2 sin θ · axis
    c2 = (R * Rt).sum((-2, -1)) - 1                               # 2 cos θ
    sn2 = torch.linalg.vector_norm(s2, dim=-1, keepdim=True)
    axis = torch.where(sn2 > 0, s2 / sn2.clamp_min(torch.finfo(s2.dtype).tiny), _x_axis(s2))
    w = torch.atan2(sn2, c2[..., None]) * axis
    return torch.cat([T[..., :3, 3] - target[..., :3, 3], w], -1)


_X_AXIS: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}


def _x_axis(like: torch.Tensor) -> torch.Tensor:
    """The unit x axis in ``like``'s dtype and on its device (made once per pair)."""
    key = (like.dtype, like.device)
    x = _X_AXIS.get(key)
    if x is None:
        x = _X_AXIS[key] = torch.tensor([1.0, 0.0, 0.0], dtype=like.dtype, device=like.device)
    return x
