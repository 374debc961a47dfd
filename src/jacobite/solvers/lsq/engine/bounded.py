"""The bounded methods through the engine: ``"trf"`` (trust-region reflective) and ``"dogbox"``
(dogleg in a box), for one problem or a batch with per-problem bounds.

:func:`bounded_method` pairs the step rule (:class:`~.steps.reflective.Reflective` or
:class:`~.steps.dogleg.Dogbox`) with :class:`~.box_region.BoxTrustRegion` for any batch;
:func:`run_bounded` solves one problem given as a :class:`~.._problem.Residuals` (flat NumPy,
dense or SciPy sparse Jacobian) and hands back the :class:`~.single.SolverOutput` that
:func:`jacobite.least_squares` and its audits read.

>>> import numpy as np, torch
>>> from jacobite.solvers.lsq._problem import Residuals
>>> P = Residuals(lambda x: x - 2.0, torch.zeros(2, dtype=torch.float64), "auto")
>>> out = run_bounded(P, np.zeros(2), np.array([-1.0, -1.0]), np.array([1.0, 3.0]), "trf",
...                   ftol=1e-12, xtol=1e-12, gtol=1e-12)
>>> np.round(out.x, 8).tolist(), out.status > 0
([1.0, 2.0], True)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from .._problem import Residuals
from ..losses import Loss
from .box_region import BoxTrustRegion
from .protocols import StepRule
from .single import SolverOutput, set_scale, solve_flat, start_state
from .status import EPS64
from .steps.dogleg import Dogbox
from .steps.reflective import Reflective

__all__ = ["BoundedMethod", "bounded_method", "run_bounded"]

#: The engine's methods for box bounds.
BoundedMethod = Literal["trf", "dogbox"]



def bounded_method(method: BoundedMethod, lb: torch.Tensor, ub: torch.Tensor,
                   jac_scale: bool = True) -> tuple[StepRule, BoxTrustRegion]:
    """The step rule and globalisation of ``method`` for boxes ``lb``, ``ub`` of shape
    ``(B, n)`` (``±inf`` for open sides). With ``jac_scale=False`` the state's ``D`` must hold
    ``1 / x_scale``. The start must lie in the box (strictly inside for ``"trf"``)."""
    rule: StepRule = (Reflective if method == "trf" else Dogbox)(lb, ub, jac_scale)
    return rule, BoxTrustRegion()


def run_bounded(P: Residuals, x0: np.ndarray, lb: np.ndarray, ub: np.ndarray,
                method: BoundedMethod, *, ftol: float, xtol: float, gtol: float,
                max_nfev: int | None = None, x_scale: Any = "jac", loss: Loss | None = None,
                verbose: int = 0, f0: np.ndarray | None = None, J0: Any = None,
                eps: float = EPS64) -> SolverOutput:
    """Minimise ``½ Σ ρ(f(x)²)`` subject to ``lb <= x <= ub`` from ``x0`` (strictly inside for
    ``"trf"``). ``f0`` / ``J0``: already evaluated at ``x0``; ``eps``: the machine epsilon of
    the residuals' dtype; ``max_nfev`` defaults to ``100 n``. A sparse Jacobian takes the
    sparse back end (``"trf"`` only)."""
    state, _ = start_state(P, x0, f0, J0, loss)
    jac_scale = set_scale(state, x_scale)
    rule, glob = bounded_method(method, torch.from_numpy(lb)[None], torch.from_numpy(ub)[None],
                                jac_scale)
    return solve_flat(P, state, rule, glob, ftol=ftol, xtol=xtol, gtol=gtol, max_nfev=max_nfev,
                      verbose=verbose, eps=eps)
