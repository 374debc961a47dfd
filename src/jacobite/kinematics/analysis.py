"""How well a manipulator moves at a configuration: measures of its Jacobian ``J`` (…, 6, dof).

Every function takes a batch of Jacobians, as :meth:`Chain.jacobian` returns them (rows 0–2
linear velocity, rows 3–5 angular velocity), and the block to measure with ``part=``:
``"full"`` (all rows: metres and radians mixed, so the numbers depend on the length unit),
``"linear"`` (rows 0–2) or ``"angular"`` (rows 3–5). Any other (…, m, n) matrix is measured
whole with ``part="full"``.

* :func:`singular_values` — σ₁ ≥ … ≥ σ_k, ``k = min(m, n)``;
* :func:`manipulability` — Yoshikawa's ``w = √det(J Jᵀ)`` (``√det(Jᵀ J)`` when J has more rows
  than columns), the product of the singular values: the volume of the velocity ellipsoid up
  to a constant;
* :func:`condition_number` — σ₁ / σ_k (``inf`` at a singular configuration);
* :func:`velocity_ellipsoid`, :func:`force_ellipsoid` — principal axes and radii of the
  end-effector velocities reached by unit joint speeds ``‖q̇‖ ≤ 1`` and of the wrenches
  balanced by unit joint torques ``‖τ‖ ≤ 1``;
* :func:`nearest_singularity` — the configuration along a path ``q(t)`` where σ_min is
  smallest, sampled and then refined by SciPy's bounded scalar minimiser.

Results keep J's dtype and device and are differentiable where the singular values are
distinct and nonzero.

>>> import torch
>>> J = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
>>> float(manipulability(J)), float(condition_number(J))
(1.0, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from .. import _validate
from ..errors import ArgumentTypeError, DtypeError, NonFiniteInputError, ShapeError

__all__ = [
    "Ellipsoid",
    "NearestSingularity",
    "condition_number",
    "force_ellipsoid",
    "manipulability",
    "nearest_singularity",
    "singular_values",
    "velocity_ellipsoid",
]

Part = Literal["full", "linear", "angular"]
PARTS = ("full", "linear", "angular")


def _block(J: Any, part: Any, name: str = "J") -> torch.Tensor:
    """The rows of ``J`` that ``part`` names, after checking J is a floating (…, m, n) tensor."""
    if not isinstance(J, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor of shape (..., 6, dof) such as "
                                f"chain.jacobian(q) returns, got {type(J).__name__}")
    if not J.is_floating_point():   # complex tensors are not floating point either
        raise DtypeError(f"{name} must be a real floating tensor, got {J.dtype}; convert it "
                         f"with {name}.double()")
    if J.ndim < 2 or J.shape[-1] == 0 or J.shape[-2] == 0:
        raise ShapeError(f"{name} must have shape (..., m, n) with m, n ≥ 1 (a manipulator "
                         f"Jacobian is (..., 6, dof)), got {tuple(J.shape)}")
    if not _validate.all_finite(J.detach()):
        raise NonFiniteInputError(f"{name} contains NaN or Inf; check the configuration it was "
                                  f"computed at (finite joint values within the limits)")
    part = _validate.choice(part, "part", PARTS)
    if part == "full":
        return J
    if J.shape[-2] != 6:
        raise ShapeError(f"part={part!r} takes rows of a (..., 6, dof) Jacobian (linear rows "
                         f"0-2, angular rows 3-5), got shape {tuple(J.shape)}; use "
                         f"part='full' to measure the whole matrix")
    return J[..., :3, :] if part == "linear" else J[..., 3:, :]


def singular_values(J: torch.Tensor, *, part: Part = "full") -> torch.Tensor:
    """Singular values of ``J`` (or of its ``part`` block), largest first: shape (…, min(m, n)).

    >>> import torch
    >>> singular_values(torch.diag(torch.tensor([1.0, 3.0, 2.0])))
    tensor([3., 2., 1.])
    """
    return torch.linalg.svdvals(_block(J, part))


def manipulability(J: torch.Tensor, *, part: Part = "full") -> torch.Tensor:
    """Yoshikawa's manipulability ``w = √det(J Jᵀ)`` per Jacobian: shape (…).

    Computed as the product of the singular values, which equals ``√det(J Jᵀ)`` for a wide or
    square J and ``√det(Jᵀ J)`` for a tall one (fewer joints than rows, where ``det(J Jᵀ)`` is
    always 0), and stays ≥ 0 where rounding would make ``det(J Jᵀ)`` slightly negative. For a
    planar two-link arm with links ``l1``, ``l2`` it is ``l1 · l2 · |sin q2|`` (``part="linear"``).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    >>> float(manipulability(J))
    2.0
    """
    return singular_values(J, part=part).prod(dim=-1)


def condition_number(J: torch.Tensor, *, part: Part = "full") -> torch.Tensor:
    """``σ_max / σ_min`` per Jacobian, shape (…): 1 for an isotropic configuration, ``inf`` at
    a singular one. With ``part="full"`` the value depends on the length unit (rows in metres
    beside rows in radians); measure ``"linear"`` or ``"angular"`` to avoid that.

    >>> import torch
    >>> float(condition_number(torch.tensor([[3.0, 0.0], [0.0, 0.0]])))
    inf
    """
    return _ratio(singular_values(J, part=part))


def _ratio(s: torch.Tensor) -> torch.Tensor:
    """``s[0] / s[-1]`` of singular values ``s`` (…, k), largest first; ``inf`` where the last
    is 0."""
    top, low = s[..., 0], s[..., -1]
    return torch.where(low > 0, top / torch.where(low > 0, low, torch.ones_like(low)),
                       torch.full_like(top, math.inf))


@dataclass(frozen=True)
class Ellipsoid:
    """Principal axes and radii of an ellipsoid ``{c + axes @ diag(radii) @ u : ‖u‖ ≤ 1}``.

    ``axes`` (…, k, k): unit principal directions as columns, in the frame of the Jacobian's
    rows (world axes for ``frame="local_world_aligned"``), largest radius first for a
    velocity ellipsoid; ``radii`` (…, k): the semi-axis lengths (0 or ``inf`` along directions
    the arm cannot move in or cannot resist); ``kind``: ``"velocity"`` or ``"force"``;
    ``part``: the Jacobian block it was built from.
    """

    axes: torch.Tensor
    radii: torch.Tensor
    kind: str
    part: str

    def volume(self) -> torch.Tensor:
        """The k-dimensional volume ``V_k · ∏ radii`` (``V_k`` the unit ball's), shape (…)."""
        k = self.radii.shape[-1]
        unit = math.pi ** (k / 2) / math.gamma(k / 2 + 1)
        return unit * self.radii.prod(dim=-1)


def _svd_axes(J: torch.Tensor, part: Any) -> tuple[torch.Tensor, torch.Tensor, str]:
    B = _block(J, part)
    U, s, _ = torch.linalg.svd(B, full_matrices=True)
    m = B.shape[-2]
    if s.shape[-1] < m:  # fewer joints than task directions: those directions have σ = 0
        s = torch.cat([s, s.new_zeros(*s.shape[:-1], m - s.shape[-1])], dim=-1)
    return U, s, str(part)


def velocity_ellipsoid(J: torch.Tensor, *, part: Part = "linear") -> Ellipsoid:
    """The end-effector velocities reached by joint speeds with ``‖q̇‖ ≤ 1``: the image of the
    unit ball under ``J`` (its ``part`` block). Axes are the left singular vectors, radii the
    singular values (0 along a direction the arm cannot move in).

    >>> import torch
    >>> J = torch.zeros(6, 2, dtype=torch.float64); J[0, 0], J[1, 1] = 2.0, 0.5
    >>> velocity_ellipsoid(J).radii
    tensor([2.0000, 0.5000, 0.0000], dtype=torch.float64)
    """
    U, s, p = _svd_axes(J, part)
    return Ellipsoid(U, s, "velocity", p)


def force_ellipsoid(J: torch.Tensor, *, part: Part = "linear") -> Ellipsoid:
    """The end-effector forces (``part="linear"``) or torques (``"angular"``) balanced by joint
    torques with ``‖τ‖ ≤ 1``, where ``τ = Jᵀ f``: the same axes as the velocity ellipsoid, radii
    ``1 / σ`` (``inf`` along a direction the arm resists without any joint torque).

    >>> import torch
    >>> J = torch.zeros(6, 2, dtype=torch.float64); J[0, 0], J[1, 1] = 2.0, 0.5
    >>> force_ellipsoid(J).radii
    tensor([0.5000, 2.0000,    inf], dtype=torch.float64)
    """
    U, s, p = _svd_axes(J, part)
    r = torch.where(s > 0, 1 / torch.where(s > 0, s, torch.ones_like(s)),
                    torch.full_like(s, math.inf))
    return Ellipsoid(U, r, "force", p)


class _Kinematic(Protocol):
    dof: int

    def jacobian(self, q: torch.Tensor, *, frame: str = ..., point: Any = ...,
                 end: Any = ...) -> torch.Tensor: ...


@dataclass(frozen=True)
class NearestSingularity:
    """Where along a path the Jacobian comes closest to losing rank.

    ``t``: the path parameter of the minimum of σ_min (in ``[0, 1]``); ``q`` (dof,): the
    configuration there; ``sigma_min``, ``manipulability``, ``condition_number``: the measures
    of ``J(q)`` there (of the chosen ``part``); ``t_samples`` (T,), ``sigma_samples`` (T,),
    ``manipulability_samples`` (T,): the measures at the samples the search started from
    (plot them to see the whole path).
    """

    t: float
    q: torch.Tensor
    sigma_min: float
    manipulability: float
    condition_number: float
    t_samples: torch.Tensor
    sigma_samples: torch.Tensor
    manipulability_samples: torch.Tensor


def _path_function(path: Any, dof: int) -> tuple[Callable[[float], torch.Tensor], int | None]:
    """``q(t)`` for t ∈ [0, 1] and the number of samples a tabulated path has (else None)."""
    if isinstance(path, torch.Tensor):
        if not path.is_floating_point():
            raise DtypeError(f"path samples must be a floating tensor, got {path.dtype}; "
                             f"convert them with path.double()")
        if path.ndim != 2 or path.shape[-1] != dof or path.shape[0] < 2:
            raise ShapeError(f"path samples must have shape (T, dof) = (T, {dof}) with T ≥ 2, "
                             f"got {tuple(path.shape)}")
        if not _validate.all_finite(path):
            raise NonFiniteInputError("path samples contain NaN or Inf; pass finite joint "
                                      "values")
        samples = path.detach()
        T = samples.shape[0]

        def linear(t: float) -> torch.Tensor:  # piecewise linear between the samples
            x = min(max(t, 0.0), 1.0) * (T - 1)
            i = min(int(x), T - 2)
            w = x - i
            return samples[i] * (1 - w) + samples[i + 1] * w

        return linear, T
    if not callable(path):
        raise ArgumentTypeError(f"path must be a callable t -> q (t in [0, 1], q of shape "
                                f"({dof},)) or a tensor of samples (T, {dof}), got "
                                f"{type(path).__name__}")

    def called(t: float) -> torch.Tensor:
        q = path(t)
        if not isinstance(q, torch.Tensor) or q.shape != (dof,) or not q.is_floating_point():
            raise ShapeError(f"path(t) must return a floating tensor of shape ({dof},), got "
                             f"{getattr(q, 'shape', type(q).__name__)}; return one "
                             f"configuration per t")
        return q.detach()

    return called, None


def nearest_singularity(chain: _Kinematic, path: Any, *, samples: int = 101,
                        part: Part = "full", frame: str = "local_world_aligned",
                        end: Any = None, xatol: float = 1e-9) -> NearestSingularity:
    """The point of the path ``q(t)``, ``t ∈ [0, 1]``, where the smallest singular value of
    the Jacobian (its ``part`` block) is least.

    σ_min is evaluated at ``samples`` evenly spaced ``t`` in one batched Jacobian call; the
    bracket around the smallest sample is then refined with
    ``scipy.optimize.minimize_scalar(method="bounded")`` to ``xatol`` in ``t``. A local search:
    a dip narrower than the sample spacing can be missed, so sample finely enough.

    Args:
        chain: a :class:`~jacobite.kinematics.Chain` (anything with ``dof`` and
            ``jacobian(q, frame=..., end=...)``).
        path: a callable ``t -> q`` (a (dof,) tensor per float ``t``), or a (T, dof) tensor of
            configurations, joined by straight lines in joint space and spread evenly over
            ``t ∈ [0, 1]``.
        samples: number of evenly spaced ``t`` to start from (≥ 3; for a tabulated path of
            ``T`` rows, ``samples=T`` evaluates exactly the given rows).
        part, frame, end: which Jacobian block, frame and end frame to measure (σ_min does not
            depend on the axes, so ``"local"`` and ``"local_world_aligned"`` agree).
        xatol: the tolerance in ``t`` of the refinement.

    >>> import torch
    >>> class Planar2:  # two links of length 1: singular where q2 = 0
    ...     dof = 2
    ...     def jacobian(self, q, *, frame="local_world_aligned", end=None):
    ...         a, b = q[..., 0], q[..., 0] + q[..., 1]
    ...         J = torch.zeros(*q.shape[:-1], 6, 2, dtype=q.dtype)
    ...         J[..., 0, 0], J[..., 0, 1] = -a.sin() - b.sin(), -b.sin()
    ...         J[..., 1, 0], J[..., 1, 1] = a.cos() + b.cos(), b.cos()
    ...         return J
    >>> line = lambda t: torch.tensor([0.2, -0.3 + t], dtype=torch.float64)
    >>> r = nearest_singularity(Planar2(), line, part="linear")
    >>> round(r.t, 6), r.sigma_min < 1e-8
    (0.3, True)
    """
    from scipy.optimize import minimize_scalar  # loaded on use

    dof = getattr(chain, "dof", None)
    if not isinstance(dof, int) or dof < 1 or not callable(getattr(chain, "jacobian", None)):
        raise ArgumentTypeError(f"chain must be a jacobite.kinematics.Chain (with .dof and "
                                f".jacobian), got {type(chain).__name__}; build one with "
                                f"Chain.from_urdf(...)")
    n = _validate.positive_int(samples, "samples", minimum=3)
    _validate.choice(part, "part", PARTS)
    xatol = _validate.positive_float(xatol, "xatol")
    q_of, _ = _path_function(path, dof)

    def measures(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            J = chain.jacobian(q, frame=frame, end=end)
        if J.ndim != q.ndim + 1:
            raise ShapeError(f"the chain gives Jacobians of shape {tuple(J.shape)} for "
                             f"configurations {tuple(q.shape)}: several end frames; pick one "
                             f"with end='<link name>'")
        s = singular_values(J, part=part)
        return s[..., -1], s.prod(dim=-1)

    ts = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    Q = torch.stack([q_of(float(t)) for t in ts])
    sig, w = measures(Q)
    if not _validate.all_finite(sig):
        raise NonFiniteInputError("the Jacobian along the path contains NaN or Inf; check the "
                                  "path returns finite joint values")
    k = int(torch.argmin(sig))
    lo, hi = float(ts[max(k - 1, 0)]), float(ts[min(k + 1, n - 1)])
    res = minimize_scalar(lambda t: float(measures(q_of(float(t)))[0]), bounds=(lo, hi),
                          method="bounded", options={"xatol": xatol})
    t_best, s_best = float(res.x), float(res.fun)
    if s_best > float(sig[k]):  # the refinement never does worse than the best sample
        t_best, s_best = float(ts[k]), float(sig[k])
    q_best = q_of(t_best)
    with torch.no_grad():   # one decomposition for both measures at the best point
        s = singular_values(chain.jacobian(q_best, frame=frame, end=end), part=part)
    return NearestSingularity(
        t=t_best, q=q_best, sigma_min=s_best, manipulability=float(s.prod(dim=-1)),
        condition_number=float(_ratio(s)), t_samples=ts.to(sig.dtype),
        sigma_samples=sig, manipulability_samples=w)
