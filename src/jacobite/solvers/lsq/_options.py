"""Checks of ``least_squares``' arguments in SciPy's spelling: bounds (a pair or
:class:`scipy.optimize.Bounds`), tolerances (``None`` disables one), ``x_scale``, the start,
``tr_solver`` / ``tr_options``, ``workers`` and the binding of ``args`` / ``kwargs`` to ``fun``.

Every bad value raises a typed error from :mod:`jacobite.errors` that names the fix.

>>> import numpy as np
>>> from scipy.optimize import Bounds
>>> lb, ub = bounds(Bounds(lb=[0.0, 1.0]), 2)
>>> lb.tolist(), ub.tolist()
([0.0, 1.0], [inf, inf])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from ... import _validate
from ...errors import ArgumentTypeError, DtypeError, InvalidOptionError, ShapeError

__all__ = ["TR_SOLVERS", "binds", "bounds", "diff_step", "mapper", "real_start", "tolerances",
           "tr_options", "x_scale"]

TR_SOLVERS = ("exact", "lsmr")
#: the keywords ``tr_options`` may hold: LSMR's own (``tr_solver="lsmr"``) and ``regularize``
LSMR_OPTIONS = ("damp", "atol", "btol", "conlim", "maxiter", "show", "regularize")
EPS = float(np.finfo(float).eps)


def _array(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    if np.iscomplexobj(a):
        raise DtypeError("bounds must be real; got complex values")
    return np.asarray(a, dtype=np.float64)


def bounds(b: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lb, ub)`` as float64 arrays of length ``n`` from a pair or a ``Bounds`` instance.

    A scalar is repeated; an array must have one entry per parameter (a length-1 array is
    not stretched, so that a bound for the wrong problem is caught).
    """
    if hasattr(b, "lb") and hasattr(b, "ub") and not isinstance(b, (tuple, list)):
        lo, hi = b.lb, b.ub  # scipy.optimize.Bounds
    else:
        try:
            lo, hi = b
        except (TypeError, ValueError) as exc:
            raise ShapeError("bounds must be a pair (lb, ub) of scalars or length-n arrays, or "
                             "a scipy.optimize.Bounds") from exc
    out = []
    for side in (lo, hi):
        a = _array(side)
        if a.ndim == 0:
            a = np.full(n, float(a))
        a = a.ravel()
        if a.size != n:
            raise ShapeError(f"each bound must be a scalar or have one entry per parameter "
                             f"({n}); got {a.size}")
        out.append(a)
    lb, ub = out
    if np.isnan(lb).any() or np.isnan(ub).any() or not np.all(lb < ub):
        raise InvalidOptionError("bounds need lb < ub in every coordinate (no NaN); to fix a "
                                 "parameter, remove it from x instead")
    return lb, ub


def tolerances(ftol: Any, xtol: Any, gtol: Any) -> tuple[float, float, float]:
    """The three tolerances, ``None`` read as 0 (that test off); at least one must be above
    machine epsilon, or nothing but ``max_nfev`` would stop the solve.

    >>> tolerances(None, 1e-10, None)
    (0.0, 1e-10, 0.0)
    """
    out = tuple(0.0 if t is None else _validate.tolerance(t, name)
                for name, t in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)))
    if all(t < EPS for t in out):
        raise InvalidOptionError(f"at least one of ftol, xtol, gtol must be above machine "
                                 f"epsilon ({EPS:.2e}); pass e.g. gtol=1e-15")
    return out[0], out[1], out[2]


def x_scale(value: Any, n: int) -> Any:
    """``"jac"`` or ``n`` positive finite scales (a scalar is repeated)."""
    if value is None:
        return "jac"
    if isinstance(value, str):
        if value != "jac":
            raise InvalidOptionError(f"x_scale must be 'jac' or positive numbers; got "
                                     f"{value!r}")
        return value
    a = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if np.iscomplexobj(a):
        raise InvalidOptionError(f"x_scale must be real and positive; got {value!r}")
    try:
        a = np.asarray(a, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"x_scale must be 'jac' or positive numbers; got "
                                 f"{value!r}") from exc
    if a.size == 1:
        a = np.full(n, float(a[0]))
    if a.size != n:
        raise ShapeError(f"x_scale must be 'jac', a scalar or have {n} entries; got {a.size}")
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise InvalidOptionError("x_scale entries must be positive and finite")
    return a


def diff_step(value: Any) -> Any:
    """``None`` or finite relative steps (a number or one per variable; the sign is ignored, as
    SciPy's rule takes the sign of ``x``).

    >>> diff_step(1e-3)
    array(0.001)
    """
    if value is None:
        return None
    try:
        a = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor)
                       else value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"diff_step must be None or relative steps (numbers); got "
                                 f"{value!r}") from exc
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a == 0):
        raise InvalidOptionError(f"diff_step must be nonzero finite relative steps such as "
                                 f"1e-6; got {value!r}")
    return a


def real_start(x0: Any) -> None:
    """Refuse a complex start: least squares is over real unknowns (split a complex unknown
    into its real and imaginary parts)."""
    if isinstance(x0, torch.Tensor):
        bad = x0.is_complex()
    else:
        try:
            bad = np.iscomplexobj(np.asarray(x0))
        except (TypeError, ValueError):
            bad = False
    if bad:
        raise InvalidOptionError("x0 is complex, but least_squares solves for real unknowns; "
                                 "split each complex unknown into its real and imaginary parts "
                                 "(x = [re, im]) and return real residuals (e.g. "
                                 "torch.view_as_real(r))")


def tr_options(solver: Any, options: Any) -> dict[str, Any]:
    """``tr_solver`` and ``tr_options`` checked: ``"exact"``, ``"lsmr"`` or ``None``; the
    options only LSMR's keywords and ``regularize``."""
    if solver is not None:
        _validate.choice(solver, "tr_solver", TR_SOLVERS)
    opts = dict(options or {})
    if opts and solver == "exact":
        raise ArgumentTypeError("tr_options apply to tr_solver='lsmr'; drop them for 'exact'")
    unknown = sorted(set(opts) - set(LSMR_OPTIONS))
    if unknown:
        raise ArgumentTypeError(f"tr_options has unknown keyword(s) {unknown}; use only "
                                f"{', '.join(LSMR_OPTIONS)}")
    return opts


def mapper(workers: Any) -> Callable[[Callable[..., Any], Iterable[Any]], Iterable[Any]]:
    """``workers`` as a ``map``: ``None`` or 1 (serial), an int (a thread pool of that size,
    -1 for one per CPU) or a map-like callable such as ``multiprocessing.Pool(2).map``."""
    if workers is None:
        return map
    if callable(workers):
        return workers
    k = _validate.positive_int(workers, "workers", minimum=-1) if workers != -1 else -1
    if k == 0:
        raise InvalidOptionError("workers must be a positive int, -1 (all CPUs), None or a "
                                 "map-like callable; got 0")
    if k == 1:
        return map

    def pooled(fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(None if k == -1 else k) as pool:
            return list(pool.map(fn, items))

    return pooled


def binds(fn: Callable[..., Any], name: str, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> None:
    """Refuse ``args`` / ``kwargs`` that ``fn(x, *args, **kwargs)`` cannot take, before the
    first call (the call's own error would be read as a wrong shape of ``x0``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return
    try:
        sig.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise ArgumentTypeError(f"{name} cannot be called as {name}(x, *args, **kwargs) with "
                                f"args of length {len(args)} and kwargs {sorted(kwargs)}: "
                                f"{exc}; pass the extra arguments {name} takes") from exc
