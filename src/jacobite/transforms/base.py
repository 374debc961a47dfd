"""The :class:`Transform` contract: a change of variables ``x = T(u)`` with its Jacobian by AD.

A transform maps *new* coordinates ``u`` (the ones you integrate over, e.g. ``(r, θ)``) to the
*original* coordinates ``x`` (e.g. ``(x, y)``). Its Jacobian ``∂x/∂u`` and the determinant
``det J`` (the local volume factor: ``dx = |det J| du``) always come from
``torch.func`` through :func:`jacobite.jacobian` / :func:`jacobite.batch_jacobian` — never from
hand-written derivatives.

>>> import torch
>>> from jacobite.transforms import Transform
>>> T = Transform(lambda u: torch.stack([u[0] + u[1], u[0] - u[1]]), variables=("s", "t"))
>>> T.det_jacobian(torch.tensor([1.0, 2.0], dtype=torch.float64)).item()
-2.0
>>> T.region
((-inf, inf), (-inf, inf))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .. import _validate, dense
from ..errors import ArgumentTypeError, NotSquareError, OutputTypeError, ShapeError
from ._region import Bounds, normalize_region

__all__ = ["Transform"]


def det(J: torch.Tensor) -> torch.Tensor:
    """``det J`` over the last two dimensions, in ``J``'s dtype. torch has no half-precision LU, so
    float16 / bfloat16 matrices are factorised in float32 and the determinant rounded back.

    >>> det(torch.eye(2, dtype=torch.float16)).item()
    1.0
    """
    if J.dtype in (torch.float16, torch.bfloat16):
        return torch.linalg.det(J.float()).to(J.dtype)
    return torch.linalg.det(J)


def _default_names(n: int, stem: str) -> tuple[str, ...]:
    if stem == "x" and n <= 3:
        return ("x", "y", "z")[:n]
    if stem == "u" and n <= 3:
        return ("u", "v", "w")[:n]
    return tuple(f"{stem}{i}" for i in range(n))


class Transform:
    """A change of variables ``x = fn(u)`` from new coordinates ``u`` to original ones ``x``.

    Args:
        fn: a torch function mapping ONE point ``u`` of shape ``(n,)`` to ``x`` of shape
            ``(n,)``. :meth:`forward` batches it over leading dimensions (``torch.func.vmap``),
            so index with ``u[0]`` or ``u[..., 0]`` as you like.
        variables: names of the new coordinates (their number ``n`` is the dimension), or an
            int ``n`` for the names ``u, v, w`` (``u0, u1, ...`` above three).
        region: default bounds in the new coordinates, one ``(low, high)`` pair per variable
            (infinite limits allowed); ``None`` is the whole space ``(-∞, ∞)ⁿ``.
        coordinates: names of the original coordinates (default ``x, y, z`` / ``x0, x1, ...``).
        name: a label used in messages and results.
        constant_jacobian: promise that ``fn`` is affine, so its Jacobian is the same everywhere;
            :func:`jacobite.transforms.integrate` then differentiates once and reuses it.

    >>> import torch
    >>> T = Transform(lambda u: u ** 3, variables=1, name="cube")
    >>> T.jacobian(torch.tensor([[2.0], [1.0]], dtype=torch.float64)).tolist()
    [[[12.0]], [[3.0]]]
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], variables: Sequence[str] | int,
        region: Bounds | None = None, *, coordinates: Sequence[str] | None = None,
        name: str = "user", constant_jacobian: bool = False,
    ) -> None:
        if not callable(fn):
            raise OutputTypeError(f"a Transform needs a callable torch function u -> x, got "
                                  f"{type(fn).__name__}; e.g. Transform(lambda u: 2 * u, 2)")
        if isinstance(variables, bool) or not isinstance(variables, (int, Sequence)) or \
                isinstance(variables, str):
            raise ShapeError("variables must be a sequence of names like ('r', 'theta') or the "
                             f"dimension as an int, got {variables!r}")
        if isinstance(variables, int) and variables < 1:
            raise ShapeError(f"a Transform needs at least one variable, got variables="
                             f"{variables}; pass e.g. variables=2")
        names = (_default_names(variables, "u") if isinstance(variables, int)
                 else tuple(str(v) for v in variables))
        if not names:
            raise ShapeError("a Transform needs at least one variable; pass e.g. variables=2")
        if len(set(names)) != len(names):
            raise ShapeError(f"variable names must be distinct, got {names}")
        self.fn = fn
        self.variables: tuple[str, ...] = names
        if not isinstance(name, str):
            raise ArgumentTypeError(f"name must be a string, got {name!r}; e.g. name='shear'")
        self.name = name
        self.constant_jacobian = _validate.boolean(constant_jacobian, "constant_jacobian")
        whole = tuple((-math.inf, math.inf) for _ in names)
        self.region: tuple[tuple[float, float], ...] = (
            whole if region is None else normalize_region(region, names, whole, self.name))
        if coordinates is not None and (isinstance(coordinates, str)
                                        or not isinstance(coordinates, Sequence)):
            raise ArgumentTypeError(f"coordinates must be a sequence of names like ('x', 'y'), "
                                    f"got {coordinates!r}")
        coords = _default_names(len(names), "x") if coordinates is None else tuple(coordinates)
        if len(coords) != len(names):
            raise NotSquareError(
                f"a change of variables maps R^n to R^n: {len(names)} variables {names} but "
                f"{len(coords)} coordinates {tuple(coords)}; give one coordinate per variable")
        self.coordinates: tuple[str, ...] = tuple(str(c) for c in coords)

    # ------------------------------------------------------------------ description
    @property
    def dim(self) -> int:
        """The number of coordinates ``n`` (the map is ``R^n -> R^n``)."""
        return len(self.variables)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, variables={self.variables}, "
                f"coordinates={self.coordinates}, region={self.region})")

    def _override_region(self, region: Bounds | None) -> None:
        if region is not None:
            self.region = normalize_region(region, self.variables, self.region, self.name)

    def with_region(self, region: Bounds) -> Transform:
        """A copy whose default region is ``region`` (a dict changes only the bounds it names).

        >>> from jacobite.transforms import Polar
        >>> Polar().with_region({"r": (0, 1)}).region[0]
        (0.0, 1.0)
        """
        new = copy.copy(self)
        new._override_region(region)
        return new

    def __matmul__(self, inner: Transform) -> Transform:
        """The composition ``self ∘ inner``: ``u ↦ self(inner(u))``, with ``inner``'s variables
        and region and ``self``'s coordinates (``det`` multiplies, by the chain rule).

        >>> import torch
        >>> from jacobite.transforms import Affine, Polar
        >>> E = Affine(torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))) @ Polar()
        >>> E.variables, round(E.det_jacobian(torch.tensor([1.0, 0.4])).item(), 5)
        (('r', 'theta'), 6.0)
        """
        if not isinstance(inner, Transform):
            return NotImplemented
        if inner.dim != self.dim:
            raise ShapeError(f"cannot compose the {self.name} transform (dimension {self.dim}) "
                             f"with the {inner.name} transform (dimension {inner.dim})")
        outer_fn, inner_fn = self.fn, inner.fn

        def composed(u: torch.Tensor) -> torch.Tensor:
            return outer_fn(inner_fn(u))

        return Transform(composed, inner.variables, inner.region, coordinates=self.coordinates,
                         name=f"{self.name}∘{inner.name}",
                         constant_jacobian=self.constant_jacobian and inner.constant_jacobian)

    # ------------------------------------------------------------------ evaluation
    def _as_points(self, u: Any) -> torch.Tensor:
        t = u if isinstance(u, torch.Tensor) else torch.as_tensor(u, dtype=torch.float64)
        if not (t.dtype.is_floating_point or t.dtype.is_complex):
            t = t.to(torch.float64)
        if t.ndim == 0 or t.shape[-1] != self.dim:
            raise ShapeError(
                f"the {self.name} transform takes points with last dimension {self.dim} "
                f"({', '.join(self.variables)}), got shape {tuple(t.shape)}; stack the "
                f"coordinates along the last axis")
        return t

    def _check_out(self, x: Any, u: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise OutputTypeError(f"the {self.name} transform returned {type(x).__name__}; its "
                                  "function must return a torch tensor of shape (n,)")
        if tuple(x.shape) != tuple(u.shape):
            raise NotSquareError(
                f"the {self.name} transform maps a point of shape {tuple(u.shape)} to shape "
                f"{tuple(x.shape)}; a change of variables must map R^{self.dim} to "
                f"R^{self.dim} (return torch.stack([...]) with one entry per coordinate)")
        return x

    def forward(self, u: Any) -> torch.Tensor:
        """``x = T(u)`` for ``u`` of shape ``(..., n)``; returns shape ``(..., n)``.

        >>> from jacobite.transforms import Polar
        >>> Polar().forward([[1.0, 0.0], [2.0, 0.0]]).tolist()
        [[1.0, 0.0], [2.0, 0.0]]
        """
        u = self._as_points(u)
        if u.ndim == 1:
            return self._check_out(self.fn(u), u)
        flat = u.reshape(-1, self.dim)
        if flat.shape[0] == 0:
            return u.clone()
        x = torch.func.vmap(self.fn)(flat)
        self._check_out(x[0], flat[0])
        return x.reshape(u.shape)

    __call__ = forward

    def jacobian(self, u: Any) -> torch.Tensor:
        """``J = ∂x/∂u`` by AD: shape ``(n, n)`` for one point, ``(..., n, n)`` for a batch.

        >>> import torch
        >>> from jacobite.transforms import Polar
        >>> Polar().jacobian(torch.tensor([2.0, 0.0], dtype=torch.float64)).tolist()
        [[1.0, 0.0], [0.0, 2.0]]
        """
        u = self._as_points(u)
        n = self.dim
        if u.ndim == 1:
            return dense.jacobian(self.forward, u)
        flat = u.reshape(-1, n)
        if flat.shape[0] == 0:
            return u.new_zeros((*u.shape, n))
        J = dense.batch_jacobian(self.forward, flat)
        return J.reshape(*u.shape, n)

    def det_jacobian(self, u: Any) -> torch.Tensor:
        """``det J`` at ``u``: the signed local volume factor, shape ``(...)`` for ``(..., n)``.

        Integrals use ``|det J|`` (:func:`jacobite.transforms.integrate`).

        >>> import math, torch
        >>> from jacobite.transforms import Spherical
        >>> u = torch.tensor([2.0, math.pi / 2, 0.3], dtype=torch.float64)
        >>> round(Spherical().det_jacobian(u).item(), 12)   # r² sin θ
        4.0
        """
        return det(self.jacobian(u))

    def value_and_det(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(T(u), det J(u))`` for one point ``u`` of shape ``(n,)`` from a single AD pass.

        >>> import torch
        >>> from jacobite.transforms import Polar
        >>> x, d = Polar().value_and_det(torch.tensor([3.0, 0.0], dtype=torch.float64))
        >>> x.tolist(), d.item()
        ([3.0, 0.0], 3.0)
        """
        u = self._as_points(u)
        if u.ndim != 1:
            raise ShapeError(f"value_and_det takes one point of shape ({self.dim},), got shape "
                             f"{tuple(u.shape)}; use forward() and det_jacobian() for batches")
        x, J = dense.value_and_jacobian(self.forward, u, mode="forward", chunk_size=None,
                                        check_finite=False)
        return x, det(J.reshape(self.dim, self.dim))
