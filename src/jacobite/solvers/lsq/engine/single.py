"""One problem through the engine: the bridge between :class:`~.._problem.Residuals` (flat
float64 NumPy vectors, evaluation counters, rescaling) and the batched engine (B = 1).

:func:`run_single` solves from a start with ``"lm"`` (Levenberg–Marquardt: Moré's trust region
for a dense Jacobian, sparse LU steps with Nielsen's damping for a SciPy sparse one) or
``"gauss-newton"`` (Gauss–Newton, Armijo line search) and hands back a :class:`SolverOutput`, the
form :func:`jacobite.least_squares` and its audits (:mod:`.._audit`) read. The NumPy arrays
the residual object returns are viewed as tensors without a copy, and the evaluation counters
of the engine continue those of ``P``.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> P = Residuals(lambda x: torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]]),
...               torch.tensor([-1.2, 1.0], dtype=torch.float64), "auto")
>>> out = run_single(P, np.array([-1.2, 1.0]), "lm", ftol=1e-15, xtol=1e-15, gtol=1e-15)
>>> np.round(out.x, 12).tolist(), out.status > 0, out.nit > 0
([1.0, 1.0], True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..._scipy import issparse
from .._problem import Residuals
from ..losses import Loss
from .loop import solve
from .protocols import Globalisation, StepRule
from .state import LossFn, State
from .status import EPS64, MESSAGES, Tolerances
from .steps.lm import LevenbergMarquardt
from .trust_region import TrustRegion

__all__ = ["SolverOutput", "run_single", "set_scale", "solve_flat", "start_state"]



@dataclass
class SolverOutput:
    """What a solver hands back to :func:`jacobite.least_squares` (float64 NumPy)."""

    x: np.ndarray
    f: np.ndarray
    J: Any
    cost: float
    status: int
    message: str
    nit: int


class _Flat:
    """``P`` as an engine problem of one row (the counters stay in ``P`` too)."""

    def __init__(self, P: Residuals) -> None:
        self.P = P

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.P.f(x[0].numpy())))[None]

    def J(self, x: torch.Tensor) -> Any:
        return _batched(self.P.J(x[0].numpy()))


def _batched(J: Any) -> Any:
    """A dense NumPy Jacobian as a (1, m, n) tensor (no copy); a SciPy sparse one as it is."""
    return J if issparse(J) else torch.from_numpy(np.asarray(J))[None]


def _torch_loss(loss: Loss | None) -> LossFn | None:
    if loss is None:
        return None
    return lambda f: torch.from_numpy(loss(f[0].numpy()))[:, None, :]


def start_state(P: Residuals, x0: np.ndarray, f0: np.ndarray | None, J0: Any,
                loss: Loss | None) -> tuple[State, Any]:
    """The engine's one-problem state at ``x0`` (``f0`` / ``J0`` where already evaluated), its
    counters set to every evaluation ``P`` has made (the budget counts them), and the
    Jacobian as ``P`` gave it (dense or SciPy sparse)."""
    f = P.f(x0) if f0 is None else f0
    J = P.J(x0) if J0 is None else J0
    x = torch.from_numpy(np.array(x0, dtype=np.float64))[None]
    state = State.start(x, torch.from_numpy(np.asarray(f))[None], _batched(J),
                        _torch_loss(loss))
    state.nfev.fill_(P.nfev)
    state.njev.fill_(P.njev)
    return state, J


def set_scale(state: State, x_scale: Any) -> bool:
    """Whether ``x_scale`` asks for Jacobian scaling (``"jac"``); else the state's ``D`` is set
    to ``1 / x_scale`` (the scales as :func:`.._options.x_scale` checked them)."""
    if isinstance(x_scale, str):
        return True
    state.D = torch.from_numpy(1.0 / np.asarray(x_scale, dtype=np.float64))[None]
    return False


def run_single(P: Residuals, x0: np.ndarray, method: Literal["lm", "gauss-newton"], *,
              ftol: float, xtol: float, gtol: float, max_nfev: int | None = None,
              x_scale: Any = "jac", loss: Loss | None = None, geodesic: bool = True,
              verbose: int = 0, f0: np.ndarray | None = None, J0: Any = None,
              eps: float = EPS64) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` from ``x0`` (see the module doc); ``J`` dense or SciPy sparse
    (``geodesic`` applies to the dense Levenberg–Marquardt steps).

    ``f0`` / ``J0``: the residuals and Jacobian at ``x0`` where already evaluated; ``eps``: the
    machine epsilon of the dtype the residuals are computed in (tolerances and rounding-level
    thresholds scale with it); ``max_nfev`` defaults to ``100 n``."""
    state, J = start_state(P, x0, f0, J0, loss)
    rule: StepRule
    glob: Globalisation
    if method == "lm":
        jac_scale = set_scale(state, x_scale)
        if issparse(J):
            from .damping import NielsenDamping
            from .steps.sparse_lm import SparseLevenbergMarquardt  # SciPy's sparse LU

            rule, glob = SparseLevenbergMarquardt(jac_scale=jac_scale), NielsenDamping()
        else:
            rule = LevenbergMarquardt(geodesic=geodesic, jac_scale=jac_scale)
            glob = TrustRegion()
    else:
        from .line_search import Armijo
        from .steps.gauss_newton import GaussNewton

        rule, glob = GaussNewton(), Armijo()
    return solve_flat(P, state, rule, glob, ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev,
                      verbose=verbose, eps=eps)


def solve_flat(P: Residuals, state: State, rule: StepRule, glob: Globalisation, *,
               ftol: float, xtol: float, gtol: float, max_nfev: int | None, verbose: int,
               eps: float) -> SolverOutput:
    """Solve the one-problem ``state`` (from :func:`start_state`) with ``rule`` and ``glob``
    (``max_nfev`` defaults to ``100 n``) and hand the result back as NumPy."""
    budget = 100 * state.n if max_nfev is None else max_nfev
    tol = Tolerances.make(ftol, xtol, gtol, 1, eps=eps, max_nfev=budget)
    state = solve(_Flat(P), state, rule, glob, tol, verbose=verbose)
    status = int(state.status[0])
    J = state.J[0].numpy() if isinstance(state.J, torch.Tensor) else state.J
    return SolverOutput(state.x[0].numpy(), state.f[0].numpy(), J,
                        float(state.cost[0]), status, MESSAGES[status], int(state.nit[0]))
