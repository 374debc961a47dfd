"""``critical_points``: find and classify the critical points of a scalar function.

One entry point for both paths: an expression (a string such as ``"x**3 - 3*x + y**2"`` or a SymPy
expression) is solved exactly with SymPy (:mod:`jacobite.extrema.exact`); a torch function — or
an expression with ``method="newton"`` — is searched with Newton's method on ∇f = 0 from starting
points (:mod:`jacobite.extrema.numeric`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import torch

from .. import _validate
from .._modules import keeps_state
from ..errors import ArgumentTypeError, InvalidOptionError, UnsupportedOperationError
from .exact import exact_critical_points
from .numeric import newton_critical_points, starting_points
from .result import CriticalPoint

__all__ = ["critical_points"]

#: How :func:`critical_points` searches: SymPy's exact solve, Newton's method, or the choice.
Method = Literal["auto", "symbolic", "newton"]
_METHODS: tuple[Method, ...] = ("auto", "symbolic", "newton")


def _is_expression(f: Any) -> bool:
    return isinstance(f, str) or type(f).__module__.startswith("sympy")


@keeps_state
def critical_points(f: str | Any | Callable[[torch.Tensor], torch.Tensor], variables: Any = None,
                    *, method: Method = "auto", x0: Any = None,
                    box: Sequence[tuple[float, float]] | None = None, n_starts: int = 16,
                    seed: int | None = 0, tol: float = 1e-8, max_iter: int = 100,
                    eig_tol: float = 1e-8) -> list[CriticalPoint]:
    """The critical points (∇f = 0) of a scalar function, each classified by its Hessian.

    Args:
        f: an expression (``"x**2 + 4*y**2 - 11*x + 8*y - 16"``, a SymPy expression) or a torch
            function mapping a 1-D tensor of ``n`` variables to a scalar.
        variables: for an expression, the variable order (default: names sorted); for a torch
            function, optional names for the coordinates (default ``x0, x1, ...``).
        method: ``"symbolic"`` (SymPy ``solve``; exact points, exact classification),
            ``"newton"`` (Newton's method on ∇f = 0 from ``x0`` or ``box``; float points) or
            ``"auto"``: symbolic for expressions — falling back to Newton when SymPy cannot solve
            and ``x0``/``box`` is given — and Newton for torch functions.
        x0: Newton's starting point ``(n,)`` or starting points ``(k, n)``.
        box: instead of ``x0``: ``[(low, high), ...]``; Newton starts at its centre and
            ``n_starts`` scrambled-Sobol points (``seed``: an int for the same points on every
            call, ``None`` to draw them from torch's global generator) and keeps the points
            inside it.
        tol: Newton: accept a point when ``‖∇f‖ <= tol``.
        max_iter: Newton iterations per start.
        eig_tol: Newton: an eigenvalue with ``|λ| <= eig_tol * max(1, max|λ|)`` counts as zero.

    Returns:
        :class:`CriticalPoint` objects (``point``, ``kind``, ``value``, ``hessian``,
        ``eigenvalues``, ``x``), sorted by coordinates. Symbolic results are as complete as
        SymPy's ``solve`` (complete for polynomials with finitely many critical points).

    >>> [(p.point, p.kind, p.value) for p in critical_points("x**2 + 4*y**2 - 11*x + 8*y - 16")]
    [({'x': 11/2, 'y': -1}, 'minimum', -201/4)]
    >>> import torch
    >>> f = lambda v: v[0] ** 2 - v[1] ** 2
    >>> [(p.as_floats(), p.kind) for p in critical_points(f, x0=[1.0, 2.0])]
    [({'x0': 0.0, 'x1': 0.0}, 'saddle')]
    """
    _validate.choice(method, "method", _METHODS)
    n_starts = _validate.positive_int(n_starts, "n_starts")
    seed = _validate.seed(seed)
    tol = _validate.positive_float(tol, "tol")
    max_iter = _validate.positive_int(max_iter, "max_iter")
    eig_tol = _validate.tolerance(eig_tol, "eig_tol")
    expression = _is_expression(f)
    if not expression and not callable(f):
        raise ArgumentTypeError(f"f must be an expression string, a SymPy expression or a torch "
                                f"function; got {type(f).__name__}; e.g. f='x**2 - y**2'")
    if not expression and method == "symbolic":
        raise InvalidOptionError("method='symbolic' needs an expression (a string like "
                                 "'x**2 - y**2' or a SymPy expression); for a torch function use "
                                 "method='newton' with x0=... or box=...")
    have_start = x0 is not None or box is not None
    if expression and method in ("auto", "symbolic"):
        try:
            return exact_critical_points(f, variables)
        except UnsupportedOperationError:
            if method == "symbolic" or not have_start:
                raise
    if not have_start:
        raise InvalidOptionError("Newton's method needs starting points: pass x0=[...] (one start "
                                 "or rows of starts) or box=[(low, high), ...]")
    starts = starting_points(x0, box, n_starts=n_starts, seed=seed)
    names = None
    fn: Callable[[torch.Tensor], torch.Tensor]
    if expression:
        from ..symbolic import to_torch

        tf = to_torch(f, variables)
        names = [s.name for s in tf.variables]
        fn = tf
    else:
        fn = cast(Callable[[torch.Tensor], torch.Tensor], f)  # callable: checked above
        if variables is not None:
            names = [v.strip() for v in variables.split(",")] if isinstance(variables, str) \
                else [str(v) for v in variables]
    return newton_critical_points(fn, starts, names=names, box=box, tol=tol, max_iter=max_iter,
                                  eig_tol=eig_tol)
