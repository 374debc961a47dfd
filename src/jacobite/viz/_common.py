"""Shared plumbing of the pictures: matplotlib (optional extra), figures on the Agg canvas,
matrices of any kind as NumPy arrays under the memory budget, centred norms, saving.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas — never through pyplot —
so the library changes no global state, opens no window and leaks no figures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _validate
from ..config import format_bytes, get_memory_budget
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    ShapeError,
    require,
)
from ..operators import JacobianOperator

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["save_figure"]

PathLike = str | os.PathLike


def new_figure(figsize: tuple[float, float] = (6.0, 5.0)) -> Figure:
    """An empty ``Figure`` with constrained layout, drawn by Agg (no pyplot, no window)."""
    require("matplotlib", "plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if (isinstance(figsize, (str, bytes)) or not isinstance(figsize, (tuple, list))
            or len(figsize) != 2):
        raise ArgumentTypeError(f"figsize must be a pair (width, height) in inches, got "
                                f"{figsize!r}; e.g. figsize=(6.0, 4.0)")
    figsize = (_validate.positive_float(figsize[0], "figsize width"),
               _validate.positive_float(figsize[1], "figsize height"))
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 5.0)
                    ) -> tuple[Figure, Axes]:
    """``(figure, axes)``: a new figure with one axes, or ``ax`` and the figure holding it."""
    if ax is None:
        fig = new_figure(figsize)
        return fig, fig.add_subplot()
    require("matplotlib", "plot")
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if not isinstance(ax, Axes):
        raise InvalidOptionError(f"ax must be a matplotlib Axes (or None for a new figure), got "
                                 f"{type(ax).__name__}")
    root = ax.figure
    while not isinstance(root, Figure):  # a SubFigure: climb to the root figure
        root = root.figure
    return root, ax


def save_figure(fig: Figure, path: PathLike, *, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (the format comes from the suffix: ``.png``, ``.pdf``, ``.svg``)
    and return the path. The directory must exist.

    >>> import tempfile, pathlib, torch
    >>> from jacobite.viz import heatmap
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = save_figure(heatmap(torch.eye(2)), pathlib.Path(d) / "J.png")
    ...     p.read_bytes()[:4]
    b'\\x89PNG'
    """
    require("matplotlib", "plot")
    from matplotlib.figure import Figure

    if not isinstance(fig, Figure):
        raise ArgumentTypeError(f"save_figure needs a matplotlib Figure, got "
                                f"{type(fig).__name__}; pass the figure a jacobite.viz "
                                f"function returned")
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path must be a file path (str or pathlib.Path), got "
                                f"{type(path).__name__}; e.g. 'jacobian.png'")
    dpi = _validate.positive_int(dpi, "dpi")
    if dpi > 10_000:
        raise InvalidOptionError(f"dpi must be at most 10000, got {dpi}; e.g. dpi=150")
    p = Path(os.fspath(path))
    fmt = p.suffix.lstrip(".").lower()
    formats = fig.canvas.get_supported_filetypes()
    if fmt not in formats:
        raise InvalidOptionError(f"cannot save a figure as {p.name!r}: use a file name ending in "
                                 f"one of {sorted('.' + f for f in formats)}")
    if not p.parent.is_dir():
        raise InvalidOptionError(f"the directory {str(p.parent)!r} does not exist; create it "
                                 f"first (e.g. Path(...).mkdir(parents=True))")
    fig.savefig(p, dpi=dpi)
    return p


def _fits(m: int, n: int, what: str) -> None:
    need = m * n * 8
    budget = get_memory_budget()
    if need > budget:
        raise JacobianTooLarge(
            f"drawing {what} needs a dense {m}x{n} matrix ({format_bytes(need)}), more than the "
            f"memory budget of {format_bytes(budget)}; plot a block (J[:k, :k]), use spy() for "
            f"the sparsity pattern, or raise the budget with "
            f"jacobite.config.memory_budget('{format_bytes(2 * need)}')")


def as_matrix(J: Any, what: str = "a heatmap") -> np.ndarray:
    """A real 2-D float NumPy array from a tensor, array, scipy.sparse matrix or operator.

    Operators and sparse matrices are densified only when the result fits the memory budget.
    A 1-D input is one row; a scalar a 1x1 matrix.

    >>> as_matrix(torch.tensor([1.0, 2.0])).shape
    (1, 2)
    """
    import scipy.sparse as sp  # loaded on use

    if isinstance(J, JacobianOperator):
        _fits(*J.shape, what)
        a = J.to_dense().detach().cpu().numpy()
    elif sp.issparse(J):
        _fits(J.shape[0], J.shape[1], what)
        a = J.toarray()
    elif isinstance(J, torch.Tensor):
        if J.layout != torch.strided:
            _fits(J.shape[0], math.prod(J.shape[1:]), what)
            J = J.to_dense()
        a = J.detach().cpu().resolve_conj().numpy()
    else:
        try:
            a = np.asarray(J)
        except Exception as exc:  # ragged lists and the like
            raise DtypeError(f"cannot draw {type(J).__name__} as a matrix; pass a tensor, a NumPy "
                             f"array, a scipy.sparse matrix or a JacobianOperator") from exc
    if np.iscomplexobj(a):
        raise DtypeError(f"cannot draw a complex matrix as {what}; draw J.real, J.imag or "
                         f"J.abs() instead")
    if a.dtype == bool:
        a = a.astype(np.float64)
    if not np.issubdtype(a.dtype, np.number):
        raise DtypeError(f"cannot draw a matrix of dtype {a.dtype}; pass numbers")
    if a.ndim > 2:
        raise ShapeError(f"{what} draws a 2-D matrix, got shape {a.shape}; flatten it with "
                         f"J.reshape(m, n) or compute it with jacobite.jacobian(..., flat=True)")
    return np.atleast_2d(a).astype(np.float64, copy=False)


def centred_norm(values: np.ndarray) -> Any:
    """A colour norm centred at 0 with ``vmin == -vmax`` (the largest finite magnitude)."""
    from matplotlib.colors import CenteredNorm

    finite = np.abs(values[np.isfinite(values)])
    half = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    return CenteredNorm(vcenter=0.0, halfrange=half)


def colormap(name: str, bad: str = "lightgrey") -> Any:
    """A registered colormap with NaN/Inf cells drawn in ``bad``."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError as exc:
        raise InvalidOptionError(f"unknown colormap {name!r}; use a matplotlib name such as "
                                 f"'RdBu_r', 'coolwarm' or 'viridis'") from exc
    return cmap.with_extremes(bad=bad)


def check_labels(labels: Any, m: int, n: int) -> tuple[list[str] | None, list[str] | None]:
    """``(row_labels, col_labels)`` from ``None``, one sequence (a square matrix) or a pair."""
    if labels is None:
        return None, None
    if (isinstance(labels, tuple) and len(labels) == 2
            and all(x is None or (isinstance(x, Sequence) and not isinstance(x, str))
                    for x in labels)):
        rows, cols = labels
    elif isinstance(labels, Sequence) and not isinstance(labels, str) and m == n:
        rows = cols = labels
    else:
        raise ShapeError("labels must be (row_labels, column_labels), or one list of names "
                         "for a square matrix")
    out = []
    for lab, size, kind in ((rows, m, "row"), (cols, n, "column")):
        if lab is not None and len(lab) != size:
            raise ShapeError(f"{len(lab)} {kind} labels for {size} {kind}s; give one per {kind}")
        out.append(None if lab is None else [str(x) for x in lab])
    return out[0], out[1]
