"""Warp models: coordinate maps from target pixels to source pixels, with closed-form Jacobians.

Points are pixel coordinates ``(x, y)``: ``x`` to the right (column), ``y`` down (row), pixel
centres at integers, ``(0, 0)`` the centre of the top-left pixel. A warp maps a *target* point
``p`` to the *source* point it reads, so the warped image is ``warped(p) = source(W(p; θ))``.
The matrix models use 3×3 matrices in this convention (``matrix(θ) @ [x, y, 1]``), with ``θ = 0``
the identity:

============== ===== =========================================================================
model          p     matrix
============== ===== =========================================================================
translation    2     ``[[1, 0, θ0], [0, 1, θ1], [0, 0, 1]]``
euclidean      3     rotation by ``θ0`` (radians, about the origin) and translation ``(θ1, θ2)``
similarity     4     ``[[1+θ0, -θ1, θ2], [θ1, 1+θ0, θ3], [0, 0, 1]]``
affine         6     ``I + [[θ0, θ1, θ2], [θ3, θ4, θ5], [0, 0, 0]]``
homography     8     ``I + [[θ0, θ1, θ2], [θ3, θ4, θ5], [θ6, θ7, 0]]`` (then divided by w)
============== ===== =========================================================================

:class:`ThinPlateSpline` moves control points by ``θ`` and interpolates; :class:`CoordinateMap`
wraps any differentiable torch function of ``(θ, points)``.

>>> import torch
>>> w = get_warp("homography")
>>> pts = torch.tensor([[0.0, 0.0], [2.0, 1.0]])
>>> w.apply(torch.tensor([[0.0, 0, 1, 0, 0, 2, 0, 0]]), pts)
tensor([[[1., 2.],
         [3., 3.]]])
>>> w.jacobian(torch.zeros(1, 8), pts).shape
torch.Size([1, 2, 2, 8])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from .. import _validate
from ..errors import ArgumentTypeError, InvalidOptionError, ShapeError
from ._checks import floating

__all__ = ["WARPS", "CoordinateMap", "MatrixWarp", "ThinPlateSpline", "Warp", "get_warp"]


class Warp:
    """A parametric coordinate map ``W(p; θ)`` from target to source pixel coordinates.

    Subclasses set ``num_params`` and implement :meth:`apply` and :meth:`jacobian` for
    ``params`` of shape ``(B, num_params)`` and ``points`` of shape ``(P, 2)`` or ``(B, P, 2)``.
    """

    name: str = "warp"
    num_params: int = 0

    def apply(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Source points ``(B, P, 2)`` that the target ``points`` read."""
        raise NotImplementedError

    def jacobian(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """``∂W/∂θ`` at every point: ``(B, P, 2, num_params)``."""
        raise NotImplementedError

    def identity(self, batch: int = 1, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> torch.Tensor:
        """Parameters of the identity map, ``(batch, num_params)``."""
        return torch.zeros(batch, self.num_params, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, num_params={self.num_params})"


def _xy(points: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    pts = points.expand(batch, *points.shape[-2:]) if points.dim() == 2 else points
    return pts[..., 0], pts[..., 1]


class MatrixWarp(Warp):
    """One of the matrix models of the table above (``get_warp(name)``).

    >>> w = get_warp("affine")
    >>> w.matrix(torch.tensor([[0.0, 0, 3, 0, 0, 0]]))
    tensor([[[1., 0., 3.],
             [0., 1., 0.],
             [0., 0., 1.]]])
    """

    _SIZES: ClassVar[dict[str, int]] = {"translation": 2, "euclidean": 3, "similarity": 4,
                                        "affine": 6, "homography": 8}

    def __init__(self, name: str) -> None:
        self.name = _validate.choice(name, "warp", tuple(self._SIZES))
        self.num_params = self._SIZES[self.name]

    def matrix(self, params: torch.Tensor) -> torch.Tensor:
        """The ``(B, 3, 3)`` matrices mapping target to source pixel coordinates."""
        p = params
        one, zero = torch.ones_like(p[:, 0]), torch.zeros_like(p[:, 0])
        if self.name == "translation":
            rows = [one, zero, p[:, 0], zero, one, p[:, 1]]
        elif self.name == "euclidean":
            c, s = torch.cos(p[:, 0]), torch.sin(p[:, 0])
            rows = [c, -s, p[:, 1], s, c, p[:, 2]]
        elif self.name == "similarity":
            rows = [1 + p[:, 0], -p[:, 1], p[:, 2], p[:, 1], 1 + p[:, 0], p[:, 3]]
        else:
            rows = [1 + p[:, 0], p[:, 1], p[:, 2], p[:, 3], 1 + p[:, 4], p[:, 5]]
        last = ([p[:, 6], p[:, 7], one] if self.name == "homography" else [zero, zero, one])
        return torch.stack(rows + last, dim=-1).reshape(-1, 3, 3)

    def apply(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Source points ``(B, P, 2)``: ``points + θ`` for a translation, otherwise one batched
        matrix product (and a division by ``w`` for a homography)."""
        if self.name == "translation":
            return (points + params[:, None, :]).expand(params.shape[0], -1, -1)
        m = self.matrix(params)  # (B, 3, 3)
        pts = points.expand(m.shape[0], -1, -1)
        out = torch.baddbmm(m[:, None, :2, 2], pts, m[:, :2, :2].transpose(1, 2))
        if self.name == "homography":
            out = out / torch.baddbmm(m[:, None, 2:, 2], pts, m[:, 2:, :2].transpose(1, 2))
        return out

    def jacobian(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        b = params.shape[0]
        x, y = _xy(points, b)
        one, zero = torch.ones_like(x), torch.zeros_like(x)
        if self.name == "translation":
            ju, jv = [one, zero], [zero, one]
        elif self.name == "euclidean":
            c, s = torch.cos(params[:, :1]), torch.sin(params[:, :1])
            ju = [-s * x - c * y, one, zero]
            jv = [c * x - s * y, zero, one]
        elif self.name == "similarity":
            ju, jv = [x, -y, one, zero], [y, x, zero, one]
        elif self.name == "affine":
            ju, jv = [x, y, one, zero, zero, zero], [zero, zero, zero, x, y, one]
        else:
            src = self.apply(params, points)
            p = params[:, :, None]
            w = p[:, 6] * x + p[:, 7] * y + 1
            xw, yw, iw = x / w, y / w, 1 / w
            u, v = src[..., 0], src[..., 1]
            ju = [xw, yw, iw, zero, zero, zero, -xw * u, -yw * u]
            jv = [zero, zero, zero, xw, yw, iw, -xw * v, -yw * v]
        return torch.stack([torch.stack(ju, -1), torch.stack(jv, -1)], dim=-2)


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """``U(r) = r² log r²`` (with ``U(0) = 0``) from squared distances."""
    safe = torch.where(r2 > 0, r2, torch.ones_like(r2))
    return torch.where(r2 > 0, r2 * torch.log(safe), torch.zeros_like(r2))


class ThinPlateSpline(Warp):
    """Control points ``c_k`` (pixels, ``(K, 2)``, at least 3 not on one line) moved by
    ``θ = (dx_0, dy_0, dx_1, dy_1, ...)``; every point moves by the thin-plate interpolant of
    those displacements: ``W(p) = p + Σ_k w_k U(|p - c_k|) + a_0 + a_1 x + a_2 y`` (per axis),
    ``U(r) = r² log r²``. The map is linear in ``θ``, so its Jacobian does not depend on ``θ``.

    >>> tps = ThinPlateSpline(torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]]))
    >>> shift = torch.tensor([[1.0, 0.0] * 4])  # every control point one pixel right
    >>> tps.apply(shift, torch.tensor([[2.0, 2.0]]))
    tensor([[[3., 2.]]])
    """

    name = "thin_plate_spline"

    def __init__(self, control_points: torch.Tensor) -> None:
        floating(control_points, "control_points", (2,), last=2, finite=True,
                 example="(K, 2), one pixel (x, y) row per point")
        c = control_points.detach().double()
        poly = torch.cat([torch.ones_like(c[:, :1]), c], dim=1)
        if len(c) < 3 or int(torch.linalg.matrix_rank(poly)) < 3:
            raise InvalidOptionError("control_points must hold at least 3 points not on one line "
                                     "(the spline's affine part is undetermined otherwise); add "
                                     "a point off the line")
        if len(torch.unique(c, dim=0)) < len(c):
            raise InvalidOptionError("control_points has repeated points; remove the duplicates")
        self.control_points = control_points
        self.num_params = 2 * control_points.shape[0]

    def _weights(self, points: torch.Tensor) -> torch.Tensor:
        """``L (…, P, K)``: the displacement at each point is ``L @ d`` (``d``: ``(K, 2)``)."""
        c = self.control_points.to(points.dtype)
        k = c.shape[0]
        sys_ = c.new_zeros(k + 3, k + 3)
        sys_[:k, :k] = _tps_kernel(((c[:, None] - c[None]) ** 2).sum(-1))
        poly = torch.cat([torch.ones_like(c[:, :1]), c], dim=1)
        sys_[:k, k:], sys_[k:, :k] = poly, poly.T
        phi = _tps_kernel(((points[..., :, None, :] - c) ** 2).sum(-1))
        row = torch.cat([phi, torch.ones_like(phi[..., :1]), points], dim=-1)  # (…, P, K+3)
        inv = torch.linalg.inv(sys_)[:, :k]  # interpolation weights of the K data values
        return row @ inv

    def apply(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        lw = self._weights(points)
        disp = params.reshape(params.shape[0], -1, 2)
        moved = lw @ disp if points.dim() == 3 else torch.einsum("pk,bkj->bpj", lw, disp)
        return points + moved

    def jacobian(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        lw = self._weights(points)
        if lw.dim() == 2:
            lw = lw.expand(params.shape[0], *lw.shape)
        b, p, k = lw.shape
        out = lw.new_zeros(b, p, 2, k, 2)
        out[:, :, 0, :, 0] = lw
        out[:, :, 1, :, 1] = lw
        return out.reshape(b, p, 2, 2 * k)


class CoordinateMap(Warp):
    """Any differentiable torch function ``fn(θ, points) -> source points`` for one image
    (``θ``: ``(num_params,)``, ``points``: ``(P, 2)``); batched with ``vmap`` and differentiated
    by ``num_params`` forward-mode products (``jacfwd``).

    >>> shear = CoordinateMap(lambda t, p: p + t[0] * p[:, 1:] * torch.tensor([1.0, 0.0]), 1)
    >>> shear.apply(torch.tensor([[0.5]]), torch.tensor([[0.0, 2.0]]))
    tensor([[[1., 2.]]])
    """

    name = "coordinate_map"

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 num_params: int) -> None:
        self.fn = _validate.callable_(fn, "fn")
        self.num_params = _validate.positive_int(num_params, "num_params")

    def _check(self, out: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.shape != points.shape[-2:]:
            raise ShapeError(f"the coordinate map must return the source points with the shape "
                             f"of the points, {tuple(points.shape[-2:])}; got "
                             f"{getattr(out, 'shape', type(out).__name__)}")
        return out

    def apply(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        dims = (0, 0 if points.dim() == 3 else None)
        return torch.func.vmap(lambda t, p: self._check(self.fn(t, p), p), in_dims=dims)(
            params, points)

    def jacobian(self, params: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        dims = (0, 0 if points.dim() == 3 else None)
        jac = torch.func.jacfwd(lambda t, p: self._check(self.fn(t, p), p), argnums=0)
        return torch.func.vmap(jac, in_dims=dims)(params, points)


#: the named matrix models
WARPS = tuple(MatrixWarp._SIZES)


def get_warp(warp: str | Warp | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             num_params: int | None = None) -> Warp:
    """A :class:`Warp` from a name in :data:`WARPS`, a warp, or a coordinate function
    ``fn(θ, points)`` (wrapped as :class:`CoordinateMap` with ``num_params`` parameters).

    >>> get_warp("similarity").num_params
    4
    """
    if isinstance(warp, Warp):
        return warp
    if isinstance(warp, str):
        if warp not in WARPS:
            raise InvalidOptionError(f"warp must be one of {WARPS}, a Warp (ThinPlateSpline, "
                                     f"CoordinateMap) or a coordinate function; got {warp!r}")
        return MatrixWarp(warp)
    if callable(warp):
        if num_params is not None:
            return CoordinateMap(warp, num_params)
        raise ArgumentTypeError("wrap a coordinate function as CoordinateMap(fn, num_params) "
                                "so that its number of parameters is known")
    raise ArgumentTypeError(f"warp must be one of {WARPS}, a Warp (ThinPlateSpline, "
                            f"CoordinateMap) or a coordinate function; got {warp!r}")
