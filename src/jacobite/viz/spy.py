"""``spy``: the sparsity pattern of a Jacobian — which outputs depend on which inputs.

Sparse inputs (scipy.sparse, torch sparse tensors, :class:`~jacobite.operators.SparseOperator`)
are drawn from their stored indices and never densified.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import _validate
from ..errors import DtypeError, InvalidOptionError, ShapeError
from ..operators import JacobianOperator
from ._common import PathLike, figure_and_axes, save_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["nonzero_pattern", "spy"]


def _threshold(values: np.ndarray, precision: float | str) -> np.ndarray:
    if precision == "present":
        return np.ones(values.shape, dtype=bool)
    return np.abs(values) > precision


def nonzero_pattern(matrix: Any, precision: float | str = 0.0
                    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(rows, cols, shape)`` of the entries with ``|a| > precision`` (``"present"``: every
    stored entry of a sparse matrix, explicit zeros included; every nonzero of a dense one).

    >>> import torch
    >>> rows, cols, shape = nonzero_pattern(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    >>> rows.tolist(), cols.tolist(), shape
    ([0, 1], [0, 1], (2, 2))
    """
    if not (precision == "present" or (isinstance(precision, numbers.Real)
                                       and not isinstance(precision, bool) and precision >= 0
                                       and math.isfinite(precision))):
        raise InvalidOptionError(f"precision must be a number >= 0 or 'present', got "
                                 f"{precision!r}")
    import scipy.sparse as sp  # loaded on use

    if isinstance(matrix, JacobianOperator):
        matrix = matrix.to_scipy()  # sparse structure is kept; others densify under the budget
    elif sp.issparse(getattr(matrix, "pattern", None)):  # a jacobite.sparse plan
        matrix = matrix.pattern
    elif callable(getattr(matrix, "to_scipy", None)):  # a jacobite.sparse.Pattern
        matrix = matrix.to_scipy()
    if isinstance(matrix, torch.Tensor) and matrix.layout != torch.strided:
        coo = matrix.detach().cpu().to_sparse_coo().coalesce()
        idx, vals = coo.indices().numpy(), coo.values().numpy()
        if coo.ndim != 2:
            raise ShapeError(f"spy draws a 2-D matrix, got a sparse tensor of shape "
                             f"{tuple(coo.shape)}")
        keep = _threshold(vals, precision)
        return idx[0][keep], idx[1][keep], (int(coo.shape[0]), int(coo.shape[1]))
    if sp.issparse(matrix):
        coo = sp.coo_array(matrix)
        coo.sum_duplicates()
        keep = _threshold(coo.data, precision)
        return (np.asarray(coo.row)[keep], np.asarray(coo.col)[keep],
                (int(coo.shape[0]), int(coo.shape[1])))
    if isinstance(matrix, torch.Tensor):
        a = matrix.detach().cpu().resolve_conj().numpy()
    else:
        try:
            a = np.asarray(matrix)
        except Exception as exc:  # ragged lists and the like
            raise DtypeError(f"cannot read a sparsity pattern from {type(matrix).__name__}; "
                             f"pass a tensor, an array, a scipy.sparse matrix or an "
                             f"operator") from exc
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DtypeError(f"cannot read a sparsity pattern from dtype {a.dtype}; pass a matrix "
                         f"of numbers")
    if a.ndim > 2:
        raise ShapeError(f"spy draws a 2-D matrix, got shape {a.shape}; flatten it with "
                         f"J.reshape(m, n) or jacobite.jacobian(..., flat=True)")
    a = np.atleast_2d(a)
    mask = a != 0 if precision == "present" else np.abs(a) > precision
    rows, cols = np.nonzero(mask)
    return rows, cols, (int(a.shape[0]), int(a.shape[1]))


def spy(matrix: Any, ax: Axes | None = None, *, title: str | None = None,
        precision: float | str = 0.0, markersize: float | None = None, color: str = "C0",
        save: PathLike | None = None) -> Figure:
    """Sparsity spy plot: a square marker at ``(i, j)`` for every nonzero ``J[i, j]``.

    Args:
        matrix: a dense tensor or array (a boolean pattern works), a scipy.sparse matrix, a
            torch sparse tensor or a :class:`~jacobite.operators.JacobianOperator` (a
            :class:`~jacobite.operators.SparseOperator` is read from its stored indices; other
            operators go through ``to_scipy()``, densifying only under the memory budget), a
            :class:`jacobite.sparse.Pattern` or a :class:`jacobite.sparse.SparsePlan` (its
            detected pattern).
        ax: draw into these axes; ``None``: a new figure.
        title: the axes title (default: shape, number of nonzeros and density).
        precision: draw entries with ``|a| > precision``; ``"present"`` draws every stored
            entry of a sparse matrix, explicit zeros included (the structural pattern).
        markersize: marker size in points (default: scaled to the matrix size).
        color: marker colour.
        save: also write the figure to this path.

    >>> import scipy.sparse as sp
    >>> fig = spy(sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(6, 6)))
    >>> fig.axes[0].get_title()
    'sparsity: 6×6, nnz = 16 (44.44%)'
    """
    if markersize is not None:
        markersize = _validate.positive_float(markersize, "markersize")
    rows, cols, (m, n) = nonzero_pattern(matrix, precision)
    if m == 0 or n == 0:
        raise ShapeError(f"the matrix is empty (shape {m}×{n}); there is no pattern to draw")
    fig, ax = figure_and_axes(ax, (5.5, 5.5))
    import scipy.sparse as sp

    pattern = sp.coo_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(m, n))
    ms = markersize if markersize is not None else float(np.clip(300.0 / max(m, n), 0.5, 12.0))
    ax.spy(pattern, precision="present", marker="s", markersize=ms, color=color)
    nnz = int(rows.shape[0])
    ax.set_title(title if title is not None else
                 f"sparsity: {m}×{n}, nnz = {nnz} ({nnz / (m * n):.2%})")
    ax.set_xlabel("input j")
    ax.set_ylabel("output i")
    if save is not None:
        save_figure(fig, save)
    return fig
