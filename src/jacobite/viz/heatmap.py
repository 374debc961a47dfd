"""``heatmap``: a Jacobian as a colour image, diverging colours centred at 0, with a colorbar."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import InvalidOptionError, ShapeError
from ._common import (
    PathLike,
    as_matrix,
    centred_norm,
    check_labels,
    colormap,
    figure_and_axes,
    save_figure,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["heatmap"]

#: ``annotate=None`` writes the values into the cells when the matrix has at most this many.
AUTO_ANNOTATE_MAX = 100


def _annotate(ax: Axes, M: np.ndarray, norm: Any, fmt: str) -> None:
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            v = M[i, j]
            if not np.isfinite(v):
                text, dark = str(v), False
            else:
                text, dark = format(v, fmt), abs(float(norm(v)) - 0.5) > 0.3
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")


def heatmap(J: Any, ax: Axes | None = None, *, title: str | None = None, labels: Any = None,
            annotate: bool | None = None, cmap: str = "RdBu_r", fmt: str = ".2g",
            colorbar: bool = True, colorbar_label: str = "∂fᵢ/∂xⱼ",
            save: PathLike | None = None) -> Figure:
    """Draw ``J`` as a heatmap: a diverging colormap centred at 0 (``vmin == -vmax``), so
    positive and negative sensitivities read at a glance, with a colorbar.

    Args:
        J: an ``(m, n)`` matrix: torch tensor (dense or sparse), NumPy array, scipy.sparse
            matrix or :class:`~jacobite.operators.JacobianOperator`. Sparse matrices and operators
            are densified only if the result fits the memory budget
            (:class:`~jacobite.errors.JacobianTooLarge` otherwise: try :func:`jacobite.viz.spy`).
            A 1-D tensor is drawn as one row. NaN/Inf cells are grey.
        ax: draw into these axes (the colorbar steals space from them); ``None``: a new figure.
        title: the axes title (default ``"Jacobian (m×n)"``).
        labels: ``(output_names, input_names)``, or one list of names for a square matrix.
        annotate: write the values into the cells; ``None`` does so for at most 100 cells.
        cmap: a diverging matplotlib colormap name.
        fmt: the format of annotations (``format(value, fmt)``).
        colorbar: add a colorbar.
        colorbar_label: its label.
        save: also write the figure to this path (see :func:`jacobite.viz.save_figure`).

    Returns:
        The matplotlib ``Figure`` (nothing is shown; in a notebook it displays itself).

    >>> import torch
    >>> fig = heatmap(torch.tensor([[1.0, -2.0], [0.5, 0.0]]), labels=(["f", "g"], ["x", "y"]))
    >>> len(fig.axes)           # the heatmap and its colorbar
    2
    >>> norm = fig.axes[0].images[0].norm
    >>> norm.vmin, norm.vcenter, norm.vmax
    (-2.0, 0.0, 2.0)
    """
    M = as_matrix(J, "a heatmap")
    m, n = M.shape
    if m == 0 or n == 0:  # as spy does: matplotlib would draw a singular, meaningless axis
        raise ShapeError(f"the matrix is empty (shape {m}×{n}); there is nothing to draw")
    rows, cols = check_labels(labels, m, n)
    if annotate is not None and not isinstance(annotate, bool):
        raise InvalidOptionError(f"annotate must be True, False or None (automatic), got "
                                 f"{annotate!r}")
    fig, ax = figure_and_axes(ax)
    norm = centred_norm(M)
    square = max(m, n) <= 12 and max(m, n) <= 4 * min(m, n)
    aspect: Literal["equal", "auto"] = "equal" if square else "auto"
    image = ax.imshow(np.ma.masked_invalid(M), cmap=colormap(cmap), norm=norm,
                      interpolation="nearest", aspect=aspect)
    ax.set_title(title if title is not None else f"Jacobian ({m}×{n})")
    ax.set_xlabel("input j")
    ax.set_ylabel("output i")
    if cols is not None:
        ax.set_xticks(range(n), cols, rotation=45 if max(map(len, cols), default=0) > 3 else 0)
    if rows is not None:
        ax.set_yticks(range(m), rows)
    if annotate or (annotate is None and m * n <= AUTO_ANNOTATE_MAX):
        _annotate(ax, M, norm, fmt)
    if colorbar:
        fig.colorbar(image, ax=ax, label=colorbar_label)
    if save is not None:
        save_figure(fig, save)
    return fig
