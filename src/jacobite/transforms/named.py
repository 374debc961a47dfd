"""Named changes of variables: polar, cylindrical, spherical and affine, plus lookup by name.

Conventions (new coordinates → original Cartesian coordinates):

* **polar** ``(r, theta) → (r cos θ, r sin θ)``; region ``r ∈ [0, ∞), θ ∈ [0, 2π)``;
  ``det J = r``.
* **cylindrical** ``(r, theta, z) → (r cos θ, r sin θ, z)``; region ``r ∈ [0, ∞),
  θ ∈ [0, 2π), z ∈ (−∞, ∞)``; ``det J = r``.
* **spherical** (the physics / ISO 80000-2 convention) ``(r, theta, phi) → (r sin θ cos φ,
  r sin θ sin φ, r cos θ)`` with ``θ`` the *polar* angle from the ``+z`` axis and ``φ`` the
  *azimuth* in the ``xy`` plane; region ``r ∈ [0, ∞), θ ∈ [0, π], φ ∈ [0, 2π)``;
  ``det J = r² sin θ``.
* **affine** ``u → A u + b``; region the whole space; ``det J = det A``.

The determinants above are what the tests compare against: the library itself always gets
``J`` by automatic differentiation.

>>> import torch
>>> T = get_transform("polar")
>>> T.variables, T.coordinates
(('r', 'theta'), ('x', 'y'))
>>> T.det_jacobian(torch.tensor([2.0, 1.0], dtype=torch.float64)).item()
2.0
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ArgumentTypeError, DtypeError, InvalidOptionError, NotSquareError, ShapeError
from ._region import Bounds
from .base import Transform

__all__ = ["TRANSFORMS", "Affine", "Cylindrical", "Polar", "Spherical", "get_transform"]

TWO_PI = 2.0 * math.pi


def _polar(u: torch.Tensor) -> torch.Tensor:
    r, t = u[..., 0], u[..., 1]
    return torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=-1)


def _cylindrical(u: torch.Tensor) -> torch.Tensor:
    r, t, z = u[..., 0], u[..., 1], u[..., 2]
    return torch.stack([r * torch.cos(t), r * torch.sin(t), z], dim=-1)


def _spherical(u: torch.Tensor) -> torch.Tensor:
    r, theta, phi = u[..., 0], u[..., 1], u[..., 2]
    s = r * torch.sin(theta)
    return torch.stack([s * torch.cos(phi), s * torch.sin(phi), r * torch.cos(theta)], dim=-1)


class Polar(Transform):
    """Polar coordinates ``(r, theta) → (x, y) = (r cos θ, r sin θ)``; ``|det J| = r``.

    ``region`` overrides the default ``r ∈ [0, ∞), θ ∈ [0, 2π)`` (a dict changes some bounds).

    >>> import math
    >>> Polar(region={"r": (0, 1)}).region == ((0.0, 1.0), (0.0, 2 * math.pi))
    True
    """

    def __init__(self, region: Bounds | None = None) -> None:
        super().__init__(_polar, ("r", "theta"), ((0.0, math.inf), (0.0, TWO_PI)),
                         coordinates=("x", "y"), name="polar")
        self._override_region(region)


class Cylindrical(Transform):
    """Cylindrical coordinates ``(r, theta, z) → (r cos θ, r sin θ, z)``; ``|det J| = r``.

    >>> Cylindrical().variables
    ('r', 'theta', 'z')
    """

    def __init__(self, region: Bounds | None = None) -> None:
        super().__init__(_cylindrical, ("r", "theta", "z"),
                           ((0.0, math.inf), (0.0, TWO_PI), (-math.inf, math.inf)),
                           coordinates=("x", "y", "z"), name="cylindrical")
        self._override_region(region)


class Spherical(Transform):
    """Spherical coordinates, physics convention: ``θ`` polar angle from ``+z``, ``φ`` azimuth.

    ``(r, theta, phi) → (r sin θ cos φ, r sin θ sin φ, r cos θ)``; ``|det J| = r² sin θ``;
    default region ``r ∈ [0, ∞), θ ∈ [0, π], φ ∈ [0, 2π)``.

    >>> import math, torch
    >>> Spherical().forward(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)).tolist()
    [0.0, 0.0, 1.0]
    """

    def __init__(self, region: Bounds | None = None) -> None:
        super().__init__(_spherical, ("r", "theta", "phi"),
                           ((0.0, math.inf), (0.0, math.pi), (0.0, TWO_PI)),
                           coordinates=("x", "y", "z"), name="spherical")
        self._override_region(region)


class Affine(Transform):
    """The linear change of variables ``x = A u + b`` (``A`` square); ``det J = det A``.

    Its Jacobian is constant, so integration differentiates once (by AD) and reuses it.

    >>> import torch
    >>> T = Affine(torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64))
    >>> T.det_jacobian(torch.zeros(2, dtype=torch.float64)).item()
    6.0
    """

    def __init__(self, A: Any, b: Any = None, region: Bounds | None = None, *,
                 variables: Sequence[str] | None = None) -> None:
        A_t = _as_tensor(A, "A")
        if not (A_t.dtype.is_floating_point or A_t.dtype.is_complex):
            A_t = A_t.to(torch.float64)
        if A_t.ndim != 2:
            raise ShapeError(f"Affine needs a 2-D matrix A, got shape {tuple(A_t.shape)}")
        n = A_t.shape[0]
        if A_t.shape[1] != n or n == 0:
            raise NotSquareError(f"Affine needs a square non-empty matrix A (a change of "
                                 f"variables maps R^n to R^n), got shape {tuple(A_t.shape)}")
        if A_t.is_complex():
            raise DtypeError("Affine needs a real matrix A; integrate real and imaginary "
                             "parts separately")
        b_t = torch.zeros(n, dtype=A_t.dtype) if b is None else _as_tensor(b, "b").to(A_t.dtype)
        if tuple(b_t.shape) != (n,):
            raise ShapeError(f"Affine's offset b must have shape ({n},), got {tuple(b_t.shape)}")
        if not (torch.isfinite(A_t).all() and torch.isfinite(b_t).all()):
            raise InvalidOptionError("Affine's A and b must be finite; remove NaN/Inf entries")
        self.A, self.b = A_t, b_t

        def affine(u: torch.Tensor) -> torch.Tensor:
            return u @ self.A.to(u.dtype).T + self.b.to(u.dtype)

        if variables is not None and (isinstance(variables, str) or len(variables) != n):
            raise ShapeError(f"Affine with a {n}x{n} matrix needs {n} variable names, got "
                             f"{variables!r}; e.g. variables={tuple(f'u{i}' for i in range(n))}")
        super().__init__(affine, n if variables is None else variables, region, name="affine",
                         constant_jacobian=True)


def _as_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    try:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"Affine's {name} must be a tensor or an array of numbers, got "
                                f"{type(a).__name__}; e.g. A=[[2.0, 0.0], [0.0, 1.0]]") from exc


#: Transforms known by name (each entry builds a fresh instance).
TRANSFORMS: dict[str, Callable[[], Transform]] = {
    "polar": Polar, "cylindrical": Cylindrical, "spherical": Spherical,
}


def get_transform(spec: str | Transform) -> Transform:
    """A :class:`Transform` from a name (``"polar"``, ``"cylindrical"``, ``"spherical"``) or
    an existing transform (returned as is).

    >>> get_transform("spherical").region[1]
    (0.0, 3.141592653589793)
    >>> get_transform("elliptic")
    Traceback (most recent call last):
    ...
    jacobite.errors.InvalidOptionError: unknown transform 'elliptic'; ...
    """
    if isinstance(spec, Transform):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in TRANSFORMS:
            return TRANSFORMS[key]()
        if key == "affine":
            raise InvalidOptionError("the affine transform needs its matrix: pass "
                                     "transform=Affine(A, b) instead of the name 'affine'")
        close = difflib.get_close_matches(key, [*TRANSFORMS, "affine"], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InvalidOptionError(
            f"unknown transform {spec!r}; {hint}known names are {sorted(TRANSFORMS)}, or pass "
            f"Affine(A, b) or Transform(fn, variables) for your own map")
    if callable(spec):
        raise InvalidOptionError("a bare function is not a transform: wrap it as "
                                 "Transform(fn, variables=n) (or with variable names)")
    raise InvalidOptionError(f"transform must be a name {sorted(TRANSFORMS)} or a Transform, got "
                             f"{type(spec).__name__}")
