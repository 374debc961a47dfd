"""Newton's method for minimisation: ``x ← x − t H⁻¹ ∇f`` with a backtracking line search.

The Hessian is either exact (:func:`jacobite.hessian`: forward-over-reverse AD) or, for a
least-squares objective ``f = ½‖r(x)‖²``, the Gauss–Newton approximation ``H ≈ JᵀJ`` built from
the residual Jacobian ``J`` (:func:`jacobite.value_and_jacobian`) — no second derivatives.

Where the exact Hessian is not positive definite the step would not go downhill; a multiple of
the identity is added until a Cholesky factorisation succeeds (Nocedal & Wright, Algorithm 3.3),
so far from a minimum the step bends towards steepest descent and near a strict minimum it is the
pure Newton step (quadratic convergence). The step length ``t`` starts at 1 and is halved until
the Armijo condition ``f(x + t p) <= f(x) + c1 t ∇f·p`` holds.

``jac="auto"`` (the default) computes the Hessian (or the residual Jacobian for Gauss–Newton)
dense or sparse by the cost model of :mod:`jacobite.solvers._auto_jac`: dense below n = 1000
(``min(m, n)`` for Gauss–Newton), above sparse where the detected pattern is global, at most 5 %
nonzero and needs at most a quarter as many colors as dense passes. Sparse steps factor
``H + τI`` by sparse LU with diagonal pivots (:mod:`jacobite.solvers._sparse_newton`);
``NewtonResult.jac_mode`` says which ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch.func import grad_and_value

from .. import _validate
from .._modules import keeps_state
from ..dense import hessian as _hessian
from ..dense import value_and_jacobian as _value_and_jacobian
from ..errors import InvalidOptionError, NonFiniteInputError, ShapeError
from ._auto_jac import JacMode, choose, slow_dense_warning
from ._certify import Verdict, blind_directions, curvature_directions, probe
from ._checks import as_start as _as_start
from ._checks import first_call

__all__ = ["NewtonIterate", "NewtonResult", "newton_minimize"]

#: The Hessian newton_minimize steps with: exact (made positive definite) or Gauss–Newton's JᵀJ.
HessianKind = Literal["exact", "gauss-newton"]
_HESSIANS: tuple[HessianKind, ...] = ("exact", "gauss-newton")


@dataclass(frozen=True)
class NewtonIterate:
    """One iterate: the point, ``f``, ``‖∇f‖``, the step length ``t`` that led to it (0 for
    the start) and the multiple ``τ`` of the identity added to the Hessian there for the next
    step (0: a pure Newton step; always 0 for Gauss–Newton)."""

    x: torch.Tensor
    fun: float
    grad_norm: float
    step_length: float
    damping: float


@dataclass(frozen=True)
class NewtonResult:
    """What :func:`newton_minimize` found.

    Attributes:
        x: the last iterate (shape of ``x0``, float64 by default).
        fun: ``f(x)``.
        grad_norm: ``‖∇f(x)‖₂``.
        nit: Newton steps taken.
        nfev: evaluations of ``f`` (or of the residuals), line search included.
        success: ``grad_norm <= tol`` was reached at a minimum as far as the Hessian (or
            ``JᵀJ``) and probes of ``f`` tell: where ``∇f`` vanishes at the start or along a
            direction of no positive curvature, ``f`` is evaluated nearby; a lower value there
            (a kink, whose AD gradient is a subgradient 0, or a saddle or maximum) is moved to
            and the iteration goes on (at most three times, named in ``message``), and a flat
            ``f`` with a zero Hessian is a plateau, reported as a failure.
        message: why it stopped, and what to change when it failed.
        history: every iterate, the start included (``len(history) == nit + 1``).
        jac_mode: how the Hessian (or the residual Jacobian for Gauss–Newton) was computed:
            ``"dense"`` or ``"sparse"`` (``jac="auto"`` records its choice here).
    """

    x: torch.Tensor
    fun: float
    grad_norm: float
    nit: int
    nfev: int
    success: bool
    message: str
    history: list[NewtonIterate] = field(repr=False)
    jac_mode: JacMode = "dense"


class _Objective:
    """``f`` on the flat vector, counting evaluations; gradient and curvature per mode."""

    def __init__(self, f: Callable[..., Any] | None, residuals: Callable[..., Any] | None,
                 shape: torch.Size, mode: str, jac: str = "dense", verbose: int = 0) -> None:
        self.f, self.r, self.shape, self.mode, self.nfev = f, residuals, shape, mode, 0
        self.damping = 0.0
        self.curvature: Any = None  # the last H (exact) or J (Gauss–Newton); SciPy if sparse
        self.jac: JacMode | None = None if jac == "auto" else jac  # type: ignore[assignment]
        self.plan: Any = None
        self.reason, self.verbose, self.warned = "", verbose, False

    def _resolve(self, v: torch.Tensor, wanted: str | None) -> None:
        """Choose (``jac="auto"``) or prepare (``"sparse"``) at the first derivatives."""
        gn = self.mode == "gauss-newton"
        fn = self._res if gn else self.scalar
        if wanted is None:
            m = self._res(v).numel() if gn else v.numel()
            choice = choose(fn, v, m, hessian=not gn)
            self.jac, self.plan, self.reason = choice.mode, choice.plan, choice.reason
            if self.verbose:
                print(f"newton_minimize: jac='auto' chose {choice.reason}")
        elif wanted == "sparse":
            from ..sparse import prepare, prepare_hessian

            self.plan = prepare(fn, v) if gn else prepare_hessian(fn, v)

    def _slow(self, t0: float, n: int) -> None:
        if not self.warned:  # once per solve, after the first dense Jacobian or Hessian
            self.warned = True
            slow_dense_warning(time.perf_counter() - t0, n, "newton_minimize", self.reason)

    def _res(self, v: torch.Tensor) -> torch.Tensor:
        out = self.r(v.reshape(self.shape))  # type: ignore[misc]
        if not isinstance(out, torch.Tensor):
            raise ShapeError(f"residuals must return a tensor, got {type(out).__name__}")
        return out.reshape(-1)

    def scalar(self, v: torch.Tensor) -> torch.Tensor:
        if self.f is None:
            r = self._res(v)
            return 0.5 * (r * r).sum()
        out = self.f(v.reshape(self.shape))
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise ShapeError("f must return a scalar (a one-element tensor); got "
                             f"{getattr(out, 'shape', type(out).__name__)}. For a vector of "
                             "residuals use residuals=r and hessian='gauss-newton'")
        return out.reshape(())

    def value(self, v: torch.Tensor) -> float:
        self.nfev += 1
        with torch.no_grad():
            return float(self.scalar(v))

    def derivatives(self, v: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """``(f, ∇f, p)``: ``p`` is the Newton step ``−H⁻¹∇f`` with the exact Hessian (made
        positive definite), or for Gauss–Newton the least-squares step ``min ‖J p + r‖``.
        The last damping (τ) is kept in ``self.damping``."""
        self.nfev += 1
        if self.plan is None and self.jac != "dense":
            self._resolve(v, self.jac)
        if self.jac == "sparse":
            return self._sparse_derivatives(v)
        small = v.numel() <= 256
        t0 = time.perf_counter()
        if self.mode == "gauss-newton":
            r, J = _value_and_jacobian(self._res, v, flat=True, mode="auto",
                                       chunk_size=None if small else "auto")
            self.damping, self.curvature = 0.0, J
            self._slow(t0, v.numel())
            g = J.T @ r
            # minimum-norm least squares when J is rank-deficient
            return float(0.5 * (r * r).sum()), g, -(torch.linalg.pinv(J) @ r)
        g, fv = grad_and_value(self.scalar)(v)
        H = _hessian(self.scalar, v, flat=True, chunk_size=None if small else "auto")
        self.curvature = H
        self._slow(t0, v.numel())
        if not (torch.isfinite(g).all() and torch.isfinite(H).all()):
            self.damping = 0.0
            return float(fv), g, torch.full_like(g, float("nan"))
        p, self.damping = _newton_direction((H + H.T) / 2, g)
        return float(fv), g, p


    def _sparse_derivatives(self, v: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """:meth:`derivatives` with the sparse plan (SciPy matrices, sparse factorisations)."""
        from . import _sparse_newton  # SciPy loads only for sparse solves

        fx, g, p, self.curvature, self.damping = _sparse_newton.derivatives(
            self.plan, v, self._res if self.mode == "gauss-newton" else None, self.scalar)
        return fx, g, p


def _newton_direction(H: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Solve ``(H + τI) p = −g`` with the smallest tried τ >= 0 that makes it positive definite."""
    n = H.shape[0]
    eye = torch.eye(n, dtype=H.dtype, device=H.device)
    beta = 1e-3 * max(1.0, float(H.abs().max()))
    dmin = float(H.diagonal().min())
    tau = 0.0 if dmin > 0 else beta - dmin
    for _ in range(100):
        L, info = torch.linalg.cholesky_ex(H + tau * eye)
        if int(info) == 0:
            return torch.cholesky_solve(-g.unsqueeze(-1), L).squeeze(-1), tau
        tau = max(2.0 * tau, beta)
    return -g, float("inf")  # pragma: no cover - H + τI is PD for τ > ‖H‖


