"""Many curve fits at once: ``curve_fit(f, xdata, ydata, p0, batch=True)``.

``ydata`` is ``(B, k)``: one data set per row. The model is the one written for a single fit,
``f(x, p1, p2, ...)``, and receives each parameter as a ``(B, 1)`` column (one value per fit),
so ordinary broadcasting against ``xdata`` gives the ``(B, k)`` predictions: ``xdata`` of shape
``(k,)`` is shared by every fit, ``(B, k)`` gives each fit its own abscissae. ``p0`` is ``(B, p)``
or ``(p,)`` (the same start for every fit), ``bounds`` ``(p,)`` or ``(B, p)`` arrays,
``sigma`` ``(k,)`` / ``(B, k)`` standard deviations or ``(B, k, k)`` covariances. ``popt`` is
``(B, p)`` and ``pcov`` ``(B, p, p)`` (NumPy, as for one fit: SciPy's pseudo-inverse of the
whitened Jacobian times the reduced χ², ``inf`` where ``k <= p``).

>>> import torch
>>> x = torch.linspace(0, 1, 11, dtype=torch.float64)
>>> y = torch.stack([2 * torch.exp(-x), 3 * torch.exp(-2 * x)])           # (2, 11)
>>> popt, pcov = curve_fit_batch(lambda x, a, k: a * torch.exp(k * x), x, y, [1.0, 0.0])
>>> popt.round(10).tolist(), pcov.shape
([[2.0, -1.0], [3.0, -2.0]], (2, 2, 2))
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ....errors import InvalidOptionError, JacobiteWarning, NonFiniteInputError, ShapeError
from .batch import solve_batch

__all__ = ["curve_fit_batch"]

DT = torch.float64
#: the options curve_fit(batch=True) passes on to least_squares(batch=True)
PASSED = frozenset(("ftol", "xtol", "gtol", "loss", "f_scale", "max_nfev", "verbose",
                    "x_scale", "geodesic", "dtype"))


def _tensor(a: Any, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(a.detach() if isinstance(a, torch.Tensor) else a, dtype=DT)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ShapeError(f"{name} must be an array of numbers") from exc
    return t


def _weights(sigma: Any, B: int, k: int) -> torch.Tensor | None:
    """Per-fit whitening: ``(B, k)`` inverse standard deviations, ``(B, k, k)`` Cholesky
    factors of covariances, or ``None``."""
    if sigma is None:
        return None
    s = _tensor(sigma, "sigma")
    if not bool(torch.isfinite(s).all()):
        raise NonFiniteInputError("sigma contains NaN or Inf")
    if s.shape in ((k,), (B, k)):
        if not bool((s > 0).all()):
            raise InvalidOptionError("sigma (standard deviations) must be positive")
        return (1.0 / s).expand(B, k).contiguous()
    if s.shape == (B, k, k):
        L, info = torch.linalg.cholesky_ex(s)
        if bool((info != 0).any()):
            raise InvalidOptionError("sigma as covariance matrices must be symmetric positive "
                                     "definite for every fit")
        return L
    raise ShapeError(f"with batch=True sigma must have shape ({k},), ({B}, {k}) or "
                     f"({B}, {k}, {k}); got {tuple(s.shape)}")


def _whiten(r: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """``W r`` per fit for ``r`` of shape ``(b, k)`` or ``(b, k, p)``."""
    if w is None:
        return r
    if w.ndim == 2:
        return r * (w if r.ndim == 2 else w[..., None])
    rr = r[..., None] if r.ndim == 2 else r
    out = torch.linalg.solve_triangular(w, rr, upper=False)
    return out[..., 0] if r.ndim == 2 else out


def _pcov(J: torch.Tensor, cost: torch.Tensor, absolute_sigma: bool) -> np.ndarray:
    """SciPy's ``pcov`` per fit: the pseudo-inverse of ``JᵀJ`` (singular values below
    ``eps·max(k, p)·s₀`` dropped) times the reduced χ² unless ``absolute_sigma``."""
    B, m, n = J.shape
    finite = torch.isfinite(J).flatten(1).all(-1)
    _, s, Vh = torch.linalg.svd(torch.where(finite[:, None, None], J, 0.0),
                                full_matrices=False)
    keep = s > torch.finfo(DT).eps * max(m, n) * s[:, :1]
    inv = torch.where(keep, 1.0 / torch.where(keep, s, 1.0) ** 2, 0.0)
    pcov = (Vh.mT * inv[:, None, :]) @ Vh
    if not absolute_sigma:
        if m <= n:
            return np.full((B, n, n), np.inf)
        pcov = pcov * (2 * cost / (m - n))[:, None, None]
    pcov = torch.where(finite[:, None, None] & ~pcov.isnan().any((1, 2))[:, None, None], pcov,
                       torch.inf)
    return pcov.cpu().numpy()


def curve_fit_batch(f: Callable[..., Any], xdata: Any, ydata: Any, p0: Any = None,
                    sigma: Any = None, absolute_sigma: bool = False,
                    check_finite: bool | None = None, bounds: Any = (-np.inf, np.inf),
                    method: str | None = None, jac: Callable[..., Any] | str | None = None,
                    full_output: bool = False, nan_policy: str | None = None,
                    **kwargs: Any) -> tuple[Any, ...]:
    """``B`` fits of ``f(xdata, *params)`` to the rows of ``ydata`` (see the module doc);
    ``kwargs`` go to ``least_squares(batch=True)`` (``ftol``, ``loss``, ``max_nfev``, ...)."""
    if nan_policy not in (None, "raise"):
        raise InvalidOptionError("with batch=True every fit uses the same points, so "
                                 f"nan_policy={nan_policy!r} cannot drop points of one fit; fit "
                                 "the rows with NaN one at a time (batch=False)")
    y = _tensor(ydata, "ydata")
    if y.ndim != 2 or y.shape[1] == 0:
        raise ShapeError(f"with batch=True ydata must have shape (B, k): one data set per row; "
                         f"got {tuple(y.shape)}")
    if check_finite is not False and not bool(torch.isfinite(y).all()):
        b = int(torch.nonzero(~torch.isfinite(y).all(1))[0, 0])
        raise NonFiniteInputError(f"ydata contains NaN or Inf (first in fit {b}); remove those "
                                  "fits or points")
    B, k = y.shape
    try:
        x: Any = _tensor(xdata, "xdata")
    except ShapeError:
        x = xdata  # anything the model understands
    if p0 is None:  # SciPy's default start, inside the bounds (per fit where they are)
        from ..curve_fit import _feasible_start, _n_params

        n0 = _n_params(f)
        lo, hi = (bounds.lb, bounds.ub) if hasattr(bounds, "lb") else bounds  # scipy Bounds
        lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float),
                                     np.zeros(n0))[:2]
        p0 = torch.as_tensor(_feasible_start(lo.ravel(), hi.ravel()).reshape(lo.shape), dtype=DT)
    start = _tensor(p0, "p0").to(y.device)
    start = start.reshape(1, -1).expand(B, -1) if start.ndim <= 1 else start
    if start.shape[0] != B or start.ndim != 2:
        raise ShapeError(f"with batch=True p0 must have shape (p,) or (B, p) = ({B}, p); got "
                         f"{tuple(start.shape)}")
    n = start.shape[1]
    w = _weights(sigma, B, k)
    w = None if w is None else w.to(y.device)
    if "maxfev" in kwargs:
        kwargs["max_nfev"] = kwargs.pop("maxfev")
    other = sorted(set(kwargs) - PASSED)
    if other:
        raise InvalidOptionError(f"curve_fit(batch=True) does not take {', '.join(other)}; it "
                                 f"passes on only {', '.join(sorted(PASSED))} (fit the data sets "
                                 "one at a time for the others)")

    def predict(p: torch.Tensor, xx: Any) -> torch.Tensor:
        out = f(xx, *p.split(1, dim=1))
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out, dtype=np.float64))
        if out.numel() != p.shape[0] * k:
            raise ShapeError(f"the model returned shape {tuple(out.shape)} for {p.shape[0]} fits "
                             f"of {k} points; with batch=True each parameter is a (B, 1) column "
                             "and the model must return (B, k) (check that xdata broadcasts)")
        return out.reshape(p.shape[0], k)

    def fun(p: torch.Tensor, xx: Any, yy: torch.Tensor, ww: torch.Tensor | None
            ) -> torch.Tensor:
        return _whiten(predict(p, xx) - yy, ww)

    jac_arg: Any = "auto"
    if callable(jac):
        def jac_arg(p: torch.Tensor, xx: Any, yy: torch.Tensor, ww: torch.Tensor | None
                    ) -> torch.Tensor:
            Jm = torch.as_tensor(jac(xx, *p.split(1, dim=1)), dtype=DT)
            return _whiten(Jm.reshape(p.shape[0], k, n), ww)
    elif jac not in (None, "auto", "dense"):
        raise InvalidOptionError("with batch=True jac must be None, 'auto', 'dense' or a "
                                 "callable jac(x, *params) returning (B, k, p)")
    lb, ub = bounds
    bounded = bool(np.isfinite(np.asarray(lb, dtype=float)).any()
                   or np.isfinite(np.asarray(ub, dtype=float)).any())
    method = method or ("trf" if bounded else "lm")
    res = solve_batch(fun, start, method=method, jac=jac_arg, bounds=bounds, args=(x, y, w),
                      **kwargs)
    if not bool(res.success.all()):
        bad = int((~res.success).sum())
        warnings.warn(f"curve_fit did not converge for {bad} of {B} fits (first: "
                      f"{res.message[int(torch.nonzero(~res.success)[0, 0])]})",
                      JacobiteWarning, stacklevel=3)
    popt = res.x.detach().cpu().numpy().copy()
    pcov = _pcov(res.jac, res.cost, absolute_sigma)
    if full_output:
        info = {"nfev": res.nfev.cpu().numpy(), "njev": res.njev.cpu().numpy(),
                "fvec": res.fun.cpu().numpy(), "result": res}
        return popt, pcov, info, res.message, res.status.cpu().numpy()
    return popt, pcov
