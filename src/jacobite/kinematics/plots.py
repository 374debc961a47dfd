"""Pictures of manipulability (the optional ``plot`` extra: matplotlib, loaded on use).

* :func:`plot_ellipsoids` — velocity or force ellipsoids in 3-D, centred on the end positions
  they belong to, with the end-effector path;
* :func:`plot_path_measures` — manipulability, σ_min or any measure along a path ``q(t)``, with
  the nearest singularity marked.

Like :mod:`jacobite.viz`, each returns a matplotlib ``Figure`` drawn on the Agg canvas (no
pyplot state, no window) and takes ``save=PATH``.

>>> import torch
>>> from jacobite.kinematics import velocity_ellipsoid
>>> J = torch.zeros(6, 3, dtype=torch.float64); J[0, 0], J[1, 1], J[2, 2] = 0.3, 0.2, 0.1
>>> fig = plot_ellipsoids(velocity_ellipsoid(J), torch.zeros(3))
>>> fig.axes[0].name
'3d'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _validate
from ..errors import ArgumentTypeError, NonFiniteInputError, ShapeError
from .analysis import Ellipsoid, NearestSingularity

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_ellipsoids", "plot_path_measures"]


def _points(value: Any, name: str, n: int | None) -> np.ndarray:
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be a tensor of points (N, 3), got "
                                f"{type(value).__name__}")
    a = (value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
         else np.asarray(value)).astype(np.float64)
    a = a.reshape(1, -1) if a.ndim == 1 else a
    if a.ndim != 2 or a.shape[1] != 3 or (n is not None and a.shape[0] != n):
        want = f"({n}, 3)" if n is not None else "(N, 3)"
        raise ShapeError(f"{name} must have shape {want}, got {tuple(value.shape)}; pass one "
                         f"3-D point per ellipsoid")
    if not np.isfinite(a).all():
        raise NonFiniteInputError(f"{name} contains NaN or Inf; pass finite positions")
    return a


def plot_ellipsoids(ellipsoid: Ellipsoid, centers: Any, *, path: Any = None,
                    scale: float = 1.0, ax: Axes | None = None, title: str | None = None,
                    color: str = "tab:blue", save: Any = None) -> Figure:
    """Draw 3-D ellipsoids (a batch of N, from :func:`velocity_ellipsoid` or
    :func:`force_ellipsoid` with ``part="linear"`` or ``"angular"``) as wireframes centred on
    ``centers`` (N, 3) — typically the end positions ``chain.fk(q)[..., :3, 3]`` — and the
    polyline ``path`` (T, 3) if given.

    ``scale`` multiplies every radius (velocities per rad/s and metres do not share a unit);
    an infinite radius of a force ellipsoid (a direction resisted without joint torque) is
    drawn at 3× the largest finite one.
    """
    from ..viz._common import figure_and_axes, new_figure, save_figure  # on use: matplotlib

    if not isinstance(ellipsoid, Ellipsoid):
        raise ArgumentTypeError(f"ellipsoid must be an Ellipsoid from velocity_ellipsoid() or "
                                f"force_ellipsoid(), got {type(ellipsoid).__name__}")
    axes = ellipsoid.axes.detach().cpu().double().numpy()
    radii = ellipsoid.radii.detach().cpu().double().numpy()
    if axes.shape[-1] != 3:
        raise ShapeError(f"plot_ellipsoids draws 3-D ellipsoids, got {axes.shape[-1]}-D ones; "
                         f"build them with part='linear' or part='angular'")
    axes, radii = axes.reshape(-1, 3, 3), radii.reshape(-1, 3)
    c = _points(centers, "centers", axes.shape[0])
    scale = _validate.positive_float(scale, "scale")
    finite = radii[np.isfinite(radii)]
    cap = 3 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    radii = np.where(np.isfinite(radii), radii, cap) * scale
    ax3: Any  # a 3-D axes: matplotlib types it as a plain Axes
    if ax is None:
        fig = new_figure((6.0, 5.0))
        ax3 = fig.add_subplot(projection="3d")
    elif getattr(ax, "name", "") != "3d":
        raise ArgumentTypeError("ax must be a 3-D matplotlib Axes (add_subplot(projection="
                                "'3d')), or None for a new figure")
    else:
        fig, ax3 = figure_and_axes(ax)
    u, v = np.meshgrid(np.linspace(0, 2 * math.pi, 25), np.linspace(0, math.pi, 13))
    ball = np.stack([np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v)])  # (3, 13, 25)
    for R, r, p in zip(axes, radii, c, strict=True):
        surf = np.einsum("ij,j,jkl->ikl", R, r, ball) + p[:, None, None]
        ax3.plot_wireframe(*surf, color=color, linewidth=0.4, alpha=0.6)
    pts = [c]
    if path is not None:
        line = _points(path, "path", None)
        ax3.plot(*line.T, color="k", linewidth=1.2)
        pts.append(line)
    allp = np.concatenate(pts)
    span = max(float(np.ptp(allp, axis=0).max()), 2 * float(radii.max()), 1e-9)
    mid = (allp.max(0) + allp.min(0)) / 2
    for setter, m in zip((ax3.set_xlim, ax3.set_ylim, ax3.set_zlim), mid, strict=True):
        setter(m - span / 2, m + span / 2)
    ax3.set_xlabel("x [m]")
    ax3.set_ylabel("y [m]")
    ax3.set_zlabel("z [m]")
    ax3.set_title(title if title is not None else f"{ellipsoid.kind} ellipsoids "
                                                 f"({ellipsoid.part})")
    if save is not None:
        save_figure(fig, save)
    return fig


def plot_path_measures(t: Any, measures: Mapping[str, Any], *,
                       nearest: NearestSingularity | None = None, log: bool = False,
                       ax: Axes | None = None, title: str | None = None,
                       save: Any = None) -> Figure:
    """Plot each of ``measures`` (name → (T,) values, e.g. ``{"manipulability": w}``) against
    the path parameter ``t`` (T,); with ``nearest`` (from :func:`nearest_singularity`), mark
    where σ_min is least. ``log=True`` uses a logarithmic y axis.

    >>> import torch
    >>> t = torch.linspace(0, 1, 5)
    >>> fig = plot_path_measures(t, {"w": t * (1 - t)})
    >>> fig.axes[0].get_xlabel()
    'path parameter t'
    """
    from ..viz._common import figure_and_axes, save_figure  # loaded on use: matplotlib

    if not isinstance(t, (torch.Tensor, np.ndarray)):
        raise ArgumentTypeError(f"t must be a tensor of path parameters (T,), got "
                                f"{type(t).__name__}")
    tt = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    if tt.ndim != 1 or tt.size < 2:
        raise ShapeError(f"t must have shape (T,) with T ≥ 2, got {tt.shape}")
    if not isinstance(measures, Mapping) or not measures:
        raise ArgumentTypeError("measures must be a non-empty dict {name: (T,) values}, e.g. "
                                "{'manipulability': w}")
    log = _validate.boolean(log, "log")
    fig, ax = figure_and_axes(ax, (6.0, 3.5))
    for name, values in measures.items():
        y = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values,
                       dtype=np.float64)
        if y.shape != tt.shape:
            raise ShapeError(f"measure {name!r} has shape {y.shape}, t has {tt.shape}; give one "
                             f"value per t")
        ax.plot(tt, y, label=str(name))
    if nearest is not None:
        ax.axvline(nearest.t, color="tab:red", linestyle="--", linewidth=1,
                   label=f"least σ_min = {nearest.sigma_min:.2e} at t = {nearest.t:.3f}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("path parameter t")
    ax.legend(fontsize=8)
    ax.set_title(title if title is not None else "along the path")
    if save is not None:
        save_figure(fig, save)
    return fig
