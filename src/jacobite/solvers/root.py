"""``root``: solve ``F(x) = 0`` (as many equations as unknowns) with exact Jacobians.

Two globalisations of Newton's method ``J(x) p = −F(x)``:

* ``method="hybrid"`` (default) — Powell's dogleg trust region as in MINPACK's ``hybrj``, with
  the exact Jacobian at every accepted point (no Broyden updates) and the variables scaled by the
  running maximum of the Jacobian's column norms.
* ``method="newton"`` — Newton steps with a safeguarded quadratic/cubic backtracking line search
  on ``½‖F‖²`` (Armijo condition, Dennis & Schnabel A6.3.1).

Where ``J`` is singular to working precision (checked by singular values up to n = 256, by LU
above), the step solves the column-scaled system with its small singular values raised to
``10 n eps σ_max`` (LSMR's least-squares step for sparse Jacobians): still downhill for ``½‖F‖²``.
A trial point where ``F`` or ``J`` is NaN/Inf is rejected (smaller radius or step), never
returned. Jacobians come from :func:`jacobite.value_and_jacobian` (``jac="dense"``), from the
compressed sparse evaluation of :func:`jacobite.sparse.prepare` (``jac="sparse"``; steps by
SuperLU, never densified) or from ``jac(x, *args)`` returning a tensor or SciPy sparse matrix.
``jac="auto"`` (the default) picks dense or sparse by a cost model
(:mod:`jacobite.solvers._auto_jac`): dense below n = 1000 without looking further, above it
sparse where the detected pattern is global, at most 5 % nonzero and needs at most n / 4
colors; ``RootResult.jac_mode`` says which ran.

Stopping (``status`` > 0 is success):

* 1 — ``max|F_i| <= ftol`` (absolute; ``ftol=0`` relies on ``xtol`` alone);
* 2 — a full Newton step was accepted with ``‖D p‖ <= xtol ‖D x‖`` (``D``: the column scaling);
  Newton converges quadratically, so the point is then accurate to about working precision;
* 3 — no step reduces ``‖F‖`` any more but the Newton step at ``x`` is below
  ``max(xtol, 10 n eps) ‖D x‖`` (``eps`` of the working dtype): a root to the accuracy rounding
  allows (a longer Newton step that no longer reduces ``‖F‖``, as at a jump of ``F``, is −1);
* 0 — ``max_nfev`` evaluations of ``F`` were spent;
* −1 — no progress: ``‖F‖`` stalled far from zero (typically a local minimum of ``‖F‖``, where
  ``J`` is singular) — try another ``x0``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.utils._pytree import tree_flatten

from .. import _validate
from .._modules import keeps_state
from ..dense._trees import under_vmap
from ..errors import (
    ConvergenceError,
    InvalidOptionError,
    NonFiniteInputError,
    UnsupportedOperationError,
)
from ._auto_jac import JacMode
from ._checks import as_start as _as_start
from ._checks import first_call
from ._dogleg import System, backtrack, dogleg
from ._ift import NO_VMAP, attach, inexact, replaced, tracked
from ._root_problem import Problem

__all__ = ["RootResult", "root"]

#: At verbose=1, the least time between two progress lines (seconds).
PROGRESS_SECONDS = 5.0

#: A root-finding method: Powell's hybrid (dogleg) or damped Newton.
Method = Literal["hybrid", "newton"]
_METHODS: tuple[Method, ...] = ("hybrid", "newton")


@dataclass(frozen=True)
class RootResult:
    """What :func:`root` found.

    Attributes:
        x: the last accepted point (shape of ``x0``); never one where ``F`` was NaN/Inf.
        fun: ``F(x)`` (shape of ``F``'s output).
        jac: the ``(n, n)`` Jacobian at ``x``: a tensor, or a SciPy sparse matrix on the sparse
            path.
        success: ``status > 0``.
        status: 1 (``ftol``), 2 (``xtol``), 3 (rounding limit at a root), 0 (``max_nfev``),
            −1 (no progress).
        message: why it stopped, and what to change when it failed.
        nfev: evaluations of ``F`` (Jacobian passes excluded).
        njev: Jacobian evaluations.
        nit: accepted steps.
        jac_mode: how the Jacobians were computed: ``"dense"``, ``"sparse"`` or
            ``"callable"`` (``jac="auto"`` records its choice here).

    >>> res = root(lambda x: x ** 2 - 2, [1.0])
    >>> res.success, res.status, round(float(res.x), 15), res.jac.shape
    (True, 1, 1.414213562373095, torch.Size([1, 1]))
    """

    x: torch.Tensor
    fun: torch.Tensor
    jac: Any
    success: bool
    status: int
    message: str
    nfev: int
    njev: int
    nit: int
    jac_mode: JacMode = "dense"


def _norm(v: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(v))


class _Solver:
    def __init__(self, prob: Problem, v: torch.Tensor, xtol: float, ftol: float,
                 max_nfev: int, verbose: int) -> None:
        self.p, self.xtol, self.ftol, self.max_nfev, self.verbose = prob, xtol, ftol, max_nfev, \
            verbose
        self.v = v
        self.F, self.sys = first_call(prob.start, v, "fun")
        if not self.sys.finite():
            raise NonFiniteInputError("the Jacobian at x0 contains NaN or Inf; start from a "
                                      "point where fun is differentiable")
        self.nit, self.nslow = 0, 0
        self.D = self._scale(torch.zeros_like(v))
        self.fnorm = _norm(self.F)
        self.pN: torch.Tensor | None = None
        self.regularised = False
        self.shown = time.perf_counter()

    def _scale(self, D: torch.Tensor) -> torch.Tensor:
        c = self.sys.colnorms()
        return torch.maximum(D, torch.where(c > 0, c, torch.ones_like(c)))

    def newton_step(self) -> torch.Tensor:
        if self.pN is None:
            self.pN, self.regularised = self.sys.newton(self.F, self.D)
        return self.pN

    def accept(self, v: torch.Tensor, F: torch.Tensor, sys: System) -> None:
        """Move to ``v`` (``F(v)``, Jacobian ``sys``, checked finite)."""
        fnew = _norm(F)
        self.nslow = 0 if fnew < 0.999 * self.fnorm else self.nslow + 1
        self.v, self.F, self.fnorm, self.sys, self.pN = v, F, fnew, sys, None
        self.nit += 1
        self.D = self._scale(self.D)

    def dx(self) -> float:
        return _norm(self.D * self.v)

    def stalled(self, why: str) -> tuple[int, str]:
        pn = _norm(self.D * self.newton_step())
        eps = float(torch.finfo(self.v.dtype).eps)
        rel = pn / self.dx() if self.dx() > 0 else math.inf
        if not self.regularised and rel <= max(self.xtol, 10 * self.v.numel() * eps):
            return 3, (f"converged to the rounding limit: no step reduces ‖F‖ = {self.fnorm:.3g}"
                       f" further and the Newton step is {rel:.3g} relative to ‖D x‖")
        if self.sys.zero():
            return -1, (f"no progress ({why}) with ‖F‖ = {self.fnorm:.3g}: the Jacobian is zero "
                        "here, so F does not respond to x to first order (a critical point "
                        "such as x² − 1 at 0, a kink such as |x| at 0, whose AD derivative is "
                        "0, or a flat piece such as a relu that is off); start from another x0 "
                        "or smooth F")
        if not self.regularised and rel <= math.sqrt(self.xtol):
            return -1, (f"no progress ({why}) with ‖F‖ = {self.fnorm:.3g}: the Jacobian is "
                        f"nonsingular and its Newton step is short ({rel:.3g} relative to "
                        "‖D x‖), yet it does not reduce ‖F‖: F is not smooth here (a jump or "
                        "kink) or noisier than xtol allows; try another x0 or smooth F")
        return -1, (f"no progress ({why}) with ‖F‖ = {self.fnorm:.3g}: probably a local "
                    "minimum of ‖F‖ where the Jacobian is singular; try another x0")

    def log(self, what: str, size: float) -> None:
        """One progress line: every iteration at ``verbose=2``; at ``verbose=1`` at most one
        every ``PROGRESS_SECONDS``, so that a long solve still shows it is moving."""
        now = time.perf_counter()
        if self.verbose >= 2 or (self.verbose == 1 and now - self.shown >= PROGRESS_SECONDS):
            self.shown = now
            print(f"{self.nit:5d} {self.p.nfev:6d} {self.fnorm:14.6e} {what} {size:10.3e}")

    def done(self) -> tuple[int, str] | None:
        if float(self.F.abs().max()) <= self.ftol:
            return 1, f"converged: max|F| = {float(self.F.abs().max()):.3g} <= ftol = {self.ftol:g}"
        if self.p.nfev >= self.max_nfev:
            return 0, (f"reached max_nfev={self.max_nfev} with ‖F‖ = {self.fnorm:.3g}; raise "
                       "max_nfev or start closer to a root")
        if self.nslow >= 10:
            return self.stalled("‖F‖ fell by less than 0.1% in 10 steps")
        return None

    def hybrid(self) -> tuple[int, str]:
        delta = 100.0 * self.dx() or 100.0
        first, ncsuc = True, 0
        while (out := self.done()) is None:
            pN, reg = self.newton_step(), self.regularised
            step, full = dogleg(self.sys, self.F, self.D, pN, delta)
            pnorm = _norm(self.D * step)
            if first:
                delta, first = min(delta, pnorm), False
            vt = self.v + step
            Ft = self.p(vt)
            fn = _norm(Ft) if bool(torch.isfinite(Ft).all()) else math.inf
            actred = 1.0 - (fn / self.fnorm) ** 2 if math.isfinite(fn) else -math.inf
            prered = 1.0 - (_norm(self.F + self.sys.mv(step)) / self.fnorm) ** 2
            ratio = actred / prered if prered > 0 else 0.0
            if ratio < 0.1:  # MINPACK halves the radius; we also cut it below the rejected
                # step, so that (J being exact, not a Broyden update) it is never tried again
                ncsuc, delta = 0, 0.5 * (delta if 0.5 * delta < pnorm else pnorm)
            else:
                ncsuc += 1
                if ratio >= 0.5 or ncsuc > 1:
                    delta = max(delta, 2.0 * pnorm)
                if abs(ratio - 1.0) <= 0.1:
                    delta = 2.0 * pnorm
            sys = self.p.system(vt) if ratio >= 1e-4 else None
            if sys is not None and not sys.finite():  # J is NaN/Inf there: reject the step
                ncsuc, delta, sys = 0, 0.5 * min(delta, pnorm), None
            if sys is not None:
                self.accept(vt, Ft, sys)
                if full and not reg and pnorm <= self.xtol * self.dx():
                    return 2, (f"converged: the Newton step {pnorm:.3g} <= xtol ‖D x‖ "
                               f"(xtol = {self.xtol:g})")
            else:
                self.nslow += 1
            self.log("delta", delta)
            if delta <= self.xtol * self.dx() or delta == 0.0:
                return self.stalled("the trust region shrank below xtol ‖D x‖")
        return out

    def newton(self) -> tuple[int, str]:
        while (out := self.done()) is None:
            p, reg = self.newton_step(), self.regularised
            g = self.sys.rmv(self.F)
            slope = float(g @ p)
            if not slope < 0:  # not downhill (an inaccurate LSMR step): steepest descent
                p, slope = -g, -float(g @ g)
            if not slope < 0:
                return self.stalled("the gradient of ½‖F‖² vanishes")
            pmax = 1e3 * max(self.dx(), _norm(self.D))
            if (pd := _norm(self.D * p)) > pmax:  # Dennis & Schnabel's longest step
                p, slope = p * (pmax / pd), slope * (pmax / pd)
            phi0, t, t_prev, phi_prev = 0.5 * self.fnorm ** 2, 1.0, 0.0, math.nan
            while True:
                vt = self.v + t * p
                Ft = self.p(vt)
                phi = 0.5 * _norm(Ft) ** 2 if bool(torch.isfinite(Ft).all()) else math.inf
                if phi <= phi0 + 1e-4 * t * slope:
                    if (sys := self.p.system(vt)).finite():
                        break
                    phi = math.inf  # J is NaN/Inf there: backtrack as from a NaN residual
                if t * _norm(self.D * p) <= self.xtol * self.dx() or t < 1e-15:
                    return self.stalled("the line search found no decrease")
                if self.p.nfev >= self.max_nfev:
                    return self.done() or (0, "")
                t, t_prev, phi_prev = backtrack(t, phi, t_prev, phi_prev, phi0, slope), t, phi
            step = _norm(self.D * p) * t
            self.accept(vt, Ft, sys)
            self.log("t", t)
            if t == 1.0 and not reg and step <= self.xtol * self.dx():
                return 2, (f"converged: the Newton step {step:.3g} <= xtol ‖D x‖ "
                           f"(xtol = {self.xtol:g})")
        return out


@keeps_state
def root(fun: Callable[..., Any], x0: Any, *, method: Method = "hybrid", jac: Any = "auto",
         xtol: float = 1e-12, ftol: float = 1e-14, max_nfev: int | None = None,
         verbose: int = 0, args: tuple[Any, ...] = (),
         dtype: torch.dtype | None = torch.float64) -> RootResult:
    """Solve ``fun(x, *args) = 0`` for ``x`` by Newton's method, globalised.

    Args:
        fun: ``F(x)``, a tensor with as many entries as ``x`` (any shapes; both are flattened
            in row-major order for the Jacobian).
        x0: the start (a tensor or a nested sequence of numbers).
        method: ``"hybrid"`` (Powell's dogleg trust region, as MINPACK ``hybrj``) or
            ``"newton"`` (backtracking line search on ``½‖F‖²``).
        jac: ``"auto"`` (the default: dense or sparse by the cost model in the module doc and
            ``docs/sparse.md``; ``result.jac_mode`` says which), ``"dense"``
            (:func:`jacobite.value_and_jacobian`), ``"sparse"`` (:func:`jacobite.sparse.prepare`,
            sparse LU steps), or a callable ``jac(x, *args)`` returning the ``(n, n)`` Jacobian
            as a tensor or SciPy sparse matrix. A dense Jacobian estimated to make the solve
            take over 10 s raises one :class:`~jacobite.errors.JacobiteWarning`.
        xtol: relative step tolerance in the scaled variables (status 2; see the module).
        ftol: absolute tolerance on ``max|F_i|`` (status 1). It assumes residuals of natural
            size about 1: for residuals scaled far below 1 lower it (or rescale ``F``) — with
            ``ftol=0`` only ``xtol`` stops the iteration successfully.
        max_nfev: most evaluations of ``F``; default ``100 (n + 1)``.
        verbose: 0 silent; 1 the Jacobian ``jac="auto"`` chose, a progress line at most every
            5 s and the final message; 2 one line per iteration.
        args: extra positional arguments for ``fun`` (and ``jac``).
        dtype: working dtype (float64 by default; ``None`` keeps ``x0``'s).

    Returns:
        a :class:`RootResult`; a failed solve does not raise — check ``success``. Where a tensor
        in ``args`` is tracked (``requires_grad`` under autograd, or wrapped by a
        ``torch.func`` transform), ``x`` is differentiable in it through the implicit function
        theorem, as in :func:`jacobite.solve_implicit` (by autograd, ``grad``, ``jacrev``,
        ``jacfwd``; higher orders except forward over forward); the derivative of a failed
        solve raises :class:`~jacobite.errors.ConvergenceError`. The other fields are
        constants.

    Raises:
        NonFiniteInputError: ``x0``, ``F(x0)`` or ``J(x0)`` holds NaN/Inf.
        NotSquareError: ``F`` has a different number of entries than ``x``.
        InvalidOptionError: an unknown ``method`` / ``jac`` or a negative tolerance.
        UnsupportedOperationError: under ``torch.func.vmap`` (loop over the batch instead), or
            ``fun`` closes over a tracked tensor instead of taking it through ``args``.

    >>> import torch
    >>> F = lambda v: torch.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]])  # Rosenbrock
    >>> res = root(F, [-1.2, 1.0])
    >>> res.success, res.x.tolist()
    (True, [1.0, 1.0])
    """
    _validate.callable_(fun, "fun")
    _validate.choice(method, "method", _METHODS)
    if not (callable(jac) or jac in ("auto", "dense", "sparse")):
        raise InvalidOptionError(f"jac must be 'auto', 'dense', 'sparse' or a callable; got "
                                 f"{jac!r}")
    xtol, ftol = _validate.tolerance(xtol, "xtol"), _validate.tolerance(ftol, "ftol")
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise InvalidOptionError(f"verbose must be 0, 1 or 2; got {verbose!r}")
    if not isinstance(args, tuple):
        raise InvalidOptionError(f"args must be a tuple; got {type(args).__name__}")
    leaves, spec = tree_flatten(args)
    if any(under_vmap(t) for t in [x0, *leaves] if isinstance(t, torch.Tensor)):
        raise UnsupportedOperationError(NO_VMAP.format(
            name="root", alt=", or jacobite.solve_implicit, whose vmap is such a loop"))
    pos = inexact(leaves)
    x = _as_start(x0, dtype)  # float64 by default; finite, non-empty
    max_nfev = _validate.max_iter(max_nfev, "max_nfev")
    max_nfev = 100 * (x.numel() + 1) if max_nfev is None else max_nfev
    opts = dict(method=method, jac=jac, xtol=xtol, ftol=ftol, max_nfev=max_nfev,
                verbose=verbose)
    if not any(tracked(leaves[i]) for i in pos):
        return _solve(fun, x, args, **opts)

    def with_(th: list[torch.Tensor]) -> tuple[Any, ...]:
        return tuple(replaced(leaves, spec, pos, th))

    def run(th: list[torch.Tensor]) -> tuple[torch.Tensor, Any, RootResult]:
        res = _solve(fun, x, with_(th), **opts)
        return res.x, res.jac, res

    xs, res = attach(lambda v, th: fun(v, *with_(th)), run, [leaves[i] for i in pos], None,
                     loop_ok=False, failed=_failed)
    return dataclasses.replace(res, x=xs)


def _failed(res: RootResult) -> Exception | None:
    if res.success:
        return None
    return ConvergenceError(f"root did not converge ({res.message}): x*(θ) has no derivative "
                            "there")


def _solve(fun: Callable[..., Any], x: torch.Tensor, args: tuple[Any, ...], *, method: Method,
           jac: Any, xtol: float, ftol: float, max_nfev: int, verbose: int) -> RootResult:
    prob = Problem(fun, args, jac, x, verbose)
    solver = _Solver(prob, x.reshape(-1), xtol, ftol, max_nfev, verbose)
    if verbose >= 2:
        print(f"{'nit':>5} {'nfev':>6} {'‖F‖':>14} radius (hybrid) or step length t (newton)")
    status, message = solver.hybrid() if method == "hybrid" else solver.newton()
    if verbose:
        print(f"root ({method}): {message}; nfev={prob.nfev}, njev={prob.njev}, "
              f"nit={solver.nit}")
    return RootResult(solver.v.reshape(x.shape), solver.F.reshape(prob.out_shape),
                      solver.sys.export(), status > 0,
                      status, message, prob.nfev, prob.njev, solver.nit, prob.mode)
