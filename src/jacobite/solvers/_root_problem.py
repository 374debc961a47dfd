"""The system ``F(x) = 0`` as :func:`jacobite.solvers.root` sees it: ``F`` on the flat vector,
its Jacobian as a dense or sparse :class:`~jacobite.solvers._dogleg.System`, evaluation counts.

``jac="auto"`` is resolved at the start point by :func:`jacobite.solvers._auto_jac.choose`;
``mode`` then holds ``"dense"``, ``"sparse"`` or ``"callable"``.

>>> import torch
>>> p = Problem(lambda x: x ** 2 - 1, (), "auto", torch.tensor([2.0, 3.0]))
>>> F, sys = p.start(torch.tensor([2.0, 3.0]))
>>> F.tolist(), sys.export().tolist(), p.mode, p.nfev, p.njev
([3.0, 8.0], [[4.0, 0.0], [0.0, 6.0]], 'dense', 1, 1)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from ..dense import value_and_jacobian as _value_and_jacobian
from ..errors import (
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    OutputTypeError,
    UnsupportedOperationError,
)
from ._auto_jac import JacMode, choose, slow_dense_warning
from ._dogleg import DenseSystem, System, as_system
from ._ift import CLOSED_OVER, tracked

__all__ = ["Problem"]


class Problem:
    """``F`` and its Jacobian on the flat vector, counting evaluations."""

    def __init__(self, fun: Callable[..., Any], args: tuple[Any, ...], jac: Any,
                 x: torch.Tensor, verbose: int = 0) -> None:
        self.fun, self.args, self.jac, self.shape = fun, args, jac, x.shape
        self.verbose = verbose
        self.mode: JacMode = "callable" if callable(jac) else jac
        self.reason = ""
        self.warned = False
        self.nfev = self.njev = 0
        self.plan: Any = None
        self.out_shape: torch.Size = torch.Size([])
        self.flat = self._flat  # one bound object, so the dense engine's caches hit

    def _flat(self, v: torch.Tensor) -> torch.Tensor:
        out = self.fun(v.reshape(self.shape), *self.args)
        if not isinstance(out, torch.Tensor):
            raise OutputTypeError(f"fun must return a tensor, got {type(out).__name__}")
        self.out_shape = out.shape
        return out.reshape(-1)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.nfev += 1
        if self.nfev == 1 and torch.is_grad_enabled():  # once: does F close over a tracked θ?
            out = self._flat(v)
            if tracked(out):
                raise UnsupportedOperationError(CLOSED_OVER)
            return out.detach().to(v.dtype)
        with torch.no_grad():
            return self._flat(v).to(v.dtype)

    def start(self, v: torch.Tensor) -> tuple[torch.Tensor, System]:
        F = self(v)
        if F.numel() != v.numel():
            raise NotSquareError(
                f"fun maps {v.numel()} unknowns to {F.numel()} equations; root needs as many "
                "equations as unknowns — use jacobite.least_squares for over- or "
                "under-determined systems")
        if not bool(torch.isfinite(F).all()):
            raise NonFiniteInputError("F(x0) contains NaN or Inf; start from a point where "
                                      "fun is finite")
        if self.jac == "auto":
            choice = choose(self.flat, v, F.numel())
            self.mode, self.plan, self.reason = choice.mode, choice.plan, choice.reason
            if self.verbose:
                print(f"root: jac='auto' chose {choice.reason}")
        elif self.jac == "sparse":
            from ..sparse import prepare

            self.plan = prepare(self.flat, v)
        return F, self.system(v)

    def system(self, v: torch.Tensor) -> System:
        self.njev += 1
        if self.mode == "dense":
            t0 = time.perf_counter()
            try:
                with torch.no_grad():
                    J = _value_and_jacobian(self.flat, v, flat=True, check_finite=False)[1]
            except JacobianTooLarge as exc:
                raise JacobianTooLarge(f"{exc}. For root, pass jac='sparse' (a compressed sparse "
                                       "Jacobian) or a jac callable returning a SciPy sparse "
                                       "matrix") from exc
            if not self.warned:  # once per solve, after the first dense Jacobian
                self.warned = True
                slow_dense_warning(time.perf_counter() - t0, v.numel(), "root", self.reason)
            return DenseSystem(J.to(v.dtype))
        J = self.plan.jacobian(v).to_scipy() if self.mode == "sparse" else \
            self.jac(v.reshape(self.shape), *self.args)
        return as_system(J, v)
