"""Difference Jacobians of residuals by SciPy's names: ``"2-point"``, ``"3-point"``, ``"cs"``.

``least_squares(jac="2-point" | "3-point" | "cs")`` asks for a difference quotient instead of
AD (a function AD cannot see through, or one written in NumPy). The steps follow SciPy's rule,
``h_j = r · max(1, |x_j|)`` with the sign of ``x_j`` and the relative step ``r = diff_step`` or
by default ``√eps`` (2-point, complex step) and ``∛eps`` (3-point), ``eps`` that of the
*lower* of the input and output precisions (a float32 residual needs float32's steps). A step
that would leave the bounds is taken the other way (2-point) or one-sided (3-point). With a
sparsity pattern the columns that share no row are perturbed together (a column coloring:
3 evaluations for a tridiagonal ``J`` whatever ``n``), and the result is a CSR matrix.

The evaluations go through ``mapper`` (``map`` by default; ``workers=`` makes it a pool's map),
so independent perturbed points can run in parallel.

>>> import numpy as np
>>> fd = Differences("3-point", None, lambda v: np.array([v[0] ** 2, v[0] * v[1]]), 2)
>>> np.round(fd.jacobian(np.array([1.0, 2.0]), np.array([1.0, 2.0])), 8).tolist()
[[2.0, 0.0], [2.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ...errors import ShapeError

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["SCHEMES", "Differences", "Scheme", "as_matrix", "check_sparsity", "numpy_point"]

#: A finite-difference scheme by SciPy's name.
Scheme = Literal["2-point", "3-point", "cs"]
SCHEMES: tuple[Scheme, ...] = ("2-point", "3-point", "cs")

Mapper = Callable[[Callable[[np.ndarray], np.ndarray], Iterable[np.ndarray]], Iterable[Any]]


def relative_step(scheme: Scheme, eps: float) -> float:
    """SciPy's default relative step: ``√eps`` (2-point, cs) or ``∛eps`` (3-point).

    >>> relative_step("3-point", 2.0 ** -52) == (2.0 ** -52) ** (1 / 3)
    True
    """
    return float(eps ** (1 / 3) if scheme == "3-point" else eps ** 0.5)


class Differences:
    """Difference Jacobians of ``fun`` (flat float64 in, flat residuals out) at given points.

    Args:
        scheme: ``"2-point"``, ``"3-point"`` or ``"cs"`` (complex step: ``fun`` must accept
            complex input and be complex-analytic).
        diff_step: the relative step (a positive number or one per variable); ``None``: SciPy's
            default for the scheme and the precision.
        fun: the residuals at a flat point; not counted as evaluations of the solve.
        n: the number of variables.
        sparsity: an ``m × n`` pattern (SciPy sparse or dense 0/1): perturb the columns of one
            color together and return CSR.
        lb, ub: bounds the perturbed points respect (2-point and 3-point).
        mapper: a ``map``-like callable evaluating ``fun`` on several points.
    """

    def __init__(self, scheme: Scheme, diff_step: Any, fun: Callable[[np.ndarray], np.ndarray],
                 n: int, sparsity: Any = None, lb: np.ndarray | None = None,
                 ub: np.ndarray | None = None, mapper: Mapper = map) -> None:
        self.scheme, self.fun, self.n, self.mapper = scheme, fun, n, mapper
        self.lb = np.full(n, -np.inf) if lb is None else lb
        self.ub = np.full(n, np.inf) if ub is None else ub
        self.rel: np.ndarray | None = None
        if diff_step is not None:
            rel = np.asarray(diff_step, dtype=np.float64).ravel()
            rel = np.full(n, float(rel[0])) if rel.size == 1 else rel
            if rel.size != n or not np.all(np.isfinite(rel)):
                raise ShapeError(f"diff_step must be a finite scalar or have {n} entries")
            self.rel = np.abs(rel)
        self.coloring: Any = None
        if sparsity is not None:
            from ...sparse.coloring import column_coloring

            self.coloring = column_coloring(sparsity, "fast")
        #: the columns perturbed together (one per column without a pattern)
        self.groups = self._groups()

    def _steps(self, x: np.ndarray, eps: float) -> np.ndarray:
        sign = np.where(x >= 0, 1.0, -1.0)
        default = relative_step(self.scheme, eps) * sign * np.maximum(1.0, np.abs(x))
        if self.rel is None:
            return default
        dx = (x + self.rel * sign * np.abs(x)) - x  # the step as x's precision represents it
        return np.where(dx == 0, default, dx)

    def _inside(self, p: np.ndarray) -> np.ndarray:
        return (p >= self.lb) & (p <= self.ub)

    def _groups(self) -> list[np.ndarray]:
        if self.coloring is None:
            return [np.array([j]) for j in range(self.n)]
        colors = self.coloring.colors
        return [np.flatnonzero(colors == c) for c in range(self.coloring.num_colors)]

    def jacobian(self, x: np.ndarray, f0: np.ndarray, eps: float = float(np.finfo(float).eps)
                 ) -> np.ndarray | sp.csr_matrix:
        """``J`` at ``x`` (where the residuals are ``f0``): dense, or CSR with a pattern."""
        h = self._steps(x, eps)
        groups = self.groups
        if self.scheme == "cs":
            pts: list[np.ndarray] = []
            for g in groups:
                p = x.astype(np.complex128)
                p[g] += 1j * h[g]
                pts.append(p)
            outs = list(self.mapper(self.fun, pts))
            cols = [np.asarray(o).imag.ravel() for o in outs]
            return self._assemble(cols, groups, h, f0.size)
        one_sided = np.zeros(self.n, dtype=bool)
        if self.scheme == "2-point":  # the other way where x + h leaves the box and x - h not
            flip = ~self._inside(x + h) & self._inside(x - h)
            h = np.where(flip, -h, h)
        else:
            a = np.abs(h)
            one_sided = ~(self._inside(x - a) & self._inside(x + a))
            for g in groups:  # a group's columns share one formula: one-sided if any must be
                if one_sided[g].any():
                    one_sided[g] = True
            h = np.where(one_sided, np.where(self._inside(x + 2 * a), a, -a), h)
        # the quotients divide by the steps as x's precision represents them (SciPy's rule)
        if self.scheme == "2-point":
            dx = (x + h) - x
        else:
            dx = np.where(one_sided, (x + 2 * h) - x, (x + h) - (x - h))
        pts = []
        for g in groups:
            d = np.zeros(self.n)
            d[g] = h[g]
            pts.append(x + d)
            if self.scheme == "3-point":
                d2 = np.zeros(self.n)
                d2[g] = np.where(one_sided[g], 2.0, -1.0) * h[g]
                pts.append(x + d2)
        outs = [np.asarray(o, dtype=np.float64).ravel() for o in self.mapper(self.fun, pts)]
        cols = []
        for k, g in enumerate(groups):
            if self.scheme == "2-point":
                cols.append(outs[k] - f0)
                continue
            a, b = outs[2 * k], outs[2 * k + 1]
            if one_sided[g[0]]:
                cols.append(-3.0 * f0 + 4.0 * a - b)
            else:
                cols.append(a - b)
        return self._assemble(cols, groups, dx, f0.size)

    def _assemble(self, cols: list[np.ndarray], groups: list[np.ndarray], h: np.ndarray,
                  m: int) -> np.ndarray | sp.csr_matrix:
        B = np.stack(cols, axis=1) if cols else np.zeros((m, 0))
        if self.coloring is None:
            return B / h[None, :]
        import scipy.sparse as sp  # a coloring: a sparse pattern was given

        J = sp.csr_matrix(self.coloring.decompress(B))
        J.data = J.data / h[J.indices]
        return J


def numpy_point(fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 shape: tuple[int, ...], v: np.ndarray) -> np.ndarray:
    """A NumPy ``fun`` at one flat point: the map of :class:`Differences` over a process pool
    pickles this module-level function (with ``functools.partial``), not a bound method.

    >>> numpy_point(np.sqrt, (), {}, (2,), np.array([4.0, 9.0])).tolist()
    [2.0, 3.0]
    """
    a = np.asarray(fun(v.reshape(shape), *args, **kwargs))
    return a.ravel() if a.dtype.kind == "c" else a.astype(np.float64).ravel()


def check_sparsity(sparsity: Any, m: int, n: int) -> Any:
    """``jac_sparsity`` as a boolean CSR pattern of shape ``(m, n)``.

    >>> check_sparsity(np.eye(2), 2, 2).shape
    (2, 2)
    """
    import scipy.sparse as sp  # a pattern is a sparse Jacobian: SciPy is needed

    pat = sp.csr_matrix(sparsity if sp.issparse(sparsity) else np.atleast_2d(
        np.asarray(sparsity)))
    if pat.shape != (m, n):
        raise ShapeError(f"jac_sparsity has shape {pat.shape}; expected (m, n) = ({m}, {n}): "
                         "one row per residual, one column per variable")
    return pat


def as_matrix(op: Any, n: int, sparsity: Any = None) -> np.ndarray | sp.csr_matrix:
    """A :class:`~scipy.sparse.linalg.LinearOperator` Jacobian as a matrix: one product per
    color of ``sparsity`` (CSR), else ``op @ I`` (dense, ``n`` products).

    >>> from scipy.sparse.linalg import aslinearoperator
    >>> as_matrix(aslinearoperator(np.eye(2)), 2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    if sparsity is None:
        return np.asarray(op.matmat(np.eye(n)), dtype=np.float64)
    import scipy.sparse as sp

    from ...sparse.coloring import column_coloring

    col = column_coloring(sparsity, "fast")
    B = np.asarray(op.matmat(col.seed_matrix(dense=True).astype(np.float64)))
    return sp.csr_matrix(col.decompress(B))
