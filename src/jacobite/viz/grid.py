"""``deformed_grid``: the image of a regular grid under a 2-D map, coloured by ``det J``.

Where the colour is large the map stretches area, near 0 it squeezes it, and a sign change
(a diverging colormap centred at 0 is used then) marks a fold where orientation flips —
``|det J|`` is the local factor by which the map scales area.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _validate, dense
from .._modules import keeps_state
from ..errors import InvalidOptionError, NonFiniteInputError, OutputTypeError, ShapeError
from ._common import PathLike, colormap, figure_and_axes, save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["deformed_grid"]


def _limits(lim: Any, name: str) -> tuple[float, float]:
    ok = (isinstance(lim, (tuple, list)) and len(lim) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in lim))
    if not ok or not all(math.isfinite(float(v)) for v in lim):
        raise InvalidOptionError(f"{name} must be a pair of finite numbers (low, high), got "
                                 f"{lim!r}")
    lo, hi = float(lim[0]), float(lim[1])
    if not lo < hi:
        raise InvalidOptionError(f"{name} = {lim!r} is empty or reversed; give (low, high) with "
                                 f"low < high")
    return lo, hi


def _count(v: Any, name: str, low: int, high: int) -> int:
    v = _validate.positive_int(v, name, minimum=low)
    if v > high:
        raise InvalidOptionError(f"{name} must be an int in [{low}, {high}], got {v!r}")
    return v


@keeps_state
def deformed_grid(f: Callable[[torch.Tensor], torch.Tensor], xlim: tuple[float, float] = (-1, 1),
                  ylim: tuple[float, float] = (-1, 1), n: int = 11, *, refine: int = 8,
                  ax: Axes | None = None, title: str | None = None, cmap: str | None = None,
                  save: PathLike | None = None) -> Figure:
    """Draw the image under ``f`` of an ``n × n`` grid over ``xlim × ylim``, coloured by
    ``det J_f`` (computed by :func:`jacobite.batch_jacobian`), with a colorbar.

    Args:
        f: a torch function mapping ONE point of shape ``(2,)`` to a point of shape ``(2,)``
            (a :class:`jacobite.transforms.Transform` of dimension 2 works too).
        xlim, ylim: the rectangle of the domain the grid covers.
        n: grid lines per direction.
        refine: points per grid cell along each line, so curved images look curved; the colour
            is interpolated between these points (Gouraud shading).
        ax: draw into these axes; ``None``: a new figure.
        title: the axes title (default ``"image of a grid, coloured by det J"``).
        cmap: colormap name; default ``"RdBu_r"`` with a ``TwoSlopeNorm`` centred at 0 when
            ``det J`` changes sign (folds show in blue), else ``"viridis"`` from its minimum to
            its maximum.
        save: also write the figure to this path.

    Raises:
        ShapeError: ``f`` does not map R² to R².
        NonFiniteInputError: the image or ``det J`` is NaN/Inf somewhere on the grid.

    >>> import torch
    >>> polar = lambda u: torch.stack([u[0] * torch.cos(u[1]), u[0] * torch.sin(u[1])])
    >>> fig = deformed_grid(polar, (0.2, 1.0), (0.0, 3.0), n=6)
    >>> len(fig.axes), fig.axes[1].get_ylabel()
    (2, 'det J')
    """
    if not callable(f):
        raise OutputTypeError(f"deformed_grid needs a torch function of a 2-D point, got "
                              f"{type(f).__name__}")
    (x0, x1), (y0, y1) = _limits(xlim, "xlim"), _limits(ylim, "ylim")
    n = _count(n, "n", 2, 400)
    refine = _count(refine, "refine", 1, 64)
    N = (n - 1) * refine + 1
    gx = torch.linspace(x0, x1, N, dtype=torch.float64)
    gy = torch.linspace(y0, y1, N, dtype=torch.float64)
    U, V = torch.meshgrid(gx, gy, indexing="xy")  # U[i, j] = gx[j], V[i, j] = gy[i]
    pts = torch.stack([U.reshape(-1), V.reshape(-1)], dim=-1)
    image, J = dense.batch_jacobian(f, pts, return_value=True)
    if not isinstance(image, torch.Tensor) or tuple(image.shape) != (N * N, 2):
        shape = tuple(image.shape[1:]) if isinstance(image, torch.Tensor) else type(image)
        raise ShapeError(f"deformed_grid draws maps from R^2 to R^2; f maps a point of shape "
                         f"(2,) to {shape}; return torch.stack([u, v])")
    det = torch.linalg.det(J.reshape(-1, 2, 2))
    if not (_validate.all_finite(image) and _validate.all_finite(det)):
        bad = int((~(torch.isfinite(image).all(-1) & torch.isfinite(det))).nonzero()[0, 0])
        raise NonFiniteInputError(
            f"f or its Jacobian is not finite at ({float(pts[bad, 0]):.4g}, "
            f"{float(pts[bad, 1]):.4g}); move "
            f"xlim/ylim away from the singularity")
    X = image[:, 0].reshape(N, N).detach().numpy()
    Y = image[:, 1].reshape(N, N).detach().numpy()
    D = det.reshape(N, N).detach().numpy()

    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize, TwoSlopeNorm

    lo, hi = float(D.min()), float(D.max())
    norm: Normalize
    if lo < 0 < hi:  # a fold: full-strength blue for det < 0 however small, white at 0
        norm, default = TwoSlopeNorm(vcenter=0.0, vmin=lo, vmax=hi), "RdBu_r"
    else:
        if hi - lo <= 1e-12 * max(abs(lo), abs(hi), 1.0):  # constant det J (a linear map)
            pad = 0.5 * abs(lo) or 0.5
            lo, hi = lo - pad, hi + pad
        norm, default = Normalize(lo, hi), "viridis"
    fig, ax = figure_and_axes(ax, (6.5, 5.5))
    mesh = ax.pcolormesh(X, Y, D, shading="gouraud", cmap=colormap(cmap or default), norm=norm)
    rows = [np.column_stack([X[i], Y[i]]) for i in range(0, N, refine)]
    cols = [np.column_stack([X[:, j], Y[:, j]]) for j in range(0, N, refine)]
    ax.add_collection(LineCollection(rows + cols, colors="black", linewidths=0.6))
    ax.set_aspect("equal", adjustable="datalim")
    ax.autoscale_view()
    ax.set_xlabel("f₁(x, y)")
    ax.set_ylabel("f₂(x, y)")
    ax.set_title(title if title is not None else "image of a grid, coloured by det J")
    fig.colorbar(mesh, ax=ax, label="det J")
    if save is not None:
        save_figure(fig, save)
    return fig
