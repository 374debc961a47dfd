"""Many least-squares problems at once: ``least_squares(fun, x0, batch=True)``.

``fun`` maps ``(B, n)`` parameters to ``(B, m)`` residuals problem by problem (row ``b`` of the
output depends on row ``b`` of the input only); ``x0`` is ``(B, n)``. The problems are solved
together by the engine (:mod:`.loop`) with the same methods as one problem: every iteration is
a fixed number of batched tensor operations, and a problem that stopped keeps its row. Bounds
are ``(n,)`` (shared) or ``(B, n)`` (per problem); ``f_scale`` a scalar or ``(B,)``.

Per-problem data (observations, weights) can be closed over by ``fun`` or passed through
``args`` / ``kwargs``. Passed as tensors whose first dimension is ``B``, they let the solver
split a batch into chunks (each solved on its own, with its rows of those tensors): memory then
stays within the budget (:mod:`jacobite.config`) for any ``B``, and on CPU chunks of a few
thousand problems stay in cache. A one-off test at the start (``fun`` on the first rows with
the first rows of those tensors must give the first rows of the residuals) decides whether
chunks are possible; a closure over per-problem data keeps the batch whole.

Where tensors in ``args`` / ``kwargs`` are tracked (autograd, ``torch.func``), ``x`` is
differentiable in them by the implicit function theorem, problem by problem (:mod:`.batch_ift`).

>>> import torch
>>> t = torch.linspace(0, 1, 20, dtype=torch.float64)
>>> k = torch.tensor([[0.5], [1.0], [2.0]], dtype=torch.float64)
>>> y = 2.0 * torch.exp(-k * t)                       # (3, 20): three data sets
>>> res = solve_batch(lambda p, y: p[:, :1] * torch.exp(-p[:, 1:] * t) - y,
...                   torch.ones(3, 2), args=(y,))
>>> res.x.round(decimals=10).tolist(), res.success.tolist()
([[2.0, 0.5], [2.0, 1.0], [2.0, 2.0]], [True, True, True])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from .... import _validate, config
from ....dense._trees import under_vmap
from ....errors import (
    InvalidOptionError,
    JacobianTooLarge,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from ..._checks import as_start, first_call
from ..._ift import inexact, tracked
from .batch_audit import NOT_MINIMUM, escape
from .batch_result import BatchLeastSquaresResult, batch_covariance
from .box import cl_scaling, find_active, make_strictly_feasible
from .loop import merge_rows, solve
from .problem import BatchResiduals
from .robust import robust
from .state import State
from .status import MESSAGES, RUNNING, STALL, Tolerances
from .steps.lm import robust_model

__all__ = ["solve_batch"]

METHODS = ("auto", "lm", "trf", "dogbox", "gauss-newton")
# entries of one chunk's Jacobians (B·m·n) on CPU: 2^19 (4 MiB, a core's L2 cache) measured
# fastest on the exponential fit (m = 50, n = 3; 2^17 about 10 % slower at B = 4000)
CPU_CHUNK = 2 ** 19
WORDS_PER_ENTRY = 12  # float64 words the solver holds per Jacobian entry (J, SVD, transforms)


def _like(value: Any, like: torch.Tensor) -> torch.Tensor:
    """An option's value (detached) in the dtype and on the device of ``like``."""
    t = value.detach() if isinstance(value, torch.Tensor) else value
    return torch.as_tensor(t, dtype=like.dtype).to(like.device)


def _rows(value: Any, B: int, n: int, name: str, like: torch.Tensor) -> torch.Tensor:
    """A scalar, ``(n,)`` or ``(B, n)`` value as a ``(B, n)`` tensor."""
    t = _like(value, like)
    if t.ndim == 0 or t.shape == (1,):
        return t.reshape(1, 1).expand(B, n)
    if t.shape == (n,):
        return t[None].expand(B, n)
    if t.shape == (B, n):
        return t
    raise ShapeError(f"{name} must be a scalar, one entry per parameter ({n},) or one row per "
                     f"problem ({B}, {n}); got {tuple(t.shape)}")


