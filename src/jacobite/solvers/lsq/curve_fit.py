"""``curve_fit``: SciPy's ``curve_fit`` with the model written in torch and exact Jacobians.

Fits ``model(xdata, *params) ≈ ydata`` by :func:`least_squares` on the whitened residuals
``W (model − y)``: ``W = diag(1/σ)`` for a 1-D ``sigma`` (standard deviations) and
``W = L⁻¹`` with ``Σ = L Lᵀ`` (Cholesky) for a 2-D ``sigma`` (a covariance matrix). ``pcov`` is
SciPy's: the pseudo-inverse ``(J̃ᵀJ̃)⁺`` from the SVD of the whitened Jacobian (singular values
below ``eps · max(m, n) · s₀`` dropped; ``JᵀJ`` is never formed), multiplied by the reduced
χ² = ``Σ r̃² / (m − n)`` unless ``absolute_sigma``. Like SciPy, ``popt`` and ``pcov`` are NumPy
float64 arrays, and ``pcov`` is all ``inf`` (with a warning) when it cannot be estimated.

>>> import torch
>>> x = torch.linspace(0, 1, 11, dtype=torch.float64)
>>> popt, pcov = curve_fit(lambda x, a, k: a * torch.exp(k * x), x, 2 * torch.exp(-x),
...                        p0=[1.0, 0.0])
>>> popt.round(10).tolist(), pcov.shape
([2.0, -1.0], (2, 2))
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ... import _validate
from ..._modules import keeps_state
from ...errors import InvalidOptionError, JacobiteWarning, NonFiniteInputError, ShapeError
from .least_squares import Method, least_squares

__all__ = ["curve_fit"]


def _tensor(a: Any, name: str) -> Any:
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float64) if a.is_floating_point() or a.dtype in (
            torch.int32, torch.int64) else a
    try:
        return torch.as_tensor(np.asarray(a, dtype=np.float64))
    except (TypeError, ValueError):
        if name == "xdata":
            return a  # anything the model understands (a tuple of arrays, an object, ...)
        raise ShapeError(f"{name} must be an array of numbers") from None


def _n_params(model: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(model)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError("cannot count the model's parameters; pass p0") from exc
    ps = [p for p in sig.parameters.values()
          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()) or len(ps) < 2:
        raise InvalidOptionError("cannot count the model's parameters from its signature; "
                                 "pass p0")
    return len(ps) - 1


def _feasible_start(n: int, bounds: Any) -> np.ndarray:
    """SciPy's default start: ones, or inside the bounds (midpoint / bound ± 1)."""
    lb, ub = (np.broadcast_to(np.asarray(b, dtype=float), (n,)) for b in bounds)
    p0 = np.ones(n)
    both = np.isfinite(lb) & np.isfinite(ub)
    p0[both] = 0.5 * (lb[both] + ub[both])
    lo = np.isfinite(lb) & ~np.isfinite(ub)
    p0[lo] = lb[lo] + 1
    hi = ~np.isfinite(lb) & np.isfinite(ub)
    p0[hi] = ub[hi] - 1
    return p0


