"""Jacobian determinants of sampled deformation fields (image registration), and their picture.

A deformation sends a grid point ``x`` to ``φ(x) = x + u(x)``; ``det J_φ = det(I + ∇u)`` is the
local factor by which it scales area (2-D) or volume (3-D), and ``det J ≤ 0`` marks a fold.

**Layout.** A 2-D field is ``(B, 2, H, W)`` and a 3-D field ``(B, 3, D, H, W)``. Channel ``0`` is
the ``x`` component (along ``W``, the columns, to the right), channel ``1`` the ``y`` component
(along ``H``, the rows, down), channel ``2`` the ``z`` component (along ``D``, the slices) — the
pixel convention of :mod:`jacobite.vision`, ``(x, y)`` in that order. ``spacing`` (one number or
one per axis in the same ``(x, y[, z])`` order) is the distance between neighbouring samples;
the field is in the same units (``spacing=1``: pixels). ``kind="displacement"`` reads ``u``;
``kind="map"`` reads ``φ`` itself (absolute positions, the grid point ``(i, j)`` sitting at
``(j·sx, i·sy)``).

**Stencil.** ``J[a][b] = ∂φ_a/∂x_b`` by finite differences along each grid axis, with ``h`` that
axis' spacing:

* ``method="central"`` (second order everywhere): ``(f[i+1] − f[i−1]) / 2h`` inside, and the
  one-sided second-order ``(−3f[0] + 4f[1] − f[2]) / 2h`` and
  ``(3f[n−1] − 4f[n−2] + f[n−3]) / 2h`` on the first and last sample (3 samples per axis at
  least). Exact for fields that are quadratic along each axis.
* ``method="forward"`` (first order): ``(f[i+1] − f[i]) / h``, the last sample repeating the
  difference before it (2 samples per axis at least). Exact for affine fields.

>>> import torch
>>> u = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
>>> u[:, 0] = 0.5 * torch.arange(5.0)  # u_x = x / 2: the image is stretched 1.5x along x
>>> r = jacobian_determinant(u)
>>> r.det.shape, float(r.min), float(r.max), float(r.fraction_folded)
(torch.Size([1, 4, 5]), 1.5, 1.5, 0.0)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .. import _validate
from ..errors import ArgumentTypeError, InvalidOptionError, ShapeError
from ._checks import floating

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DOMAINS", "KINDS", "METHODS", "JacobianDeterminant", "jacobian_determinant",
           "plot_jacobian_determinant"]

KINDS = ("displacement", "map")
METHODS = ("central", "forward")
DOMAINS = ("deformed", "reference")


@dataclass(frozen=True)
class JacobianDeterminant:
    """``det J`` of a deformation per pixel/voxel, and its folding statistics per field.

    Attributes:
        det: ``(B, H, W)`` or ``(B, D, H, W)``, in the field's dtype (differentiable in it).
        fraction_folded: ``(B,)``, the fraction of samples with ``det ≤ 0``.
        min: ``(B,)``, the smallest ``det``.
        max: ``(B,)``, the largest ``det``.
    """

    det: torch.Tensor
    fraction_folded: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor

    @property
    def folded(self) -> torch.Tensor:
        """The boolean mask ``det ≤ 0``, shaped like :attr:`det`."""
        return self.det <= 0


def _spacing(spacing: Any, dims: int) -> tuple[float, ...]:
    if isinstance(spacing, (numbers.Real, torch.Tensor)) and not isinstance(spacing, bool):
        return (_validate.positive_float(spacing, "spacing"),) * dims
    if not isinstance(spacing, (tuple, list)):
        raise ArgumentTypeError(f"spacing must be a number > 0 or {dims} of them in (x, y"
                                f"{', z' if dims == 3 else ''}) order, e.g. spacing=1.0, got "
                                f"{type(spacing).__name__}")
    if len(spacing) != dims:
        raise ShapeError(f"spacing must give {dims} numbers for a {dims}-D field, in (x, y"
                         f"{', z' if dims == 3 else ''}) order, got {len(spacing)}")
    return tuple(_validate.positive_float(s, "spacing") for s in spacing)


def _check_field(field: Any, kind: Any, method: Any) -> tuple[int, str, str]:
    floating(field, "displacement", (4, 5), finite=True,
             example="(B, 2, H, W) or (B, 3, D, H, W); add a batch axis with field[None]")
    dims = field.dim() - 2
    if field.shape[1] != dims:
        raise ShapeError(f"a {dims}-D field must have {dims} channels on axis 1 (x, y"
                         f"{', z' if dims == 3 else ''}): pass (B, {dims}, "
                         f"{'D, ' if dims == 3 else ''}H, W), got shape {tuple(field.shape)}")
    kind = _validate.choice(kind, "kind", KINDS)
    method = _validate.choice(method, "method", METHODS)
    least = 3 if method == "central" else 2
    if min(field.shape[2:]) < least:
        raise ShapeError(f"method={method!r} needs at least {least} samples along every grid "
                         f"axis, got shape {tuple(field.shape)}; pass a larger field"
                         f"{' or method=' + repr('forward') if least == 3 else ''}")
    return dims, kind, method


def _derivative(f: torch.Tensor, dim: int, h: float, method: str) -> torch.Tensor:
    """``∂f/∂(axis dim)`` by the module's stencil, same shape as ``f`` (the central one is
    ``torch.gradient`` with second-order edges)."""
    if method == "central":
        return torch.gradient(f, spacing=h, dim=dim, edge_order=2)[0]
    d = torch.diff(f, dim=dim)
    return torch.cat([d, d.narrow(dim, -1, 1)], dim=dim) / h


def _det(J: list[list[torch.Tensor]]) -> torch.Tensor:
    if len(J) == 2:
        return J[0][0] * J[1][1] - J[0][1] * J[1][0]
    return (J[0][0] * (J[1][1] * J[2][2] - J[1][2] * J[2][1])
            - J[0][1] * (J[1][0] * J[2][2] - J[1][2] * J[2][0])
            + J[0][2] * (J[1][0] * J[2][1] - J[1][1] * J[2][0]))


def jacobian_determinant(displacement: torch.Tensor, *, spacing: float | Sequence[float] = 1.0,
                         kind: str = "displacement",
                         method: str = "central") -> JacobianDeterminant:
    """``det J`` of ``x ↦ x + u(x)`` (or of ``φ`` with ``kind="map"``) at every grid sample.

    Args:
        displacement: ``(B, 2, H, W)`` or ``(B, 3, D, H, W)``; channels ``(x, y[, z])`` with
            ``x`` along ``W`` (right), ``y`` along ``H`` (down), ``z`` along ``D``.
        spacing: the sample distance, one number or one per axis in ``(x, y[, z])`` order.
        kind: ``"displacement"`` (``u``, so ``J = I + ∇u``) or ``"map"`` (``φ``, ``J = ∇φ``).
        method: ``"central"`` (second order, one-sided second order on the border) or
            ``"forward"`` (first order, the last sample repeating the previous difference).

    Returns:
        a :class:`JacobianDeterminant`: ``det`` per sample and ``fraction_folded`` (``det ≤ 0``),
        ``min`` and ``max`` per field.

    Raises:
        ShapeError: not ``(B, 2, H, W)`` / ``(B, 3, D, H, W)``, too few samples for the stencil,
            or a ``spacing`` of the wrong length.
        NonFiniteInputError: NaN or Inf in the field.

    >>> import torch
    >>> A = torch.tensor([[1.2, 0.3], [-0.1, 0.9]], dtype=torch.float64)
    >>> ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    >>> u = torch.einsum("ab,bhw->ahw", A - torch.eye(2), torch.stack([xs, ys]).double())
    >>> r = jacobian_determinant(u[None])
    >>> torch.allclose(r.det, torch.linalg.det(A).expand(1, 6, 7))
    True
    """
    dims, kind, method = _check_field(displacement, kind, method)
    h = _spacing(spacing, dims)
    grads = [_derivative(displacement, -1 - b, h[b], method) for b in range(dims)]
    J = [[grads[b][:, a] + (1.0 if kind == "displacement" and a == b else 0.0)
          for b in range(dims)] for a in range(dims)]
    det = _det(J)
    flat = det.reshape(det.shape[0], -1)
    folded = (flat.detach() <= 0).to(det.dtype).mean(dim=1)
    return JacobianDeterminant(det, folded, flat.amin(dim=1), flat.amax(dim=1))


def plot_jacobian_determinant(displacement: torch.Tensor, *,
                              spacing: float | Sequence[float] = 1.0,
                              kind: str = "displacement", method: str = "central",
                              index: int = 0, step: int | None = None,
                              domain: str = "deformed", ax: Axes | None = None,
                              title: str | None = None, cmap: str | None = None,
                              save: Any = None) -> Figure:
    """Draw field ``index`` of a 2-D deformation: the deformed grid ``φ(x)`` and the
    :func:`jacobian_determinant` of the same options, ``y`` pointing down as in the image.

    ``domain="deformed"`` colours the deformed grid itself (as :func:`jacobite.viz.deformed_grid`
    does) and outlines ``det J = 0`` there, since folded cells lie under the cells folded over
    them; ``domain="reference"`` colours each sample at its own grid position ``x``, where no
    fold is hidden, with the deformed grid drawn over it. The colours are a diverging map centred
    at 0 when ``det J`` changes sign (folds in blue), else ``"viridis"``. ``step`` is the number
    of samples between drawn grid lines (default: about 16 lines per axis).

    >>> u = 0.3 * torch.randn(1, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    >>> fig = plot_jacobian_determinant(u)
    >>> fig.axes[1].get_ylabel()
    'det J'
    """
    from ..viz._common import colormap, figure_and_axes, save_figure

    res = jacobian_determinant(displacement, spacing=spacing, kind=kind, method=method)
    if displacement.dim() != 4:
        raise ShapeError(f"plot_jacobian_determinant draws 2-D fields (B, 2, H, W), got shape "
                         f"{tuple(displacement.shape)}; pass one slice's in-plane field, or plot "
                         f"jacobian_determinant(field).det[b, z] with jacobite.viz.heatmap")
    index = _validate.nonnegative_int(index, "index")
    b, _, rows, cols = displacement.shape
    if index >= b:
        raise InvalidOptionError(f"index must pick one of the {b} fields, 0 to {b - 1}, got "
                                 f"{index}")
    step = (max(1, min(rows, cols) // 16) if step is None
            else _validate.positive_int(step, "step"))
    domain = _validate.choice(domain, "domain", DOMAINS)
    hx, hy = _spacing(spacing, 2)
    u = displacement[index].detach().to("cpu", torch.float64)
    ys, xs = torch.meshgrid(torch.arange(rows, dtype=torch.float64) * hy,
                            torch.arange(cols, dtype=torch.float64) * hx, indexing="ij")
    if kind == "displacement":
        u = u + torch.stack([xs, ys])
    X, Y = u[0].numpy(), u[1].numpy()
    CX, CY = (X, Y) if domain == "deformed" else (xs.numpy(), ys.numpy())
    D = res.det[index].detach().to("cpu", torch.float64).numpy()

    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize, TwoSlopeNorm

    lo, hi = float(D.min()), float(D.max())
    norm: Normalize
    if lo < 0 < hi:
        norm, default = TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi), "RdBu_r"
    else:
        if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1.0):
            pad = 0.5 * abs(lo) or 0.5
            lo, hi = lo - pad, hi + pad
        norm, default = Normalize(lo, hi), "viridis"
    fig, ax = figure_and_axes(ax, (6.5, 5.5))
    mesh = ax.pcolormesh(CX, CY, D, shading="gouraud", cmap=colormap(cmap or default),
                         norm=norm)
    if domain == "deformed" and lo <= 0 < hi:
        ax.contour(X, Y, D, levels=[0.0], colors="blue", linewidths=1.2)
    lines = ([np.column_stack([X[i], Y[i]]) for i in range(0, rows, step)]
             + [np.column_stack([X[:, j], Y[:, j]]) for j in range(0, cols, step)])
    ax.add_collection(LineCollection(lines, colors="black", linewidths=0.5))
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_xlabel("x (right)")
    ax.set_ylabel("y (down)")
    folded = float(res.fraction_folded[index])
    where = "on the deformed grid" if domain == "deformed" else "at each reference sample"
    ax.set_title(title if title is not None else f"det J {where} (folded: {folded:.2%})")
    fig.colorbar(mesh, ax=ax, label="det J")
    if save is not None:
        save_figure(fig, save)
    return fig
