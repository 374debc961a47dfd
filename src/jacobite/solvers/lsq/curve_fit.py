"""``curve_fit``: SciPy's ``curve_fit``, with exact Jacobians for a model written in torch.

Fits ``f(xdata, *params) ≈ ydata`` by :func:`least_squares` on the whitened residuals
``W (f − y)`` (``ydata`` broadcast against ``f``'s output): ``W = diag(1/σ)`` for a scalar or
1-D ``sigma`` (standard deviations) and ``W = L⁻¹`` with ``Σ = L Lᵀ`` (Cholesky) for a 2-D
``sigma`` (a covariance matrix). A model written in torch is differentiated exactly; one written
in NumPy is called with NumPy arrays and differentiated by finite differences
(:mod:`._curve_model`). ``nan_policy`` and ``check_finite`` treat NaN as SciPy does
(:mod:`._curve_data`). ``pcov`` is the pseudo-inverse ``(J̃ᵀJ̃)⁺`` from the SVD of the whitened
Jacobian (SciPy's cut of small singular values; ``JᵀJ`` is never formed), times the reduced
χ² = ``Σ r̃² / (m − n)`` unless ``absolute_sigma``; parameters the data do not determine have
variance ``inf`` (:func:`.result.covariance`), and ``pcov`` is all ``inf`` when ``m <= n`` leaves
χ² unknown (both with a warning). Like SciPy, ``popt`` and ``pcov`` are NumPy float64 arrays.

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
import torch

from ... import _validate
from ..._modules import keeps_state
from ...errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    ShapeError,
)
from ._curve_data import data, whitening
from ._curve_model import NUMERIC, Model, as_array
from .least_squares import Method, least_squares
from .result import LeastSquaresResult, covariance

__all__ = ["curve_fit"]

_EPS = float(np.finfo(float).eps)
#: SciPy's ``least_squares`` status as MINPACK's ``info`` (what ``leastsq`` returns as ``ier``).
_MINPACK_IER = {0: 5, 1: 4, 2: 1, 3: 2, 4: 3}


def _n_params(f: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError("cannot count the model's parameters; pass p0") from exc
    ps = [p for p in sig.parameters.values()
          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(ps) < 2:
        raise InvalidOptionError("cannot count the model's parameters from its signature "
                                 "(f(x, p1, p2, ...) names them); pass p0")
    return len(ps) - 1


def _start(p0: Any) -> np.ndarray:
    try:
        p = np.asarray(p0.detach().cpu() if isinstance(p0, torch.Tensor) else p0,
                       dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"p0 must be a number or an array of numbers; got "
                         f"{type(p0).__name__}") from exc
    if not np.all(np.isfinite(p)):
        raise NonFiniteInputError("p0 contains NaN or Inf; start from finite parameter values")
    return np.atleast_1d(p).reshape(-1).copy()


def _bounds(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        bounds = (bounds.lb, bounds.ub)
    if isinstance(bounds, (str, bytes)) or not hasattr(bounds, "__len__") or len(bounds) != 2:
        raise ShapeError(f"bounds must be a pair (lb, ub) of scalars or length-n arrays, got "
                         f"{bounds!r}; e.g. bounds=(0, np.inf)")
    out = []
    for b in bounds:
        a = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=float)
        if a.size not in (1, n):
            raise ShapeError(f"each bound must be a scalar or have one entry per parameter "
                             f"({n}); got {a.size}")
        out.append(np.broadcast_to(a.reshape(-1), (n,)).copy())
    return out[0], out[1]


def _leastsq_spellings(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool, float | None]:
    """SciPy's ``leastsq`` options in :func:`least_squares`' terms (see ``**kwargs`` of
    :func:`curve_fit`): the keyword arguments left, ``col_deriv``, and the relative difference
    step ``epsfcn`` asks for (``None``: the scheme's default)."""
    kw = dict(kwargs)
    if "factor" in kw:
        raise InvalidOptionError("factor (MINPACK's first step bound) is not an option: "
                                 "jacobite's Levenberg–Marquardt sizes its first step from the "
                                 "scaled start; leave factor out (or pass x_scale)")
    if "maxfev" in kw:
        if "max_nfev" in kw:
            raise InvalidOptionError("give max_nfev or its SciPy alias maxfev, not both")
        kw["max_nfev"] = kw.pop("maxfev")
    if "diag" in kw:
        if "x_scale" in kw:
            raise InvalidOptionError("give x_scale or leastsq's diag (= 1 / x_scale), not both")
        try:
            diag = np.asarray(kw.pop("diag"), dtype=float)
        except (TypeError, ValueError):
            diag = np.zeros(0)
        if diag.size == 0 or not np.all(np.isfinite(diag) & (diag > 0)):
            raise InvalidOptionError("diag (the variables' scale factors) must be positive and "
                                     "finite")
        kw["x_scale"] = 1.0 / diag
    col_deriv = bool(kw.pop("col_deriv", False))
    epsfcn = kw.pop("epsfcn", None)
    rel = None if epsfcn is None else float(np.sqrt(max(float(epsfcn), _EPS)))
    return kw, col_deriv, rel


def _feasible_start(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """SciPy's default start: ones, or inside the bounds (midpoint / bound ± 1)."""
    p0 = np.ones(lb.size)
    both = np.isfinite(lb) & np.isfinite(ub)
    p0[both] = 0.5 * (lb[both] + ub[both])
    lo = np.isfinite(lb) & ~np.isfinite(ub)
    p0[lo] = lb[lo] + 1
    hi = ~np.isfinite(lb) & np.isfinite(ub)
    p0[hi] = ub[hi] - 1
    return p0


@keeps_state
def curve_fit(f: Callable[..., Any], xdata: Any, ydata: Any, p0: Any = None,
              sigma: Any = None, absolute_sigma: bool = False, check_finite: bool | None = None,
              bounds: Any = (-np.inf, np.inf), method: Method | None = None,
              jac: Callable[..., Any] | str | None = None, *, full_output: bool = False,
              nan_policy: str | None = None, batch: bool = False, process_group: Any = None,
              **kwargs: Any) -> tuple[Any, ...]:
    """Fit ``f(xdata, *params)`` to ``ydata`` (SciPy's ``curve_fit``, argument for argument).

    Args:
        f: the model ``f(x, p1, p2, ...)``, in torch (exact Jacobians) or NumPy (finite
            differences; see the module doc), returning values broadcastable against ``ydata``.
        xdata: the independent variable (a float64 array / tensor when numeric; passed through
            as is otherwise, e.g. ``None`` or an object ``f`` understands).
        ydata: the observations.
        p0: the start (a scalar for one parameter); by default (as SciPy) ones — or the middle
            of finite bounds, ``lb + 1`` / ``ub − 1`` for one-sided ones — one per parameter of
            ``f``'s signature.
        sigma: standard deviations of ``ydata`` (a scalar or one per point), or its
            covariance matrix (2-D).
        absolute_sigma: ``sigma`` in absolute units (``pcov`` not rescaled by the reduced χ²).
        check_finite: refuse NaN/Inf in ``xdata`` / ``ydata``; default on unless ``nan_policy``
            is given.
        bounds: ``(lb, ub)`` on the parameters, or a ``scipy.optimize.Bounds``.
        method: ``"lm"`` (default without bounds), ``"trf"`` (default with) or another method
            of :func:`least_squares`.
        jac: ``jac(x, *params)`` returning the Jacobian of ``f`` (one row per output of ``f``,
            one column per parameter; called with torch or NumPy arguments, as ``f`` is), or
            a string: for a torch model every string gives the exact Jacobian (``"auto"``,
            ``"dense"``, ``"sparse"`` as in :func:`least_squares`; ``"2-point"``, ``"3-point"``
            and ``"cs"`` are accepted and exact too); for a NumPy model the difference
            scheme :func:`least_squares` applies to the whitened residuals: ``"2-point"``
            (SciPy's default: its steps ``√eps · max(1, |p|)`` stay within narrow features of
            a model whose parameters are large, where ``"3-point"``'s ``∛eps`` ones do not),
            ``"3-point"`` or ``"cs"``.
        full_output: also return ``infodict``, ``mesg`` and ``ier`` as SciPy does:
            ``infodict`` holds ``nfev``, ``fvec`` (the whitened residuals), ``njev`` and
            ``result`` (the :class:`LeastSquaresResult`), and for ``"lm"`` MINPACK's ``fjac``,
            ``ipvt`` and ``qtf`` of the final Jacobian; ``ier`` is MINPACK's ``info`` for
            ``"lm"`` (1-4 converged) and the ``status`` otherwise.
        nan_policy: ``None``, ``"raise"`` or ``"omit"`` (drop points with NaN in ``xdata`` or
            ``ydata``, with their entries of ``sigma``).
        batch: many fits at once: ``ydata`` is ``(B, k)``, ``f`` receives each parameter as a
            ``(B, 1)`` column, ``popt`` is ``(B, p)`` and ``pcov`` ``(B, p, p)``
            (:mod:`.engine.batch_curve`; ``docs/solvers.md``, "Many problems at once").
        process_group: with ``batch=True``, a ``torch.distributed`` group (or ``"world"``)
            whose ranks share the fits: every rank passes all the data, fits its contiguous
            share of the rows and receives every result (``docs/distributed.md``); default
            None, one process.
        **kwargs: passed to :func:`least_squares` (``ftol``, ``xtol``, ``gtol``, ``loss``,
            ``max_nfev``, ...). SciPy's ``leastsq`` spellings are understood: ``maxfev``
            (``max_nfev``), ``diag`` (the variables' scale factors: ``x_scale = 1 / diag``),
            ``epsfcn`` (the relative error of ``f``: difference steps ``√epsfcn · |p|``) and
            ``col_deriv`` (``jac`` returns the transposed Jacobian).

    Returns:
        ``(popt, pcov)`` as NumPy arrays, or ``(popt, pcov, infodict, mesg, ier)``. Where the
        solver stops short of a minimum, the best point is returned with a
        :class:`~jacobite.errors.JacobiteWarning`.

    Raises:
        ShapeError: empty ``ydata``, or ``ydata`` / ``sigma`` / ``f``'s output that do not fit.
        NonFiniteInputError: NaN/Inf in the data (``check_finite``) or in ``sigma``; NaN with
            ``nan_policy="raise"``.
        InvalidOptionError: a non-positive ``sigma``, a covariance that is not positive
            definite, ``p0`` outside the bounds, an unknown ``nan_policy`` or ``jac``, ``args``
            among the keyword arguments, or ``p0`` omitted where ``f``'s signature does not
            count the parameters.
        ArgumentTypeError: ``method="lm"`` with more parameters than data points.
    """
    from ._distributed import fit_sharded, unbatched

    if _validate.boolean(batch, "batch"):
        return fit_sharded(f, xdata, ydata, p0, dict(
            sigma=sigma, absolute_sigma=absolute_sigma, check_finite=check_finite,
            bounds=bounds, method=method, jac=jac, full_output=full_output,
            nan_policy=nan_policy, **kwargs), process_group)
    unbatched(process_group, "ydata")
    _validate.callable_(f, "f")
    absolute_sigma = _validate.boolean(absolute_sigma, "absolute_sigma")
    full_output = _validate.boolean(  # SciPy's full_output=1 spelling too
        bool(full_output) if type(full_output) is int and full_output in (0, 1) else full_output,
        "full_output")
    if "args" in kwargs:
        raise InvalidOptionError("curve_fit takes no args: f is called as f(xdata, *params); "
                                 "pass f with its fixed arguments bound (a lambda or "
                                 "functools.partial)")
    kwargs, col_deriv, rel_step = _leastsq_spellings(kwargs)
    p0 = _start(p0) if p0 is not None else None
    n = p0.size if p0 is not None else _n_params(f)
    lb, ub = _bounds(bounds, n)
    if p0 is None:
        p0 = _feasible_start(lb, ub)
    elif np.any(p0 < lb) or np.any(p0 > ub):
        k = int(np.flatnonzero((p0 < lb) | (p0 > ub))[0])
        raise InvalidOptionError(f"Initial guess is outside of provided bounds: p0[{k}] = "
                                 f"{p0[k]:g} is not in [{lb[k]:g}, {ub[k]:g}]; start inside "
                                 "them")
    bounded = bool(np.isfinite(lb).any() or np.isfinite(ub).any())
    method = method or ("trf" if bounded else "lm")
    x, y, s = data(xdata, ydata, sigma, check_finite, nan_policy)
    if method == "lm" and y.size != 1 and n > y.size:
        raise ArgumentTypeError(f"The number of func parameters={n} exceeds the number of data "
                                f"points={y.size}, more than method='lm' can fit; add data, "
                                "fix parameters, or use method='trf'")
    model = Model(f, x, p0)
    try:
        shape = np.broadcast_shapes(model.shape, y.shape)
    except ValueError:
        raise ShapeError(f"f returned shape {model.shape} for ydata of shape {y.shape} "
                         f"({y.size} observations); pass ydata with one entry per model output "
                         "(or broadcastable to it; check that xdata and ydata match)") from None
    m = int(np.prod(shape))
    whiten = whitening(s, m, y.size)
    yt = torch.as_tensor(np.broadcast_to(y, shape).reshape(-1).copy())

    def fun(p: torch.Tensor) -> torch.Tensor:
        return whiten(torch.broadcast_to(model(p), shape).reshape(-1) - yt)

    def rows(J: np.ndarray) -> torch.Tensor:  # the model's Jacobian as the residuals' one
        full = np.array(np.broadcast_to(J.reshape(*model.shape, n), (*shape, n))).reshape(m, n)
        return whiten(torch.as_tensor(full))

    jac_arg: Any = "auto"
    if callable(jac):
        def jac_arg(p: torch.Tensor) -> torch.Tensor:
            return rows(model.user_jacobian(jac, p, col_deriv))
    elif model.kind == "numpy":
        if jac in ("dense", "sparse"):
            raise InvalidOptionError(f"jac={jac!r} differentiates a torch model, but f is "
                                     "written in NumPy; pass jac='2-point', '3-point', 'cs' or "
                                     "a callable (or write f in torch)")
        jac_arg = "2-point" if jac in (None, "auto") else jac  # SciPy curve_fit's default
        if jac_arg not in NUMERIC:
            raise InvalidOptionError(f"jac must be '2-point', '3-point', 'cs' or a callable "
                                     f"jac(x, *params) for a model written in NumPy; got {jac!r}")
        if rel_step is not None:
            kwargs.setdefault("diff_step", rel_step)
    elif jac in ("dense", "sparse"):
        jac_arg = jac
    elif jac not in (None, "auto", *NUMERIC):
        raise InvalidOptionError(f"jac must be None, 'auto', 'dense', 'sparse', '2-point', "
                                 f"'3-point', 'cs' or a callable jac(x, *params); got {jac!r}")
    with warnings.catch_warnings():  # pcov below names the undetermined parameters once
        warnings.filterwarnings("ignore", "the Jacobian at the solution is rank deficient",
                                JacobiteWarning)
        res = least_squares(fun, torch.as_tensor(p0), method=method, jac=jac_arg,
                            bounds=(lb, ub), **kwargs)
    if not res.success:
        warnings.warn(f"curve_fit did not converge: {res.message}", JacobiteWarning,
                      stacklevel=3)  # the caller's line (keeps_state wraps curve_fit)
    popt = _array(res.x).reshape(-1)
    pcov = _pcov(res, m, n, absolute_sigma)
    if not full_output:
        return popt, pcov
    info: dict[str, Any] = {"nfev": res.nfev, "njev": res.njev,
                            "fvec": _array(res.fun), "result": res}
    ier = res.status
    if method == "lm":
        info.update(_minpack_factors(_array(res.jac), info["fvec"]))
        ier = _MINPACK_IER.get(ier, ier)
    return popt, pcov, info, res.message, ier


def _array(a: Any) -> np.ndarray:
    """A result field (tensor, array or SciPy sparse matrix) as a dense float64 array."""
    return as_array(a, "least_squares")


def _pcov(res: LeastSquaresResult, m: int, n: int, absolute_sigma: bool) -> np.ndarray:
    """SciPy's ``pcov``, with ``inf`` variance for the parameters the data do not determine."""
    cov = covariance(_array(res.jac), _array(res.fun), scale=False, warn=False)
    if cov is None or np.isnan(cov).any() or (not absolute_sigma and m <= n):
        why = (f"{m} residuals for {n} parameters leave no degrees of freedom to estimate the "
               "reduced χ²; add data or fix parameters" if not absolute_sigma and m <= n else
               "the Jacobian at the solution is not finite; start elsewhere or bound the "
               "parameters away from where f is singular")
        warnings.warn(f"the covariance of the parameters could not be estimated (pcov is inf): "
                      f"{why}", JacobiteWarning, stacklevel=4)
        return np.full((n, n), np.inf)
    free = np.flatnonzero(np.isinf(np.diag(cov))).tolist()
    if not absolute_sigma:
        finite = np.isfinite(cov)
        with np.errstate(over="ignore"):  # χ² of residuals near 1e200 passes float64: inf
            cov[finite] *= 2 * res.cost / (m - n)
    if free:
        warnings.warn(f"the covariance of the parameters could not be estimated in full: the "
                      f"data do not determine the parameters {free} (their variance is inf); "
                      "fix or remove them, or add data that depend on them", JacobiteWarning,
                      stacklevel=4)
    return cov


def _minpack_factors(J: np.ndarray, fvec: np.ndarray) -> dict[str, np.ndarray]:
    """``leastsq``'s ``fjac``, ``ipvt`` and ``qtf`` of ``J P = Q R`` (QR with column pivoting):
    ``fjac.T`` holds ``R`` in its upper triangle (the Householder vectors below it), ``ipvt``
    the 0-based columns of ``P`` (as SciPy's ``leastsq`` gives them), ``qtf = (Qᵀ fvec)[:n]``."""
    import scipy.linalg

    (qr, _), _, piv = scipy.linalg.qr(J, mode="raw", pivoting=True)
    Q = scipy.linalg.qr(J[:, piv], mode="economic")[0]
    return {"fjac": np.ascontiguousarray(qr.T), "ipvt": piv.astype(np.int32),
            "qtf": Q.T @ fvec}
