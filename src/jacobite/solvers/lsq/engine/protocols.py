"""The three roles the engine loop (:mod:`.loop`) drives: a problem, a step rule and a
globalisation.

* A :class:`Problem` evaluates residuals ``f`` (B, n) -> (B, m) and Jacobians (B, n) ->
  (B, m, n) for the whole batch, problem by problem (row ``b`` of the output depends on row ``b``
  of the input only). Rows of problems that stopped are evaluated too and ignored; the loop and
  the globalisation count evaluations per running problem (``State.nfev``, ``State.njev``).
* A :class:`StepRule` turns the model at ``x`` into a trial step: ``refresh`` rebuilds the
  per-Jacobian work (gradient, scaling ``D``, a factorisation kept in ``State.extra``) for the
  problems whose Jacobian changed and answers the gradient test; ``propose`` returns a
  :class:`Trial` for every problem (rows of stopped problems are ignored).
* A :class:`Globalisation` decides what to do with the trial: ``prepare`` sets what the step
  rule reads before proposing (the first trust radius); ``advance`` evaluates the trial
  point(s), accepts or rejects per problem, updates radius / damping, moves the accepted
  problems (``x``, ``f``, ``cost``, ``nit``) and writes their final status when a
  convergence test or the budget stops them. It returns the mask of problems that moved (their
  Jacobian is evaluated next).

Step rules and globalisations change only rows of RUNNING problems. A step rule that needs a
different globalisation quantity reads it from ``Trial.extra``; all quantities are (B, ...)
tensors, never Python values per problem.

>>> from jacobite.solvers.lsq.engine.steps.lm import LevenbergMarquardt
>>> from jacobite.solvers.lsq.engine.trust_region import TrustRegion
>>> isinstance(LevenbergMarquardt(), StepRule), isinstance(TrustRegion(), Globalisation)
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from .state import State
from .status import Tolerances

__all__ = ["Globalisation", "Problem", "StepRule", "Trial"]


@runtime_checkable
class Problem(Protocol):
    """Residuals and Jacobians of B problems at once (see the module doc). Neither call counts
    evaluations; the engine does, per running problem."""

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """Residuals (B, m) at ``x`` (B, n); NaN/Inf rows are allowed (the trial is rejected)."""
        ...

    def J(self, x: torch.Tensor) -> Any:
        """Jacobian (B, m, n) at ``x`` (B, n) (B = 1: a SciPy sparse matrix is allowed)."""
        ...


@dataclass
class Trial:
    """A proposed step per problem.

    ``p`` (B, n) is the step in ``x``; ``pnorm`` (B,) its size in the scaled variables
    (``‖D p‖``, the quantity the trust radius bounds); ``predicted`` (B,) the reduction of the
    cost the model predicts (absolute); ``slope`` (B,) the directional derivative of the cost
    along the step's model direction (negative downhill); ``lam`` (B,) the damping used (0 for an
    undamped step); ``extra``: anything else a matching globalisation reads."""

    p: torch.Tensor
    pnorm: torch.Tensor
    predicted: torch.Tensor
    slope: torch.Tensor
    lam: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class StepRule(Protocol):
    """Turns the model at ``x`` into trial steps (see the module doc)."""

    def refresh(self, state: State, fresh: torch.Tensor, tol: Tolerances) -> torch.Tensor:
        """Rebuild ``g``, ``D`` and the factorisation for the problems in ``fresh`` (B,) (their
        ``J`` changed); return the (B,) mask of problems whose gradient test passes there."""
        ...

    def propose(self, state: State, problem: Problem) -> Trial:
        """Trial steps for every problem at ``state.x`` within ``state.delta``."""
        ...


@runtime_checkable
class Globalisation(Protocol):
    """Accepts or rejects trial steps and tests convergence (see the module doc)."""

    def prepare(self, state: State, fresh: torch.Tensor) -> None:
        """Before ``propose``: set what the step rule reads (e.g. the first radius) for the
        problems in ``fresh``."""
        ...

    def advance(self, state: State, trial: Trial, problem: Problem,
                tol: Tolerances) -> torch.Tensor:
        """Evaluate, accept / reject, update ``state`` in place; return the (B,) mask of problems
        that moved."""
        ...