@keeps_state
def newton_minimize(f: Callable[..., Any] | None, x0: Any, *, hessian: HessianKind = "exact",
                    residuals: Callable[..., Any] | None = None, tol: float = 1e-10,
                    max_iter: int = 100, line_search: bool = True, c1: float = 1e-4,
                    jac: str = "auto", verbose: int = 0,
                    dtype: torch.dtype | None = torch.float64) -> NewtonResult:
    """Minimise ``f`` by Newton's method (reference: ``x ← x − H⁻¹∇f``) with a line search.

    Args:
        f: scalar objective of a tensor shaped like ``x0``; ``None`` with ``residuals`` means
            ``f(x) = ½‖r(x)‖²``.
        x0: the start (any shape; a tensor or a nested sequence of numbers).
        hessian: ``"exact"`` (:func:`jacobite.hessian`, made positive definite where needed) or
            ``"gauss-newton"`` (``H ≈ JᵀJ`` of the residuals: needs ``residuals`` and
            ``f=None``).
        residuals: ``r(x)``, a tensor of residuals, for ``f = ½‖r‖²``.
        tol: stop successfully when ``‖∇f‖₂ <= tol``.
        max_iter: most Newton steps.
        line_search: backtrack (halve ``t``) until the Armijo condition holds; ``False`` takes
            full steps ``t = 1``.
        c1: the Armijo constant, in (0, 1).
        jac: how the Hessian (Gauss–Newton: the residual Jacobian) is computed: ``"auto"``
            (the default; dense or sparse by the cost model in the module doc and
            ``docs/sparse.md``; ``result.jac_mode`` says which), ``"dense"`` or ``"sparse"``
            (:func:`jacobite.sparse.prepare_hessian` / :func:`jacobite.sparse.prepare`). A
            dense one estimated to make the solve take over 10 s raises one
            :class:`~jacobite.errors.JacobiteWarning`.
        verbose: 0 silent; 1 the choice ``jac="auto"`` made and the final message; 2 also a
            line per iteration (``f``, ``‖∇f‖``, step length).
        dtype: the working dtype (float64 by default; ``None`` keeps ``x0``'s).

    Returns:
        a :class:`NewtonResult`; it does not raise when the iteration fails — check ``success``.

    Raises:
        NonFiniteInputError: ``x0`` or ``f(x0)`` (its gradient) is NaN/Inf.

    >>> import torch
    >>> f = lambda v: v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16
    >>> res = newton_minimize(f, [0.0, 0.0])
    >>> res.x.tolist(), res.fun, res.nit, res.success
    ([5.5, -1.0], -50.25, 1, True)
    """
    if hessian not in _HESSIANS:
        raise InvalidOptionError(f"hessian must be 'exact' or 'gauss-newton'; got {hessian!r}")
    if hessian == "gauss-newton" and (residuals is None or f is not None):
        raise InvalidOptionError("hessian='gauss-newton' minimises ½‖r(x)‖²: pass f=None and "
                                 "residuals=r")
    if f is None and residuals is None:
        raise InvalidOptionError("nothing to minimise: pass f, or f=None with residuals=r")
    if f is not None and residuals is not None:
        raise InvalidOptionError("pass either f or residuals (f=None means f = ½‖r(x)‖²)")
    if f is not None:
        _validate.callable_(f, "f")
    if residuals is not None:
        _validate.callable_(residuals, "residuals")
    tol = _validate.tolerance(tol, "tol")
    max_iter = _validate.nonnegative_int(max_iter, "max_iter")
    line_search = _validate.boolean(line_search, "line_search")
    c1 = _validate.positive_float(c1, "c1")
    if c1 >= 1:
        raise InvalidOptionError(f"c1 must lie in (0, 1), got {c1}; e.g. c1=1e-4")
    _validate.choice(jac, "jac", ("auto", "dense", "sparse"))
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise InvalidOptionError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    x = _as_start(x0, dtype)
    shape = x.shape
    obj = _Objective(f, residuals, shape, hessian, jac, verbose)
    v = x.reshape(-1)
    fx, g, p = first_call(obj.derivatives, v, "f" if residuals is None else "residuals")
    if not (torch.isfinite(g).all() and torch.isfinite(p).all() and abs(fx) < float("inf")):
        raise NonFiniteInputError(f"f(x0) = {fx} or its gradient is not finite; start from a "
                                  "point where f is finite and differentiable")
    gn = float(g.norm())
    history = [NewtonIterate(v.reshape(shape).clone(), fx, gn, 0.0, obj.damping)]
    message, success, nit = "", False, 0
    left: list[str] = []  # the kinks and saddles the iteration moved on from
    while True:
        if gn <= tol:
            verdict = _verdict(obj, v, fx, g, first=nit == 0)
            if verdict.kind == "minimum":
                success, message = True, f"converged: ‖∇f‖ = {gn:.3g} <= tol = {tol:g}"
                break
            if verdict.x is None or len(left) >= ESCAPES or nit >= max_iter:
                message = _STOPPED[verdict.kind].format(gn=gn, tol=tol)
                break
            here = v.detach().cpu().numpy()[:6]
            left.append(f"{_WHAT[verdict.kind]} at x = {np.array2string(here)}")
            step: torch.Tensor | None = torch.as_tensor(verdict.x, dtype=v.dtype,
                                                        device=v.device) - v
            t = 1.0
        elif nit >= max_iter:
            message = (f"reached max_iter={max_iter} with ‖∇f‖ = {gn:.3g} > tol = {tol:g}; raise "
                       "max_iter, loosen tol or start closer to the minimum")
            break
        else:
            step, t, message = _newton_step(obj, v, fx, g, p, tol, c1, line_search)
        if step is None:
            break
        v = v + step
        nit += 1
        fx, g, p = obj.derivatives(v)
        gn = float(g.norm())
        history.append(NewtonIterate(v.reshape(shape).clone(), fx, gn, t, obj.damping))
        if verbose >= 2:
            print(f"{nit:5d} {obj.nfev:6d} {fx:14.6e} {gn:10.3e} t {t:.3g}")
        if not (torch.isfinite(g).all() and torch.isfinite(p).all() and abs(fx) < float("inf")):
            message = "diverged: f or its derivatives became NaN/Inf; use line_search=True"
            break
        if gn > tol and float(step.norm()) <= 4 * torch.finfo(v.dtype).eps * (
                1.0 + float(v.norm())):
            message = (f"stalled: the step no longer changes x (‖∇f‖ = {gn:.3g} > tol = "
                       f"{tol:g}); loosen tol")
            break
    if left and success:
        message += "; on the way it left " + ", ".join(left) + ", where ‖∇f‖ vanished too"
    if verbose:
        print(f"newton_minimize: {message}; nfev={obj.nfev}, nit={nit}")
    return NewtonResult(v.reshape(shape), fx, gn, nit, obj.nfev, success, message, history,
                        obj.jac or "dense")


