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
import warnings
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ...dense._probe import PROBES
from ...dense.jacobian import jacobian as _jacobian
from ...errors import (
    InvalidOptionError,
    JacobiteError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)
from .._auto_jac import choose, slow_dense_warning
from .._ift import CLOSED_OVER, tracked
from .._scipy import issparse
from ._callback import Callback, Halt
from ._curve_model import _Escapes
from ._fd import SCHEMES, Differences, Scheme, numpy_point
from ._jac_values import as_jacobian
from .losses import cost_of

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Residuals"]

_ESCAPES = "least_squares: fun reads x out of torch"  # its verdict's key in PROBES


def _to_numpy(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def _exponent(a: np.ndarray) -> int | None:
    """The binary exponent of ``max|a|`` (``None`` when ``a`` is empty or all zero)."""
    big = float(np.max(np.abs(a))) if a.size else 0.0
    return math.frexp(big)[1] if big > 0 else None


class Residuals:
    """``fun`` on flat NumPy vectors, with its Jacobian and evaluation counters.

    ``fun`` may be written in torch (differentiated by AD) or in NumPy: the first evaluation
    passes a tensor, and where ``fun`` returns something other than a tensor (or fails on
    one) it is called with NumPy arrays from then on (``numpy`` is then ``True``) and its
    Jacobian comes from ``jac`` or from differences (:mod:`._fd`).
    """

    def __init__(self, fun: Callable[..., Any], x0: torch.Tensor, jac: Any,
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                 verbose: int = 0, *, diff_step: Any = None, sparsity: Any = None,
                 lb: np.ndarray | None = None, ub: np.ndarray | None = None,
                 mapper: Any = map, callback: Callback | None = None) -> None:
        self.fun, self.jac, self.args, self.kwargs = fun, jac, args, dict(kwargs or {})
        self.verbose = verbose
        self.mode: str | None = "callable" if callable(jac) else \
            None if jac == "auto" else jac  # "auto" is resolved at the first Jacobian
        self.reason = ""
        self.warned = False
        self.shape, self.dtype, self.device = x0.shape, x0.dtype, x0.device
        self.n = x0.numel()
        self.m: int | None = None
        self.nfev = self.njev = 0
        self.scale = 1.0  # a power of two the residuals and Jacobians are multiplied by
        self.sparse = jac == "sparse"
        self.numpy: bool | None = None  # fun written in NumPy (known after the first call)
        self.out_shape: tuple[int, ...] = ()  # the shape of what fun returns
        self.operator = False  # jac returns a LinearOperator (materialised by products)
        self.numpy_out = False  # results as NumPy arrays (x0 was a NumPy array)
        self.jac_numpy: bool | None = None  # a jac callable that takes NumPy arrays only
        self.black_box = False  # fun returns tensors but leaves torch inside: differences
        self.out_eps = float(torch.finfo(x0.dtype).eps)  # of the residuals' precision
        self.diff_step, self.sparsity, self.lb, self.ub = diff_step, sparsity, lb, ub
        self.mapper, self.callback = mapper, callback
        self.loss: Any = None  # the robust loss of the scaled residuals (the callback's cost)
        self._fd: Differences | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._plan: Any = None
        self._flat = self._flat_call  # one bound object: jacobian's plan cache keys on it
        names = ("auto", "dense", "sparse", *SCHEMES)
        if isinstance(jac, str) and jac not in names:
            raise InvalidOptionError(f"jac must be one of {', '.join(map(repr, names))} or a "
                                     f"callable; got {jac!r}")
        if not (isinstance(jac, str) or callable(jac)):
            raise InvalidOptionError(f"jac must be one of {', '.join(map(repr, names))} or a "
                                     "callable returning the m×n Jacobian; got "
                                     f"{type(jac).__name__}")

    # -- conversions -----------------------------------------------------------------------
    def tensor(self, v: np.ndarray) -> torch.Tensor:
        """The flat NumPy iterate as a tensor shaped like ``x0`` in the working dtype."""
        return torch.as_tensor(v, dtype=self.dtype, device=self.device).reshape(self.shape)

    def _flat_call(self, xt: torch.Tensor) -> torch.Tensor:
        return self._tidy(self.fun(xt.reshape(self.shape), *self.args, **self.kwargs))

    def jacobian_identity(self) -> tuple[Callable[..., Any], Any]:
        """What ``_flat_call`` computes from besides ``x``: the dense Jacobian's probe and plan
        of ``fun`` are shared by every solve of it instead of made again for each."""
        return self.fun, (tuple(self.shape), self.dtype, self.args, tuple(self.kwargs.items()))

    def _tidy(self, out: Any) -> torch.Tensor:
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

    def array(self, v: np.ndarray) -> np.ndarray:
        """The flat iterate as NumPy code sees it: shaped like ``x0``, at least 1-D (SciPy's
        convention: a scalar start is a 1-vector)."""
        return v.reshape(tuple(self.shape) or (1,))

    def _numpy_call(self, v: np.ndarray) -> np.ndarray:
        out = self.fun(self.array(v), *self.args, **self.kwargs)
        if out is None:
            raise OutputTypeError("fun returned None; it must return an array of residuals "
                                  "(a missing return statement?)")
        a = np.asarray(out)
        if a.dtype.kind not in "fciub":
            raise OutputTypeError(f"fun must return an array of residuals, got "
                                  f"{type(out).__name__}")
        if self.m is None:
            self.out_shape = a.shape
            if a.dtype.kind == "f":
                self.out_eps = max(float(np.finfo(a.dtype).eps), self.out_eps)
        return a.ravel() if a.dtype.kind == "c" else a.astype(np.float64).ravel()

    def evaluate(self, v: np.ndarray) -> np.ndarray:
        """Residuals at ``v`` as ``fun`` gives them (flat; complex for a complex ``v``),
        neither counted nor scaled: the points of a difference Jacobian."""
        if self.numpy:
            return self._numpy_call(v)
        with torch.no_grad():
            if np.iscomplexobj(v):  # the complex step: a tensor, else a NumPy array
                xt = torch.as_tensor(v, dtype=torch.complex128).reshape(self.shape)
                try:
                    out = self.fun(xt, *self.args, **self.kwargs)
                except (TypeError, RuntimeError):
                    return self._numpy_call(v)
                return np.asarray(out.detach().cpu().numpy() if isinstance(out, torch.Tensor)
                                  else out).ravel()
            return _to_numpy(self._flat_call(self.tensor(v)))

    def _first(self, v: np.ndarray) -> np.ndarray:
        """The first evaluation: with a tensor, then (where ``fun`` does not return one) with
        NumPy arrays; the probe is the evaluation whenever it gives residuals."""
        failure: Exception | None = None
        out: Any = None
        try:  # NumPy's deprecation notes about tensors in its functions are the probe's own
            with torch.set_grad_enabled(torch.is_grad_enabled()), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                out = self.fun(self.tensor(v), *self.args, **self.kwargs)
        except JacobiteError:
            raise
        except Exception as exc:
            failure = exc
        if isinstance(out, torch.Tensor):
            self.numpy = False
            self.out_shape = tuple(out.shape)
            t = self._tidy(out)
            if tracked(t):
                raise UnsupportedOperationError(CLOSED_OVER)
            return _to_numpy(t)
        if failure is not None:
            self.numpy = True
            try:
                return self._numpy_call(v)
            except Exception:
                self.numpy = None
                raise failure from None
        self.numpy = True  # fun returned NumPy values (or numbers) for a tensor
        if out is None:
            self._tidy(out)  # the typed error for a missing return value
        try:
            a = np.asarray(out)
            r = a.astype(np.float64).ravel()
            self.out_shape = a.shape
        except (TypeError, ValueError) as exc:
            raise OutputTypeError(f"fun must return an array of residuals, got "
                                  f"{type(out).__name__}") from exc
        if a.dtype.kind == "f":
            self.out_eps = max(float(np.finfo(a.dtype).eps), self.out_eps)
        return r

    # -- evaluations -----------------------------------------------------------------------
    def f(self, v: np.ndarray) -> np.ndarray:
        """Residuals at ``v`` (float64, flat); counts one evaluation. The first one runs with
        autograd on and refuses a ``fun`` that closes over a tensor autograd or ``torch.func``
        tracks (the solution would be silently constant in it)."""
        self.nfev += 1
        if self.numpy is None:
            r = self._first(v)
        elif self.numpy:
            r = self._numpy_call(v)
        else:
            with torch.no_grad():
                r = _to_numpy(self._flat_call(self.tensor(v)))
        if self.m is None:
            if r.size == 0:
                raise ShapeError("fun returned no residuals; it must return at least one")
            self.m = r.size
        elif r.size != self.m:
            raise ShapeError(f"fun returned {r.size} residuals here but {self.m} at x0; the "
                             "number of residuals must not depend on x")
        self._last = (v.copy(), r)
        return r * self.scale if self.scale != 1.0 else r

    def J(self, v: np.ndarray) -> Any:
        """The ``m × n`` Jacobian at ``v``: dense float64, or CSR when sparse. After the first
        one (each later Jacobian is that of an accepted step) the callback runs; where it
        asks to stop, :class:`~._callback.Halt` carries the point out of the solver."""
        self.njev += 1
        J = self._jacobian(v)
        J = J * self.scale if self.scale != 1.0 else J
        if self.callback is not None and self.njev > 1 and self._last is not None \
                and np.array_equal(self._last[0], v):
            f, c = self._last[1], self.scale  # the loss is that of the scaled residuals
            if self.callback(v, f, cost_of(f * c, self.loss) / c / c, self.njev - 1, self.nfev):
                raise Halt(v.copy(), f * self.scale, J, self.njev - 1)
        return J

    def _jacobian(self, v: np.ndarray) -> Any:
        m = self.m if self.m is not None else -1
        if callable(self.jac):
            return self._user_jacobian(v, m)
        if self.numpy or self.jac in SCHEMES or self.black_box:
            return self._differences(v, m)
        if self.njev > 1:
            return self._ad_jacobian(v, m)
        # the first Jacobian: does a value of x leave torch on the way? Known from an earlier
        # solve of the same fun (keyed like its dense probe; jacobite.clear_cache forgets it)
        key = PROBES.key(self._flat, (self.tensor(v).reshape(-1),), _ESCAPES)
        escaped = PROBES.get(key, self._flat)
        if escaped is False:
            return self._ad_jacobian(v, m)
        if escaped is None:
            spy = _Escapes()
            try:
                with spy:
                    J = self._ad_jacobian(v, m)
            except UnsupportedOperationError as exc:  # fun leaves torch (NumPy inside)
                if "leaves torch" not in str(exc) or self.jac != "auto":
                    raise
                spy.escaped = True  # not remembered: jac='dense' is to name this error again
            else:
                PROBES.put(key, self._flat, spy.escaped)
            if not spy.escaped:
                return J
        if self.jac != "auto":
            raise UnsupportedOperationError(
                "fun reads a value of x into Python or NumPy (float(x), x.item(), math.exp, "
                "np.*), so AD sees that part as constant and its Jacobian is wrong; write it "
                "with torch operations, or pass jac='auto' or '3-point' (differences)")
        self.black_box, self.mode, self._plan = True, None, None  # differences from here on
        return self._differences(v, m)

    def _ad_jacobian(self, v: np.ndarray, m: int) -> Any:
        if self.mode is None:
            if self.sparsity is not None:
                self.mode, self.sparse = "sparse", True
            else:
                self._choose(v, m)
        if self.mode == "sparse":
            J: Any = self._sparse_jacobian(v)
        else:
            t0 = time.perf_counter()
            with torch.enable_grad():
                J = _to_numpy(_jacobian(self._flat, self.tensor(v).reshape(-1), flat=True))
            if not self.warned:  # once per solve, after the first dense Jacobian
                self.warned = True
                slow_dense_warning(time.perf_counter() - t0, self.n, "least_squares",
                                   self.reason, m=J.shape[0])
        return self._check_shape(J, m)

    def _user_jacobian(self, v: np.ndarray, m: int) -> Any:
        if self.numpy or self.jac_numpy:
            out = self.jac(self.array(v), *self.args, **self.kwargs)
        else:
            try:
                with warnings.catch_warnings():  # as in the first call of fun
                    warnings.simplefilter("ignore", DeprecationWarning)
                    out = self.jac(self.tensor(v), *self.args, **self.kwargs)
            except JacobiteError:
                raise
            except Exception:
                if self.jac_numpy is not None:
                    raise
                out = self.jac(self.array(v), *self.args, **self.kwargs)
                self.jac_numpy = True
            self.jac_numpy = bool(self.jac_numpy)
        J, self.operator = as_jacobian(out, m, self.n, self.out_shape, tuple(self.shape),
                                       self.sparsity)
        self.sparse = self.sparse or issparse(J)
        return self._check_shape(J, m)

    def _check_shape(self, J: Any, m: int) -> Any:
        if J.shape != (m, self.n):
            raise ShapeError(f"the Jacobian has shape {tuple(J.shape)}; expected (m, n) = "
                             f"({m}, {self.n}): one row per residual, one column per entry of x")
        return J

    def _differences(self, v: np.ndarray, m: int) -> Any:
        if self._fd is None:
            scheme: Scheme = self.jac if self.jac in SCHEMES else "3-point"
            if self.jac in ("dense", "sparse") and self.sparsity is None:
                raise InvalidOptionError(
                    f"jac={self.jac!r} differentiates fun by AD, but fun returns NumPy arrays; "
                    "pass jac='2-point', '3-point' or 'cs' (differences), or a jac callable")
            self.mode = scheme
            point = partial(numpy_point, self.fun, self.args, self.kwargs,
                            tuple(self.shape) or (1,)) if self.numpy else self.evaluate
            self._fd = Differences(scheme, self.diff_step, point, self.n, self.sparsity,
                                   self.lb, self.ub, self.mapper)
            if self.verbose and self.jac == "auto":
                print(f"least_squares: AD cannot differentiate fun (NumPy inside); jac='auto' "
                      f"chose {scheme!r} differences")
        f0 = self._last[1] if self._last is not None and np.array_equal(self._last[0], v) \
            else self.evaluate(v)
        J = self._fd.jacobian(v, f0, self.out_eps)
        self.sparse = issparse(J)
        return self._check_shape(J, m)

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
            J0.multiply(x_scale[None, :]).tocsr() if issparse(J0) else J0 * x_scale)
        sizes = [a for a in (_exponent(f0), _exponent(Js.data if issparse(Js) else Js))
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
            self._plan = prepare(self._flat, xt.reshape(-1), pattern=self.sparsity)
        op = self._plan.jacobian(xt.reshape(-1))
        import scipy.sparse as sp

        return sp.csr_matrix(op.to_scipy(), dtype=np.float64)
