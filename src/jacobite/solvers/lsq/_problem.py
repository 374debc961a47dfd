"""The residual function as the solvers see it: a map of flat float64 NumPy vectors.

:class:`Residuals` reshapes the flat iterate to the shape of ``x0``, calls the user's torch
function in the working dtype, flattens what it returns and counts evaluations (``nfev``) and
Jacobians (``njev``). Jacobians come from :func:`jacobite.dense.jacobian` (exact, forward or
reverse mode as the planner picks; ``jac="dense"``), from a user callable (dense tensor/array,
SciPy sparse or torch sparse) or from :func:`jacobite.sparse.prepare` (``jac="sparse"``). Sparse
Jacobians stay sparse (CSR). ``jac="auto"`` chooses dense or sparse at the first Jacobian by the
cost model of :mod:`jacobite.solvers._auto_jac`; ``mode`` then says which.

>>> import numpy as np, torch
>>> p = Residuals(lambda x: x ** 2 - 1, torch.tensor([2.0, 3.0], dtype=torch.float64), "auto")
>>> p.f(np.array([2.0, 3.0])).tolist(), p.J(np.array([2.0, 3.0])).tolist(), p.nfev, p.njev
([3.0, 8.0], [[4.0, 0.0], [0.0, 6.0]], 1, 1)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ...dense.jacobian import jacobian as _jacobian
from ...errors import InvalidOptionError, OutputTypeError, ShapeError, UnsupportedOperationError
from .._auto_jac import JacMode, choose, slow_dense_warning
from .._ift import CLOSED_OVER, tracked

__all__ = ["Residuals"]


def _to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _exponent(a: np.ndarray) -> int | None:
    """The binary exponent of ``max|a|`` (``None`` when ``a`` is empty or all zero)."""
    big = float(np.max(np.abs(a))) if a.size else 0.0
    return math.frexp(big)[1] if big > 0 else None


class Residuals:
    """``fun`` on flat NumPy vectors, with its Jacobian and evaluation counters."""

    def __init__(self, fun: Callable[..., Any], x0: torch.Tensor, jac: Any,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                 verbose: int = 0) -> None:
        self.fun, self.jac, self.args, self.kwargs = fun, jac, args, dict(kwargs or {})
        self.verbose = verbose
        self.mode: JacMode | None = "callable" if callable(jac) else \
            None if jac == "auto" else jac  # "auto" is resolved at the first Jacobian
        self.reason = ""
        self.warned = False
        self.shape, self.dtype, self.device = x0.shape, x0.dtype, x0.device
        self.n = x0.numel()
        self.m: int | None = None
        self.nfev = self.njev = 0
        self.scale = 1.0  # a power of two the residuals and Jacobians are multiplied by
        self.sparse = jac == "sparse"
        self._plan: Any = None
        self._flat = self._flat_call  # one bound object: jacobian's plan cache keys on it
        if isinstance(jac, str) and jac not in ("auto", "dense", "sparse"):
            raise InvalidOptionError(f"jac must be 'auto', 'dense', 'sparse' or a callable; got "
                                     f"{jac!r}")
        if not (isinstance(jac, str) or callable(jac)):
            raise InvalidOptionError("jac must be 'auto', 'dense', 'sparse' or a callable "
                                     f"returning the m×n Jacobian; got {type(jac).__name__}")

    # -- conversions -----------------------------------------------------------------------
    def tensor(self, v: np.ndarray) -> torch.Tensor:
        """The flat NumPy iterate as a tensor shaped like ``x0`` in the working dtype."""
        return torch.as_tensor(v, dtype=self.dtype, device=self.device).reshape(self.shape)

    def _flat_call(self, xt: torch.Tensor) -> torch.Tensor:
        out = self.fun(xt.reshape(self.shape), *self.args, **self.kwargs)
        if out is None:  # NumPy would read it as a NaN residual
            raise OutputTypeError("fun returned None; it must return a tensor of residuals "
                                  "(a missing return statement?)")
        if not isinstance(out, torch.Tensor):
            try:
                out = torch.as_tensor(np.asarray(out, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise OutputTypeError(f"fun must return a tensor of residuals, got "
                                      f"{type(out).__name__}") from exc
        if not out.is_floating_point():
            out = out.to(self.dtype)
        return out.reshape(-1)

    # -- evaluations -----------------------------------------------------------------------
    def f(self, v: np.ndarray) -> np.ndarray:
        """Residuals at ``v`` (float64, flat); counts one evaluation. The first one runs with
        autograd on and refuses a ``fun`` that closes over a tensor autograd or ``torch.func``
        tracks (the solution would be silently constant in it)."""
        self.nfev += 1
        first = self.m is None and torch.is_grad_enabled()
        with torch.set_grad_enabled(first):
            out = self._flat_call(self.tensor(v))
        if first and tracked(out):
            raise UnsupportedOperationError(CLOSED_OVER)
        r = _to_numpy(out)
        if self.m is None:
            if r.size == 0:
                raise ShapeError("fun returned no residuals; it must return at least one")
            self.m = r.size
        elif r.size != self.m:
            raise ShapeError(f"fun returned {r.size} residuals here but {self.m} at x0; the "
                             "number of residuals must not depend on x")
        return r * self.scale if self.scale != 1.0 else r

    def J(self, v: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """The ``m × n`` Jacobian at ``v``: dense float64, or CSR when sparse."""
        self.njev += 1
        m = self.m if self.m is not None else -1
        if callable(self.jac):
            out = self.jac(self.tensor(v), *self.args, **self.kwargs)
            if sp.issparse(out):
                J: Any = sp.csr_matrix(out, dtype=np.float64)
                self.sparse = True
            elif isinstance(out, torch.Tensor) and out.layout != torch.strided:
                c = out.detach().to("cpu", torch.float64).coalesce() if out.is_sparse else \
                    out.detach().to("cpu", torch.float64).to_sparse_coo().coalesce()
                idx = c.indices().numpy()
                J = sp.csr_matrix((c.values().numpy(), (idx[0], idx[1])), shape=tuple(c.shape))
                self.sparse = True
            else:
                J = _to_numpy(out)
                if J.ndim != 2:
                    J = J.reshape(m, self.n) if J.size == m * self.n else J
        else:
            if self.mode is None:
                self._choose(v, m)
            if self.mode == "sparse":
                J = self._sparse_jacobian(v)
            else:
                t0 = time.perf_counter()
                with torch.enable_grad():
                    J = _to_numpy(_jacobian(self._flat, self.tensor(v).reshape(-1), flat=True))
                if not self.warned:  # once per solve, after the first dense Jacobian
                    self.warned = True
                    slow_dense_warning(time.perf_counter() - t0, self.n, "least_squares",
                                       self.reason, m=J.shape[0])
        if J.shape != (m, self.n):
            raise ShapeError(f"the Jacobian has shape {tuple(J.shape)}; expected (m, n) = "
                             f"({m}, {self.n}): one row per residual, one column per entry of x")
        return J * self.scale if self.scale != 1.0 else J

    def rescale(self, f0: np.ndarray, J0: Any, x_scale: Any = "jac",
                limit: int = 128) -> tuple[np.ndarray, Any, bool]:
        """Solve for ``2^-e r`` from here on when the residuals ``f0`` or the Jacobian ``J0`` at
        the start (times ``x_scale`` when that is numeric: the Jacobian in the solver's scaled
        variables) lie beyond ``2^±limit`` in size, where ``½‖r‖²`` or a column norm could
        overflow or underflow. ``e`` sits halfway between the two sizes (in powers of two); the
        power of two is exact and leaves the minimiser alone. Returns ``f0`` and ``J0`` scaled
        alike and whether both now fit (else the sizes of ``r`` and ``J`` are more than
        ``2^960`` apart and float64 cannot hold the problem's squares).

        >>> p = Residuals(lambda x: x - 1e200, torch.zeros(1, dtype=torch.float64), "auto")
        >>> f, J, ok = p.rescale(p.f(np.zeros(1)), p.J(np.zeros(1)))
        >>> p.scale == 2.0 ** -333, ok
        (True, True)
        """
        Js = J0 if isinstance(x_scale, str) else (
            J0.multiply(x_scale[None, :]).tocsr() if sp.issparse(J0) else J0 * x_scale)
        sizes = [a for a in (_exponent(f0), _exponent(Js.data if sp.issparse(Js) else Js))
                 if a is not None]
        if not sizes or max(abs(a) for a in sizes) <= limit:
            return f0, J0, True
        e = max(-1000, min(1000, sum(sizes) // len(sizes)))  # 2.0 ** ±1000 exists
        self.scale = math.ldexp(1.0, -e)
        ok = all(abs(a - e) <= 480 for a in sizes)
        return f0 * self.scale, J0 * self.scale, ok

    def second_directional(self, v: np.ndarray, d: np.ndarray, f: np.ndarray, Jd: np.ndarray,
                           h: float = 0.1) -> np.ndarray:
        """``f''(v)[d, d]`` by Transtrum & Sethna's finite difference along the step,
        ``(2/h) ((f(v + h d) − f(v)) / h − J d)``: one residual evaluation (counted)."""
        return (2.0 / h) * ((self.f(v + h * d) - f) / h - Jd)

    def _choose(self, v: np.ndarray, m: int) -> None:
        """Resolve ``jac="auto"`` at ``v`` (the first Jacobian's point)."""
        choice = choose(self._flat, self.tensor(v).reshape(-1), m if m > 0 else self.n)
        self.mode, self._plan, self.reason = choice.mode, choice.plan, choice.reason
        self.sparse = choice.mode == "sparse"
        if self.verbose:
            print(f"least_squares: jac='auto' chose {choice.reason}")

    def _sparse_jacobian(self, v: np.ndarray) -> sp.csr_matrix:
        from ... import sparse as _sparse

        prepare = getattr(_sparse, "prepare", None)
        if prepare is None:
            raise InvalidOptionError(
                "jac='sparse' needs jacobite.sparse.prepare, which this version of jacobite "
                "does not have yet; pass jac=callable returning a scipy.sparse matrix instead")
        xt = self.tensor(v)
        if self._plan is None:
            self._plan = prepare(self._flat, xt.reshape(-1))
        op = self._plan.jacobian(xt.reshape(-1))
        return sp.csr_matrix(op.to_scipy(), dtype=np.float64)