ESCAPES = 3  # most kinks or saddles left behind before the stop is reported as one
_WHAT = {"kink": "a kink", "saddle": "a saddle point or maximum"}
_STOPPED = {
    "kink": "stopped at a kink: ‖∇f‖ = {gn:.3g} <= tol = {tol:g}, but f is not differentiable "
            "here (AD's gradient is a subgradient) and is lower nearby, so x is not a minimum; "
            "start elsewhere, raise max_iter or smooth f (e.g. sqrt(x**2 + eps**2) for |x|)",
    "saddle": "stopped at a saddle point or maximum: ‖∇f‖ = {gn:.3g} <= tol = {tol:g}, but f "
              "is lower nearby along a direction of non-positive curvature; start elsewhere "
              "or raise max_iter",
    "plateau": "stopped on a plateau: ‖∇f‖ = {gn:.3g} <= tol = {tol:g}, but the Hessian (the "
               "Jacobian of the residuals) is zero too and f does not change nearby, so "
               "nothing says where a lower f lies (a relu, clamp or step that is off); start "
               "elsewhere or smooth f",
}


def _newton_step(obj: _Objective, v: torch.Tensor, fx: float, g: torch.Tensor, p: torch.Tensor,
                 tol: float, c1: float, line_search: bool
                 ) -> tuple[torch.Tensor | None, float, str]:
    """``(step, t, "")`` along ``p`` (steepest descent where ``p`` is not downhill), the
    length ``t`` halved until the Armijo condition holds; ``(None, t, why)`` on failure."""
    gn = float(g.norm())
    slope = float(g @ p)
    if not slope < 0:  # not a descent direction (can only happen for Gauss–Newton)
        p, slope = -g, -gn * gn
    t, f_new = 1.0, obj.value(v + p)
    if line_search:
        while not (f_new <= fx + c1 * t * slope) and t > 1e-12:
            t *= 0.5
            f_new = obj.value(v + t * p)
        if not f_new <= fx + c1 * t * slope:
            return None, t, (f"line search failed: no decrease along the Newton direction "
                             f"(‖∇f‖ = {gn:.3g}); tol = {tol:g} may be below what float "
                             "precision allows here, or f is not smooth")
    elif not abs(f_new) < float("inf"):
        return None, t, "diverged: f is not finite after a full step; use line_search=True"
    return t * p, t, ""


