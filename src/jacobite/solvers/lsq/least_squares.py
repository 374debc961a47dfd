"""``least_squares``: nonlinear least squares with exact Jacobians (SciPy's interface).

Minimises ``½ Σ ρ(rᵢ(x)²)`` for a torch function ``r`` of residuals, optionally within box bounds,
with Jacobians from AD (:func:`jacobite.jacobian`), a user callable (dense or sparse) or a sparse
plan. The methods:

- ``"lm"``: Levenberg–Marquardt, Moré's scaled trust region (MINPACK semantics) on one SVD per
  Jacobian (:mod:`.engine.steps.lm`), with geodesic acceleration (``geodesic=True``, the
  default); for a sparse Jacobian, Levenberg–Marquardt with sparse LU steps
  (:mod:`.engine.steps.sparse_lm`).
- ``"trf"``: trust-region reflective (:mod:`.engine.steps.reflective`), for bounds, robust
  losses and sparse Jacobians (LSMR; never densified).
- ``"gauss-newton"``: Gauss–Newton with an Armijo line search
  (:mod:`.engine.steps.gauss_newton`).
- ``"auto"``: ``"lm"`` when unbounded with the linear loss and ``m >= n``, or unbounded with a
  sparse Jacobian (``jac="sparse"``, ``jac="auto"`` choosing sparse, or a ``jac`` callable
  returning a sparse matrix: sparse direct steps, which on large PDE systems are far faster than
  LSMR); else ``"trf"``.

Default tolerances: ``ftol = xtol = 1e-15`` and ``gtol = 1e-15`` (SciPy's 1e-8 stops 3-4 digits
short of the certified NIST StRD values). Each is relative: ftol bounds the relative reduction of
the cost (actual and predicted), xtol the relative step (LM: the trust radius relative to
``‖D x‖``), gtol the largest cosine between the residual vector and a column of ``J`` (LM,
Gauss–Newton) or the scaled gradient ``‖v ∘ g‖∞`` (trf, SciPy's measure). Tests that reach
machine precision count as convergence; ftol and xtol are floored at the working dtype's
machine epsilon (1.2e-7 for float32 residuals).

A stop where the cost is not zero and the solver never moved, or where ``J`` is rank deficient,
is checked before it is called a success (:mod:`._audit`): the cost is probed along the
directions the Gauss–Newton model cannot see, and where a nearby point is lower (a kink such as
``|p|`` at 0, whose AD derivative is 0, or a saddle or maximum of the cost) the method goes on
from there; a zero Jacobian with a flat cost around it is reported as a plateau (status −6).

>>> import torch
>>> t = torch.linspace(0, 1, 20, dtype=torch.float64)
>>> y = 2.0 * torch.exp(-1.5 * t)
>>> res = least_squares(lambda p: p[0] * torch.exp(-p[1] * t) - y, [1.0, 1.0])
>>> [round(v, 10) for v in res.x.tolist()], res.method, res.success
([2.0, 1.5], 'lm', True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, cast

import numpy as np
import torch
from torch.utils._pytree import tree_flatten

from ... import _validate
from ..._modules import keeps_state
from ...dense._trees import under_vmap
from ...errors import (
    ConvergenceError,
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from .._checks import as_start as _start
from .._checks import first_call
from .._ift import NO_VMAP, attach, inexact, replaced, tracked
from .._scipy import issparse
from . import _options as _opt
from ._audit import audited
from ._callback import CALLBACK_MESSAGE, CALLBACK_STATUS, Callback, Halt
from ._fd import check_sparsity
from ._problem import Residuals
from ._trust import cl_scaling, find_active
from .engine.single import SolverOutput, run_single
from .engine.status import MESSAGES
from .losses import LossName, cost_of, robust_loss, scale_for_robust_loss
from .result import LeastSquaresResult, covariance

__all__ = ["least_squares"]

#: A least-squares method: Levenberg–Marquardt, trust-region reflective, Gauss–Newton or auto.
Method = Literal["auto", "lm", "trf", "dogbox", "gauss-newton"]
METHODS: tuple[Method, ...] = ("auto", "lm", "trf", "dogbox", "gauss-newton")


@keeps_state
def least_squares(fun: Callable[..., Any], x0: Any, jac: Any = "auto",
                  bounds: Any = (-np.inf, np.inf), *, method: Method = "auto",
                  x_scale: Any = "jac", loss: LossName | Callable[..., Any] = "linear",
                  f_scale: float = 1.0, ftol: float | None = 1e-15, xtol: float | None = 1e-15,
                  gtol: float | None = 1e-15, max_nfev: int | None = None, verbose: int = 0,
                  args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                  diff_step: Any = None, jac_sparsity: Any = None, tr_solver: str | None = None,
                  tr_options: dict[str, Any] | None = None,
                  callback: Callable[..., Any] | None = None, workers: Any = None,
                  geodesic: bool = True, dtype: torch.dtype | None = torch.float64,
                  batch: bool = False, process_group: Any = None) -> LeastSquaresResult:
    """Minimise ``½ Σ ρ(r(x)²)`` subject to ``lb <= x <= ub``.

    Args:
        fun: ``fun(x, *args, **kwargs)`` returning the residuals (any shape; flattened), with
            ``x`` shaped like ``x0``. Written in torch, AD differentiates it; written in NumPy
            (it returns an array, or fails on a tensor), it is called with float64 arrays
            (at least 1-D) and differentiated by ``jac`` or by differences (``"3-point"``
            unless ``jac`` names another scheme).
        x0: the start (tensor or array-like, any shape; real). The result's arrays are NumPy
            arrays where ``x0`` is a NumPy array or ``fun`` is written in NumPy (``x`` at least
            1-D), else tensors.
        method: ``"auto"``, ``"lm"``, ``"trf"`` or ``"gauss-newton"`` (see the module doc).
        jac: ``"auto"`` (the default: exact, dense or sparse by a cost model — dense while
            ``min(m, n) < 1000``; above, sparse where the detected pattern is global, at most
            5 % nonzero and needs at most ``min(m, n) / 4`` colors; see ``docs/sparse.md``;
            ``result.jac_mode`` says which), ``"dense"`` (exact, by AD), ``"sparse"`` (exact
            and sparse, through ``jacobite.sparse.prepare``) or ``jac(x, *args, **kwargs)``
            returning the ``m × n`` Jacobian (or ``∂out/∂x`` with the shapes joined) as a
            tensor / array, a SciPy sparse matrix, a torch sparse tensor or a SciPy
            ``LinearOperator`` (materialised by products: one per color of ``jac_sparsity``,
            else ``n``); or ``"2-point"``, ``"3-point"``, ``"cs"``: differences by SciPy's
            rules (:mod:`._fd`). A dense Jacobian estimated to make the solve take over 10 s
            raises one :class:`~jacobite.errors.JacobiteWarning`.
        bounds: ``(lb, ub)``, scalars or one entry per parameter, or a
            ``scipy.optimize.Bounds``; ``±inf`` for none.
        x_scale: ``"jac"`` (MINPACK's column norms of ``J``, updated as their running maximum)
            or the characteristic scale of each variable.
        loss: ``"linear"``, ``"soft_l1"``, ``"huber"``, ``"cauchy"``, ``"arctan"`` or a callable
            ``ρ(z)`` of the squared residuals returning the ``(3, m)`` array ``ρ, ρ', ρ''``.
        f_scale: the residual size at which the robust loss turns on.
        ftol, xtol, gtol: tolerances (see the module doc); default 1e-15; ``None`` turns a
            test off (at least one must stay above machine epsilon).
        max_nfev: most residual evaluations; default ``100 · n`` (MINPACK's ``100 (n + 1)``
            for ``"lm"``). The probes that check a zero-gradient stop (module doc) may spend up
            to 17 more; ``nfev`` counts them.
        verbose: 0 silent, 1 the Jacobian ``jac="auto"`` chose and a summary at the end, 2
            also a line per iteration.
        args, kwargs: passed on to ``fun`` and ``jac``.
        diff_step: the relative step of the difference schemes (SciPy's rule); ``None``: the
            scheme's default for the residuals' precision.
        jac_sparsity: the ``m × n`` pattern of ``J`` (SciPy sparse or 0/1 array): differences
            perturb the columns of one color together and AD uses the pattern instead of
            detecting it; ``J`` is then sparse.
        tr_solver: ``None``, ``"exact"`` (a dense factorisation: refused for a sparse or
            operator Jacobian) or ``"lsmr"``; the step rules choose their linear algebra.
        tr_options: LSMR's keywords (``atol``, ``btol``, ``maxiter``, ...) and ``regularize``;
            checked, unknown keywords raise.
        callback: ``callback(intermediate_result)`` (an ``OptimizeResult`` with ``x``, ``fun``,
            ``cost``, ``nit``, ``nfev``) or ``callback(x)``, after every accepted step of every
            method; raising ``StopIteration`` or returning ``True`` stops with status −2.
        workers: ``None``, an int (threads evaluating the points of a difference Jacobian) or
            a map-like callable such as ``multiprocessing.Pool(2).map``.
        geodesic: geodesic acceleration for ``"lm"`` with the linear loss (one extra residual
            evaluation per damped step). On by default: it is what takes Bennett5 from NIST
            start 1 to the certified values, and it lowers the evaluation count overall.
        dtype: the dtype ``fun`` is evaluated in (float64 by default, whatever ``x0`` is; ``None``
            keeps ``x0``'s floating dtype). The linear algebra is always float64.
        batch: solve many problems at once: ``fun`` maps ``(B, n)`` to ``(B, m)`` problem by
            problem, ``x0`` is ``(B, n)``, bounds and ``x_scale`` may have one row per problem,
            ``f_scale`` one value per problem; returns a
            :class:`~jacobite.solvers.lsq.engine.batch_result.BatchLeastSquaresResult`
            (``docs/solvers.md``, "Many problems at once").
        process_group: with ``batch=True``, a ``torch.distributed`` group (or ``"world"``)
            whose ranks each solve a contiguous share of the batch every rank passes, all
            receiving every result (``docs/distributed.md``); default None, one process.

    Returns:
        a :class:`LeastSquaresResult`; failure to converge is reported in ``status`` /
        ``success``, not raised. The returned cost is never above the cost at ``x0``. Where a
        tensor in ``args`` / ``kwargs`` is tracked (``requires_grad`` under autograd, or wrapped
        by a ``torch.func`` transform), ``x`` is differentiable in it by the implicit function
        theorem on ``∇ₓ ½‖r‖² = 0`` with the full Hessian (autograd, ``grad``, ``jacrev``,
        ``jacfwd``; higher orders except forward over forward; linear loss only). The other
        fields are constants.

    Raises:
        InvalidOptionError: an unknown method / loss / jac / tr_solver, bad tolerances, a
            complex ``x0``, ``x0`` outside the bounds, bounds with ``method="lm"``, or
            ``tr_solver="exact"`` with a sparse Jacobian.
        ArgumentTypeError: ``args`` / ``kwargs`` that ``fun`` or ``jac`` cannot take, or
            unknown ``tr_options``.
        NonFiniteInputError: ``x0``, the residuals or the Jacobian at ``x0`` contain NaN/Inf.
        ShapeError: bounds, ``x_scale``, ``jac_sparsity`` or the Jacobian of the wrong size.
        UnsupportedOperationError: under ``torch.func.vmap`` (loop over the batch instead);
            ``fun`` closing over a tracked tensor instead of taking it through ``args``; a
            robust loss with tracked ``args``; the derivative where a bound is active.
    """
    from ._distributed import solve_sharded, unbatched

    if _validate.boolean(batch, "batch"):
        return cast(Any, solve_sharded(fun, x0, dict(
            method=method, jac=jac, bounds=bounds, x_scale=x_scale, loss=loss, f_scale=f_scale,
            ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev, verbose=verbose, args=args,
            kwargs=kwargs, geodesic=geodesic, dtype=dtype,
            unbatched=dict(diff_step=diff_step, callback=callback, jac_sparsity=jac_sparsity,
                           workers=workers, tr_solver=tr_solver, tr_options=tr_options)),
            process_group))
    unbatched(process_group, "x0")
    _validate.callable_(fun, "fun")
    _validate.choice(method, "method", METHODS)
    rho = robust_loss(loss, 1.0)  # checks the name; built with f_scale once r's scale is known
    f_scale = _validate.positive_float(f_scale, "f_scale")
    ftol, xtol, gtol = _opt.tolerances(ftol, xtol, gtol)
    _opt.tr_options(tr_solver, tr_options)  # checked; the step rules choose their solver
    mapper = _opt.mapper(workers)
    diff_step = _opt.diff_step(diff_step)
    _opt.real_start(x0)
    if callback is not None:
        _validate.callable_(callback, "callback")
    if jac_sparsity is not None and tr_solver == "exact":
        raise InvalidOptionError("tr_solver='exact' factors a dense Jacobian; with jac_sparsity "
                                 "use tr_solver='lsmr' (or leave it None)")
    max_nfev = _validate.max_iter(max_nfev, "max_nfev")
    geodesic = _validate.boolean(geodesic, "geodesic")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise InvalidOptionError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    leaves, spec = tree_flatten((args, dict(kwargs or {})))
    if any(under_vmap(t) for t in [x0, *leaves] if isinstance(t, torch.Tensor)):
        raise UnsupportedOperationError(NO_VMAP.format(name="least_squares", alt=""))
    pos = inexact(leaves)  # the tensors a derivative can be taken in
    if any(tracked(leaves[i]) for i in pos):
        if rho is not None:
            raise UnsupportedOperationError(
                f"least_squares with loss={loss!r} is not differentiable in args; use "
                "loss='linear', or jacobite.solve_implicit on the stationarity condition "
                "∇ₓ ½Σρ(r²) = 0 (torch.func.grad of your cost)")
        inner = dict(method=method, jac=jac, bounds=bounds, x_scale=x_scale, ftol=ftol,
                     xtol=xtol, gtol=gtol, max_nfev=max_nfev, verbose=verbose,
                     diff_step=diff_step, jac_sparsity=jac_sparsity, tr_solver=tr_solver,
                     tr_options=tr_options, callback=callback, workers=workers,
                     geodesic=geodesic, dtype=dtype)
        return _stationary(fun, x0, leaves, spec, pos, inner)
    xt = _start(x0, dtype)
    n = xt.numel()
    lb, ub = _opt.bounds(bounds, n)
    scale = _opt.x_scale(x_scale, n)
    x = xt.reshape(-1).to("cpu", torch.float64).numpy().copy()
    if np.any(x < lb) or np.any(x > ub):
        bad = int(np.flatnonzero((x < lb) | (x > ub))[0])
        raise InvalidOptionError(f"x0 is outside the bounds (x0[{bad}] = {x[bad]:g} not in "
                                 f"[{lb[bad]:g}, {ub[bad]:g}]); start from a feasible point")
    bounded = bool(np.isfinite(lb).any() or np.isfinite(ub).any())
    P = Residuals(fun, xt, jac, args, kwargs, verbose, diff_step=diff_step,
                  sparsity=jac_sparsity, lb=lb, ub=ub, mapper=mapper)
    P.numpy_out = isinstance(x0, (np.ndarray, np.generic))
    if callback is not None:
        P.callback = Callback(callback, lambda v: _user(P, v, shaped=True),
                              lambda r: _user(P, r, shaped=False))
    try:
        f0 = first_call(P.f, x, "fun")
    except ShapeError as exc:  # a TypeError there may be args that fun cannot take
        if isinstance(exc.__cause__, TypeError):
            _opt.binds(fun, "fun", tuple(args), dict(kwargs or {}))
        raise
    if not np.all(np.isfinite(f0)):
        k = int(np.flatnonzero(~np.isfinite(f0))[0])
        raise NonFiniteInputError(f"the residuals at x0 are not finite (r[{k}] = {f0[k]}); start "
                                  "from a point where fun is finite")
    m = f0.size
    if jac_sparsity is not None:
        P.sparsity = check_sparsity(jac_sparsity, m, n)
    auto = method == "auto"
    if auto:  # sparse: LM with sparse LU steps (any m, n, loss) unless bounded
        method = "lm" if (not bounded and ((rho is None and m >= n) or jac == "sparse")) \
            else "trf"
    if method == "lm" and bounded:
        raise InvalidOptionError("method='lm' does not handle bounds; use method='trf'")
    if method == "gauss-newton" and bounded:
        raise InvalidOptionError("method='gauss-newton' does not handle bounds; use 'trf'")
    if bounded:  # trf keeps iterates strictly inside
        x = np.where(x <= lb, np.nextafter(lb, ub), np.where(x >= ub, np.nextafter(ub, lb), x))
        if not np.array_equal(x, xt.reshape(-1).cpu().numpy()):
            f0 = P.f(x)
    J0 = P.J(x)
    if tr_solver == "exact" and (issparse(J0) or P.operator):
        raise InvalidOptionError("tr_solver='exact' factors a dense Jacobian, but jac gives a "
                                 "sparse matrix or LinearOperator; use tr_solver='lsmr' (or "
                                 "leave it None)")
    if not np.all(np.isfinite(J0.data if issparse(J0) else J0)):
        raise NonFiniteInputError("the Jacobian at x0 is not finite (fun is not differentiable "
                                  "there, e.g. sqrt or abs at 0); start from another point")
    # residuals or a Jacobian near 1e±300: solve for 2^-e r, whose squares stay in range
    f0, J0, fits = P.rescale(f0, J0, scale)
    if rho is not None:
        rho = robust_loss(loss, f_scale * P.scale)  # the same loss of the scaled residuals
    P.loss = rho  # for the cost the callback sees
    if auto and issparse(J0) and not bounded:
        method = "lm"  # sparse direct steps (sparse_lm)
    # tolerances below the working dtype's rounding cannot be met: floor ftol and xtol at its eps
    eps = max(float(torch.finfo(xt.dtype).eps), P.out_eps)  # float32 residuals: float32's
    opts: dict[str, Any] = dict(ftol=max(ftol, eps), xtol=max(xtol, eps), gtol=gtol,
                                x_scale=scale, loss=rho, verbose=verbose)
    if method == "lm" and not issparse(J0):
        max_nfev = 100 * (n + 1) if max_nfev is None else max_nfev
    else:
        max_nfev = 100 * n if max_nfev is None else max_nfev

    def run(v: np.ndarray, f: np.ndarray | None = None, J: Any = None) -> SolverOutput:
        if method in ("lm", "gauss-newton"):
            return run_single(P, v, method, geodesic=geodesic, eps=eps, max_nfev=max_nfev,
                              f0=f, J0=J, **opts)
        if method in ("trf", "dogbox"):
            from .engine.bounded import run_bounded  # loaded with the first bounded solve
            # their gtol bounds the gradient itself, which the scaled residuals scale by c²
            return run_bounded(P, v, lb, ub, method, max_nfev=max_nfev, f0=f, J0=J, eps=eps,
                               **dict(opts, gtol=gtol * P.scale * P.scale))
        raise AssertionError(method)  # pragma: no cover - the method was checked above

    try:
        out = audited(P, run(x, f0, J0), run, rho, lb, ub, max_nfev, eps)
    except Halt as stop:  # the callback asked to stop at an accepted point
        out = SolverOutput(stop.x, stop.f, stop.J, cost_of(stop.f, rho), CALLBACK_STATUS,
                           CALLBACK_MESSAGE, stop.nit)
    if not fits and out.status > 0 and out.cost > 0:  # the tests could not be trusted
        out = SolverOutput(out.x, out.f, out.J, out.cost, -7, MESSAGES[-7], out.nit)
    cost0 = cost_of(f0, rho)
    if not out.cost <= cost0:  # pragma: no cover - the solvers only accept decreasing steps
        out = SolverOutput(x, f0, J0, cost0, out.status, out.message, out.nit)
    return _result(P, out, method, rho, lb, ub, bounded, verbose)


def _stationary(fun: Callable[..., Any], x0: Any, leaves: list[Any], spec: Any, pos: list[int],
                opts: dict[str, Any]) -> LeastSquaresResult:
    """The solution with ``x`` differentiable in the tracked tensors of ``args`` / ``kwargs``,
    by the implicit function theorem on ``∇ₓ ½‖r(x, θ)‖² = 0`` (the full Hessian)."""
    # the solution is a tensor differentiable in θ, whatever array type x0 is
    start = x0 if isinstance(x0, torch.Tensor) else torch.as_tensor(np.asarray(x0, np.float64))

    def with_(th: list[torch.Tensor]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        a, kw = replaced(leaves, spec, pos, th)
        return tuple(a), kw

    def grad_cost(v: torch.Tensor, th: list[torch.Tensor]) -> torch.Tensor:
        a, kw = with_(th)
        return torch.func.grad(lambda u: 0.5 * fun(u, *a, **kw).square().sum())(v)

    def run(th: list[torch.Tensor]) -> tuple[torch.Tensor, None, LeastSquaresResult]:
        a, kw = with_(th)
        res = least_squares(fun, start, args=a, kwargs=kw, **opts)
        return res.x, None, res

    def failed(res: LeastSquaresResult) -> Exception | None:
        if not res.success:
            return ConvergenceError(f"least_squares did not converge ({res.message}): x*(θ) "
                                    "has no derivative there")
        if bool(res.active_mask.any()):
            return UnsupportedOperationError(
                "a bound is active at the solution, where x*(θ) is not differentiable by the "
                "implicit function theorem; drop the bounds, or fix the active variables and "
                "use jacobite.solve_implicit on the remaining stationarity condition")
        return None

    xs, res = attach(grad_cost, run, [leaves[i] for i in pos], None, loop_ok=False,
                     failed=failed, name="least_squares")
    return dataclasses.replace(res, x=xs)


def _result(P: Residuals, out: SolverOutput, method: str, rho: Any, lb: np.ndarray,
            ub: np.ndarray, bounded: bool, verbose: int) -> LeastSquaresResult:
    J, f = out.J, out.f
    Jt, ft = (J, f) if rho is None else scale_for_robust_loss(J, f, rho(f))
    c = P.scale  # the solver saw c·r: its cost and gradient are c² times those of r
    g = np.asarray(Jt.T @ ft).ravel() / c / c
    if bounded:
        v, _ = cl_scaling(out.x, g, lb, ub)
        optimality = float(np.max(np.abs(g * v)))
        active = find_active(out.x, lb, ub, rtol=1e-10)
    else:
        optimality = float(np.max(np.abs(g)))
        active = np.zeros(out.x.size, dtype=int)
    cov = None
    if rho is None and not issparse(J) and not active.any():
        cov_np = covariance(J, f)  # the same for c·r as for r
        cov = None if cov_np is None else _user(P, cov_np, shaped=False)

    def tens(a: np.ndarray) -> Any:
        return _user(P, a, shaped=False)

    res = LeastSquaresResult(
        x=_user(P, out.x, shaped=True), cost=out.cost / c / c, fun=tens(f / c),
        jac=J / c if issparse(J) else tens(J / c), grad=tens(g), optimality=optimality,
        active_mask=_mask(P, active), nfev=P.nfev,
        njev=P.njev, status=out.status,
        message=out.message, success=out.status > 0, method=method, nit=out.nit,
        covariance=cov, jac_mode=P.mode or "dense")
    if verbose >= 1:
        print(f"{out.message}. Function evaluations {P.nfev}, Jacobian evaluations {P.njev}, "
              f"initial cost → final cost {out.cost / c / c:.4e}, first-order optimality "
              f"{optimality:.2e}.")
    return res


def _mask(P: Residuals, active: np.ndarray) -> Any:
    """``active_mask`` in the user's array type (see :func:`_user`)."""
    return active if P.numpy or P.numpy_out else torch.as_tensor(active)


def _user(P: Residuals, a: np.ndarray, *, shaped: bool) -> Any:
    """An array of the solve as the user gets it: a float64 NumPy array where ``x0`` is a NumPy
    array or ``fun`` is written in NumPy, else a tensor in the working dtype; ``shaped``: the
    iterate, shaped like ``x0`` (NumPy: at least 1-D)."""
    if P.numpy or P.numpy_out:
        return P.array(a).copy() if shaped else np.array(a, dtype=np.float64)
    if shaped:
        return P.tensor(a)
    return torch.as_tensor(a, dtype=P.dtype, device=P.device)