@keeps_state
def curve_fit(model: Callable[..., Any], xdata: Any, ydata: Any, p0: Any = None,
              sigma: Any = None, absolute_sigma: bool = False,
              bounds: Any = (-np.inf, np.inf), method: Method | None = None,
              jac: Callable[..., Any] | str | None = None, full_output: bool = False,
              **kwargs: Any) -> tuple[Any, ...]:
    """Fit ``model(xdata, *params)`` to ``ydata`` (SciPy's ``curve_fit`` semantics).

    Args:
        model: ``model(x, p1, p2, ...)`` returning a tensor shaped like ``ydata``, in torch.
        xdata: the independent variable (converted to a float64 tensor when numeric; passed
            through as is otherwise).
        ydata: the observations.
        p0: the start; by default (as SciPy) ones — or the middle of finite bounds, ``lb + 1`` /
            ``ub − 1`` for one-sided ones — one per parameter of ``model``'s signature.
        sigma: 1-D standard deviations of ``ydata``, or a 2-D covariance matrix of it.
        absolute_sigma: ``sigma`` in absolute units (``pcov`` not rescaled by the reduced χ²).
        bounds: ``(lb, ub)`` on the parameters.
        method: ``"lm"`` (default without bounds), ``"trf"`` (default with) or
            ``"gauss-newton"``.
        jac: ``jac(x, *params)`` returning the ``m × n`` Jacobian of the model, or ``None`` /
            ``"auto"`` / ``"dense"`` for exact AD Jacobians (``"auto"`` as in
            :func:`least_squares`: with ``min(m, n) < 1000``, the usual case of a few
            parameters, it is dense).
        full_output: also return ``infodict`` (``nfev``, ``njev``, ``fvec``, ``result``),
            ``mesg`` and ``ier`` (the status) like SciPy.
        **kwargs: passed to :func:`least_squares` (``ftol``, ``loss``, ``max_nfev``, ...).

    Returns:
        ``(popt, pcov)`` as NumPy arrays, or ``(popt, pcov, infodict, mesg, ier)``.

    Raises:
        ShapeError: ``ydata`` / ``sigma`` / model output sizes disagree.
        NonFiniteInputError: ``ydata`` or ``sigma`` holds NaN/Inf.
        InvalidOptionError: a non-positive ``sigma``, a covariance that is not positive
            definite, or ``p0`` omitted for a model without a countable signature.
    """
    _validate.callable_(model, "model")
    absolute_sigma = _validate.boolean(absolute_sigma, "absolute_sigma")
    full_output = _validate.boolean(full_output, "full_output")
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise ShapeError(f"bounds must be a pair (lb, ub) of scalars or length-n arrays, got "
                         f"{bounds!r}; e.g. bounds=(0, np.inf)")
    x = _tensor(xdata, "xdata")
    y = _tensor(ydata, "ydata").reshape(-1)
    if not torch.isfinite(y).all():
        raise NonFiniteInputError("ydata contains NaN or Inf; remove those points")
    m = y.numel()
    if p0 is None:
        p0 = _feasible_start(_n_params(model), bounds)
    if sigma is None:
        def whiten(r: torch.Tensor) -> torch.Tensor:
            return r
    else:
        s = _tensor(sigma, "sigma")
        if not torch.isfinite(s).all():
            raise NonFiniteInputError("sigma contains NaN or Inf")
        if s.ndim <= 1 and s.numel() == m:
            if not (s > 0).all():
                raise InvalidOptionError("sigma (standard deviations) must be positive")
            w = 1.0 / s.reshape(-1)

            def whiten(r: torch.Tensor) -> torch.Tensor:
                return r * (w if r.ndim == 1 else w[:, None])
        elif s.shape == (m, m):
            L, info = torch.linalg.cholesky_ex(s)
            if int(info) != 0:
                raise InvalidOptionError("sigma as a covariance matrix must be symmetric "
                                         "positive definite")

            def whiten(r: torch.Tensor) -> torch.Tensor:
                rr = r if r.ndim == 2 else r[:, None]
                out = torch.linalg.solve_triangular(L, rr, upper=False)
                return out if r.ndim == 2 else out[:, 0]
        else:
            raise ShapeError(f"sigma must have shape ({m},) or ({m}, {m}); got "
                             f"{tuple(s.shape)}")

    def fun(p: torch.Tensor) -> torch.Tensor:
        try:
            out = model(x, *p.unbind())
        except (IndexError, RuntimeError, TypeError, ValueError) as exc:
            raise ShapeError(
                f"model(xdata, *p) failed with {type(exc).__name__}: {exc}; check that p0 has "
                f"one entry per model parameter ({p.numel()} given) and that xdata is what "
                f"model expects") from exc
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out, dtype=np.float64))
        out = out.reshape(-1)
        if out.numel() != m:
            raise ShapeError(f"the model returned {out.numel()} values for {m} observations; "
                             f"pass ydata with one entry per model output (check that xdata "
                             f"and ydata match)")
        return whiten(out - y.to(out.dtype))

    jac_arg: Any = "auto"
    if callable(jac):
        def jac_arg(p: torch.Tensor) -> torch.Tensor:
            Jm = jac(x, *p.unbind())
            if sp.issparse(Jm):
                Jm = Jm.toarray()
            Jm = torch.as_tensor(np.asarray(Jm, dtype=np.float64)) if not isinstance(
                Jm, torch.Tensor) else Jm.to(torch.float64)
            return whiten(Jm.reshape(m, -1))
    elif jac == "dense":
        jac_arg = "dense"
    elif jac not in (None, "auto"):
        raise InvalidOptionError("jac must be None, 'auto', 'dense' or a callable "
                                 "jac(x, *params)")
    lb, ub = bounds
    bounded = bool(np.isfinite(np.asarray(lb, dtype=float)).any()
                   or np.isfinite(np.asarray(ub, dtype=float)).any())
    method = method or ("trf" if bounded else "lm")
    res = least_squares(fun, p0, method=method, jac=jac_arg, bounds=bounds, **kwargs)
    if not res.success:
        warnings.warn(f"curve_fit did not converge: {res.message}", JacobiteWarning,
                      stacklevel=2)
    popt = res.x.detach().cpu().numpy().astype(np.float64).reshape(-1)
    J = res.jac.toarray() if sp.issparse(res.jac) else res.jac.detach().cpu().numpy()
    n = popt.size
    _, sv, Vt = np.linalg.svd(J, full_matrices=False)
    sv_keep = sv[sv > np.finfo(float).eps * max(J.shape) * (sv[0] if sv.size else 0.0)]
    Vk = Vt[:sv_keep.size]
    pcov = (Vk.T / sv_keep ** 2) @ Vk
    warn = False
    if not absolute_sigma:
        if m > n:
            pcov = pcov * (2 * res.cost / (m - n))
        else:
            pcov = np.full((n, n), np.inf)
            warn = True
    if warn or np.isnan(pcov).any():
        pcov = np.full((n, n), np.inf)
        warnings.warn("the covariance of the parameters could not be estimated (m <= n); "
                      "pcov is inf — add data or fix parameters", JacobiteWarning, stacklevel=2)
    if full_output:
        info = {"nfev": res.nfev, "njev": res.njev, "fvec": res.fun.cpu().numpy(),
                "result": res}
        return popt, pcov, info, res.message, res.status
    return popt, pcov