def _verdict(obj: _Objective, v: torch.Tensor, fx: float, g: torch.Tensor, *,
             first: bool) -> Verdict:
    """Whether the stationary ``v`` is a minimum as far as probes of ``f`` along the
    directions of no positive curvature (of ``H``, or of ``JᵀJ`` for Gauss–Newton) tell."""
    C = obj.curvature
    if C is None or (obj.mode == "gauss-newton" and not fx > 0):
        return Verdict("minimum")  # a zero sum of squares is the least there is
    if isinstance(C, torch.Tensor):
        Cn: Any = C.detach().to("cpu", torch.float64).numpy(force=True)  # force: ZeroTensors
        dirs = blind_directions(Cn, first=first) if obj.mode == "gauss-newton" else \
            curvature_directions(Cn, first=first)
        jac_zero = not np.any(Cn != 0)
    else:  # a SciPy sparse matrix
        from . import _sparse_newton

        dirs = _sparse_newton.directions(C, gauss_newton=obj.mode == "gauss-newton",
                                         first=first)
        jac_zero = not np.any(C.data != 0)
    if not dirs.size:
        return Verdict("minimum")

    def f(y: np.ndarray) -> float:
        return obj.value(torch.as_tensor(y, dtype=v.dtype, device=v.device))

    x = v.detach().to("cpu", torch.float64).numpy()
    gn = g.detach().to("cpu", torch.float64).numpy(force=True)
    return probe(f, x, fx, gn, dirs, jac_zero=jac_zero,
                 eps=float(torch.finfo(v.dtype).eps))