def _bounds(bounds: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise ShapeError("bounds must be a pair (lb, ub) of scalars, (n,) or (B, n) arrays"
                         ) from exc
    B, n = x.shape
    lb, ub = _rows(lo, B, n, "lb", x), _rows(hi, B, n, "ub", x)
    if bool((lb.isnan() | ub.isnan() | ~(lb < ub)).any()):
        raise InvalidOptionError("bounds need lb < ub in every coordinate of every problem (no "
                                 "NaN); to fix a parameter, remove it from x instead")
    out = (x < lb) | (x > ub)
    if bool(out.any()):
        b, j = (int(i) for i in torch.nonzero(out)[0])
        raise InvalidOptionError(f"x0 is outside the bounds (problem {b}: x0[{b}, {j}] = "
                                 f"{float(x[b, j]):g} not in [{float(lb[b, j]):g}, "
                                 f"{float(ub[b, j]):g}]); start from a feasible point")
    return lb, ub


def _per_problem(value: Any, B: int, name: str, like: torch.Tensor) -> torch.Tensor:
    t = _like(value, like)
    if t.numel() == 1:
        t = t.reshape(1).expand(B)
    if t.shape != (B,):
        raise ShapeError(f"{name} must be a scalar or one value per problem ({B},); got "
                         f"{tuple(t.shape)}")
    if not bool(((t > 0) & t.isfinite()).all()):
        raise InvalidOptionError(f"{name} must be positive and finite")
    return t


def _split(leaves: list[Any], B: int) -> list[bool]:
    """Which leaves are per-problem data: tensors whose first dimension is ``B``."""
    return [isinstance(a, torch.Tensor) and a.ndim >= 1 and a.shape[0] == B and B > 1
            for a in leaves]


def _chunk_args(leaves: list[Any], spec: Any, per: list[bool], sl: slice
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    part = [a[sl] if p else a for a, p in zip(leaves, per, strict=True)]
    a, kw = tree_unflatten(part, spec)
    return tuple(a), kw


def _args_at(leaves: list[Any], spec: Any, per: list[bool], start: int, idx: torch.Tensor
             ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args`` / ``kwargs`` of the problems ``start + idx``."""
    part = [a.index_select(0, (idx + start).to(a.device)) if p else a
            for a, p in zip(leaves, per, strict=True)]
    a, kw = tree_unflatten(part, spec)
    return tuple(a), kw


def _can_chunk(fun: Callable[..., Any], x: torch.Tensor, f0: torch.Tensor, leaves: list[Any],
               spec: Any, per: list[bool]) -> bool:
    """Whether ``fun`` on the first rows (with the first rows of the per-problem tensors of
    ``args`` / ``kwargs``) gives the first rows of ``f0``: then the batch may be split."""
    B = x.shape[0]
    if B < 3:
        return False
    k = max(1, B // 3)
    a, kw = _chunk_args(leaves, spec, per, slice(0, k))
    try:
        with torch.no_grad():
            part = fun(x[:k], *a, **kw)
    except Exception:  # a closure over per-problem data: the batch stays whole
        return False
    if not isinstance(part, torch.Tensor) or part.shape[0] != k:
        return False
    part = part.reshape(k, -1)
    if part.shape != f0[:k].shape:
        return False
    scale = f0[:k].abs().amax(1, keepdim=True).clamp_min(torch.finfo(f0.dtype).tiny)
    rtol = max(1e-10, 1e3 * torch.finfo(x.dtype).eps)  # rounding may vary with the batch size
    return bool(((part.to(f0.dtype) - f0[:k]).abs() <= rtol * scale).all())


def _chunk_size(B: int, m: int, n: int, device: torch.device, budget: int) -> int:
    fits = max(1, budget // (8 * WORDS_PER_ENTRY * max(1, m * (n + 2) + n * n)))
    if device.type == "cpu":
        fits = min(fits, max(64, CPU_CHUNK // max(1, m * n)))
    return min(B, fits)


def _rule(method: str, lb: torch.Tensor, ub: torch.Tensor, jac_scale: bool, geodesic: bool
          ) -> tuple[Any, Any]:
    """The step rule and globalisation of ``method`` (imported when first used)."""
    if method == "lm":
        from .steps.lm import LevenbergMarquardt
        from .trust_region import TrustRegion

        return LevenbergMarquardt(geodesic=geodesic, jac_scale=jac_scale), TrustRegion()
    if method == "gauss-newton":
        from .line_search import Armijo
        from .steps.gauss_newton import GaussNewton

        return GaussNewton(), Armijo()
    from .bounded import bounded_method

    return bounded_method("trf" if method == "trf" else "dogbox", lb, ub, jac_scale)


def solve_batch(fun: Callable[..., Any], x0: Any, *, method: str = "auto", jac: Any = "auto",
                bounds: Any = (-torch.inf, torch.inf), x_scale: Any = "jac",
                loss: Any = "linear", f_scale: Any = 1.0, ftol: float | None = 1e-15,
                xtol: float | None = 1e-15, gtol: float | None = 1e-15,
                max_nfev: int | None = None,
                verbose: int = 0, args: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None, geodesic: bool = True,
                dtype: torch.dtype | None = torch.float64,
                unbatched: dict[str, Any] | None = None) -> BatchLeastSquaresResult:
    """Solve ``B`` least-squares problems at once (see the module doc; the options are those
    of :func:`jacobite.least_squares`, per problem where noted there). ``unbatched``: options
    of the single-problem solver that have no batched form; any of them given is refused."""
    for name, value in (unbatched or {}).items():
        if value is not None:
            raise InvalidOptionError(
                f"{name} is not supported with batch=True (the batched solver takes exact "
                f"Jacobians of torch functions, dense, and no callback); leave {name} out, or "
                "solve the problems one at a time")
    _validate.callable_(fun, "fun")
    _validate.choice(method, "method", METHODS)
    ftol, xtol, gtol = (0.0 if t is None else _validate.tolerance(t, name)  # None: off
                        for name, t in (("ftol", ftol), ("xtol", xtol), ("gtol", gtol)))
    max_nfev = _validate.max_iter(max_nfev, "max_nfev")
    geodesic = _validate.boolean(geodesic, "geodesic")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise InvalidOptionError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    leaves, spec = tree_flatten((tuple(args), dict(kwargs or {})))
    if any(under_vmap(t) for t in [x0, *leaves] if isinstance(t, torch.Tensor)):
        raise UnsupportedOperationError(
            "least_squares(batch=True) cannot run under torch.func.vmap; it is batched already: "
            "stack the problems into x0 of shape (B, n)")
    pos = inexact(leaves)
    if any(tracked(leaves[i]) for i in pos):
        from .batch_ift import differentiable

        opts = dict(method=method, jac=jac, bounds=bounds, x_scale=x_scale, loss=loss,
                    f_scale=f_scale, ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev,
                    verbose=verbose, geodesic=geodesic, dtype=dtype)
        return differentiable(solve_batch, fun, x0, leaves, spec, pos, opts)
    x = as_start(x0, dtype)
    eval_dtype, x = x.dtype, x.to(torch.float64)  # fun in its dtype, the solver in float64
    if x.ndim != 2:
        raise ShapeError(f"with batch=True x0 must have shape (B, n): one row of parameters per "
                         f"problem; got {tuple(x.shape)} (one problem of n unknowns: x0[None])")
    B, n = x.shape
    lb, ub = _bounds(bounds, x)
    bounded = bool((lb.isfinite() | ub.isfinite()).any())
    jac_scale = isinstance(x_scale, str)
    if jac_scale and x_scale != "jac":
        raise InvalidOptionError(f"x_scale must be 'jac' or positive numbers; got {x_scale!r}")
    scale = None if jac_scale else _rows(x_scale, B, n, "x_scale", x)
    if scale is not None and not bool(((scale > 0) & scale.isfinite()).all()):
        raise InvalidOptionError("x_scale entries must be positive and finite")
    fs = _per_problem(f_scale, B, "f_scale", x)
    rho_all = robust(loss, fs)
    if bounded and method in ("lm", "gauss-newton"):
        raise InvalidOptionError(f"method={method!r} does not handle bounds; use method='trf'")
    if bounded:
        x = make_strictly_feasible(x, lb, ub)
    P = BatchResiduals(fun, x, jac, args, kwargs, eval_dtype=eval_dtype)
    f0 = first_call(P.f, x, "fun")
    bad = ~torch.isfinite(f0).all(1)
    if bool(bad.any()):
        b = int(torch.nonzero(bad)[0, 0])
        raise NonFiniteInputError(f"the residuals at x0 are not finite for {int(bad.sum())} of "
                                  f"{B} problems (first: problem {b}); start those problems "
                                  "from points where fun is finite, or leave them out")
    m = f0.shape[1]
    if method == "auto":
        method = "lm" if not bounded and rho_all is None and m >= n else "trf"
    if method == "lm" and m < n:
        raise InvalidOptionError(f"method='lm' needs at least as many residuals as unknowns "
                                 f"(m = {m} < n = {n}); use method='trf'")
    budget = config.get_memory_budget()
    per = _split(leaves, B)
    size = _chunk_size(B, m, n, x.device, budget)
    chunkable = size < B and _can_chunk(fun, x.to(eval_dtype), f0, leaves, spec, per)
    if size < B and not chunkable:
        if B * m * n * 8 > budget:
            raise JacobianTooLarge(
                f"the {B} Jacobians ({B}×{m}×{n} float64) alone exceed the memory budget "
                f"({config.format_bytes(budget)}), and the batch cannot be split because fun "
                "closes over per-problem data; pass those tensors through args= (first "
                "dimension B) so that chunks of the batch are solved in turn, or raise the "
                "budget with jacobite.config.memory_budget")
        size = B
    size = -(-B // -(-B // size))  # chunks of equal size
    eps = float(torch.finfo(eval_dtype).eps)
    budget_nfev = max_nfev if max_nfev is not None else (100 * (n + 1) if method == "lm"
                                                         else 100 * n)
    outs = []
    t0 = time.perf_counter()
    for start in range(0, B, size):
        sl = slice(start, min(B, start + size))
        whole = size == B
        a, kw = (tuple(args), dict(kwargs or {})) if whole else _chunk_args(leaves, spec, per, sl)
        Pc = P if whole else BatchResiduals(fun, x[sl], jac, a, kw, eval_dtype=eval_dtype)
        if chunkable:  # the solver may go on with the running problems of the chunk alone
            Pc.split = partial(_args_at, leaves, spec, per, start)
        fc = f0 if whole else first_call(Pc.f, x[sl], "fun")
        rho = rho_all if rho_all is None or whole else robust(loss, fs[sl])
        outs.append(_solve_chunk(Pc, x[sl], fc, lb[sl], ub[sl], None if scale is None
                                 else scale[sl], rho, method, geodesic, ftol, xtol, gtol,
                                 budget_nfev, eps, verbose))
        if verbose:
            done = outs[-1]
            print(f"least_squares(batch): problems {sl.start}–{sl.stop - 1} of {B}: "
                  f"{int((done['status'] > 0).sum())} converged, "
                  f"{int((done['status'] <= 0).sum())} not ({time.perf_counter() - t0:.2f} s)")
    return _result(outs, method, eval_dtype)


def _solve_chunk(P: BatchResiduals, x: torch.Tensor, f0: torch.Tensor, lb: torch.Tensor,
                 ub: torch.Tensor, scale: torch.Tensor | None, rho: Any, method: str,
                 geodesic: bool, ftol: float, xtol: float, gtol: float, max_nfev: int,
                 eps: float, verbose: int = 0) -> dict[str, Any]:
    """One chunk through the engine; the rows the result is assembled from."""
    Bc = x.shape[0]
    J0 = P.J(x)
    P.check(x, J0)
    state = State.start(x, f0, J0, rho)
    if scale is not None:
        state.D = 1.0 / scale.clone()
    rule, glob = _rule(method, lb, ub, scale is None, geodesic)
    tol = Tolerances.make(ftol, xtol, gtol, Bc, eps=eps, max_nfev=max_nfev, dtype=x.dtype,
                          device=x.device)
    bounded = bool((lb.isfinite() | ub.isfinite()).any())
    flagged = torch.zeros_like(state.status, dtype=torch.bool)
    for attempt in range(2):
        state = solve(_Watched(P, state) if verbose >= 2 else P, state, rule, glob, tol)
        status = torch.where(state.status == RUNNING, 0, state.status)
        Jt, ft = robust_model(state.J, state.f, rho)
        if bounded:
            break
        far, x_new, evals = escape(P, state.x, state.f, state.cost, Jt, ft, rho, status)
        if not bool(far.any()):
            state.nfev = state.nfev + evals
            break
        if attempt == 1:
            status = torch.where(far, STALL, status)
            state.nfev, flagged = state.nfev + evals, far
            break
        # the tests stopped these problems where the cost still falls along the Gauss–Newton
        # direction: they go on once from the lower point (the others keep their rows)
        f_new = P.f(x_new)
        restart = State.start(x_new, f_new, merge_rows(far, P.J(x_new), state.J), rho)
        restart.status = torch.where(far, RUNNING, status)
        restart.nfev, restart.njev = state.nfev + evals + far, state.njev + far
        restart.nit = state.nit
        if scale is not None:
            restart.D = 1.0 / scale.clone()
        state = restart
        rule, glob = _rule(method, lb, ub, scale is None, geodesic)
    g = (Jt.mT @ ft[..., None])[..., 0]
    optimality, active, cov = _measures(state.x, g, state.J, state.f, lb, ub, rho is not None)
    return dict(x=state.x, f=state.f, J=state.J, cost=state.cost, g=g, status=status,
                nfev=state.nfev, njev=state.njev, nit=state.nit, optimality=optimality,
                active=active, cov=cov, flagged=flagged)


class _Watched:
    """``P`` printing, at most once a second, how many problems of the state still run."""

    def __init__(self, P: BatchResiduals, state: State, every: float = 1.0) -> None:
        self.P, self.state, self.every = P, state, every
        self.t0 = self.last = time.perf_counter()

    def f(self, x: torch.Tensor) -> torch.Tensor:
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            print(f"least_squares(batch):   {int(self.state.running.sum())} of {self.state.B} "
                  f"problems still iterating, at most {int(self.state.nit.max())} steps "
                  f"({now - self.t0:.1f} s)")
        return self.P.f(x)

    def J(self, x: torch.Tensor) -> torch.Tensor:
        return self.P.J(x)


def _measures(x: torch.Tensor, g: torch.Tensor, J: torch.Tensor, f: torch.Tensor,
              lb: torch.Tensor, ub: torch.Tensor, robust_loss: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The optimality, active mask and covariance of each problem of a chunk."""
    if bool((lb.isfinite() | ub.isfinite()).any()):
        v, _ = cl_scaling(x, g, lb, ub)
        optimality = (g * v).abs().amax(-1)
        active = find_active(x, lb, ub, rtol=1e-10)
    else:
        optimality = g.abs().amax(-1) if g.shape[1] else g.new_zeros(g.shape[0])
        active = torch.zeros_like(x, dtype=torch.int64)
    determined = ~(active != 0).any(-1) & (not robust_loss)
    return optimality, active, batch_covariance(J, f, determined)


def _result(outs: list[dict[str, Any]], method: str, dtype: torch.dtype
            ) -> BatchLeastSquaresResult:
    cat = {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    status = cat["status"]
    message = [NOT_MINIMUM if flag else MESSAGES[s]
               for s, flag in zip(status.tolist(), cat["flagged"].tolist(), strict=True)]
    return BatchLeastSquaresResult(
        x=cat["x"].to(dtype), cost=cat["cost"], fun=cat["f"], jac=cat["J"], grad=cat["g"],
        optimality=cat["optimality"], active_mask=cat["active"], status=status,
        success=status > 0, message=message, nfev=cat["nfev"], njev=cat["njev"],
        nit=cat["nit"], method=method, covariance=cat["cov"])
