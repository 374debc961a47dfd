"""Statuses, messages and the convergence tests of the least-squares engine, per problem.

Statuses follow SciPy's ``least_squares`` (1 gtol, 2 ftol, 3 xtol, 4 ftol and xtol, 0 the
evaluation budget, −2 stopped by the callback) with jacobite's failures at −3 to −9; SciPy's −1
(improper input) is never returned, since bad input raises. :data:`RUNNING` marks a problem
still iterating and is never reported. A status > 0 is a success.

Every test is a (B,) mask computed for all problems at once, with tolerances held per problem
(:class:`Tolerances`) and floored at the machine epsilon of the dtype the residuals are computed
in (1.2e-7 for float32): a tolerance below the rounding of the residuals cannot be met.

A rejected step is never counted as convergence: a problem whose cost did not change because
its step was rejected has not shown that it is at a minimum. The cost test therefore needs the
model's own *predicted* reduction to be below ``ftol`` (the model says nothing is left to gain),
and the step test a radius or an accepted step below ``xtol``; an unchanged cost alone stops
nothing.

>>> import torch
>>> tol = Tolerances.make(1e-20, 1e-15, 1e-15, 2, eps=2.0 ** -52, max_nfev=100)
>>> tol.ftol.tolist() == [2.0 ** -52] * 2
True
>>> settle(torch.tensor([RUNNING, 1]), torch.tensor([True, True]), XTOL).tolist()
[3, 1]
>>> MESSAGES[GTOL]
'gtol termination condition is satisfied'
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "BOTH",
    "CALLBACK",
    "EPS64",
    "FTOL",
    "GTOL",
    "KINK",
    "LINE_SEARCH",
    "MAX_NFEV",
    "MESSAGES",
    "NONFINITE_JAC",
    "PLATEAU",
    "RANGE",
    "RUNNING",
    "SADDLE",
    "STALL",
    "XTOL",
    "Tolerances",
    "converged_on",
    "gradient_test",
    "messages",
    "settle",
]

EPS64 = float(torch.finfo(torch.float64).eps)  #: float64's machine epsilon

RUNNING = -100  #: still iterating (never reported)
MAX_NFEV = 0  #: the evaluation budget is spent
GTOL = 1  #: the gradient test passed (or the cost is zero)
FTOL = 2  #: the cost test passed
XTOL = 3  #: the step test passed
BOTH = 4  #: the cost and step tests passed
CALLBACK = -2  #: the user's callback asked to stop (SciPy's code)
NONFINITE_JAC = -3  #: the Jacobian is not finite at the current point
KINK = -4  #: stopped at a kink (see ``_audit``)
SADDLE = -5  #: stopped at a saddle point or maximum
PLATEAU = -6  #: stopped on a plateau
RANGE = -7  #: residuals and Jacobian too far apart in size for float64's squares
STALL = -8  #: stalled far from a minimum
LINE_SEARCH = -9  #: Gauss–Newton's line search found no decrease

MESSAGES = {
    -9: "the line search found no decrease along the Gauss–Newton direction; use method='lm'",
    -8: "stalled far from a minimum: the trust region shrank until its steps no longer changed "
        "the residuals (below their rounding), while the Gauss–Newton model still removes "
        "most of the cost; pass x_scale near the size of the solution (e.g. x_scale=1e20), "
        "start nearer to it, or rescale the problem",
    -7: "the residuals and the Jacobian differ in size by more than float64's range holds "
        "squared (about 2^960), so the convergence tests cannot be trusted; rescale the problem: "
        "solve for the unknowns in units near their expected size (x = s·y) and divide the "
        "residuals by their typical size",
    -6: "stopped on a plateau: the Jacobian is zero and the cost does not change nearby, so the "
        "residuals do not depend on x here (a relu, clamp or step that is off); start elsewhere "
        "or smooth the residual",
    -5: "stopped at a saddle point or maximum of the cost: the gradient vanishes but the cost "
        "falls along a direction the Gauss–Newton model cannot see; start elsewhere or raise "
        "max_nfev",
    -4: "stopped at a kink: the residuals are not differentiable here, AD's gradient (a "
        "subgradient) vanishes but the cost falls nearby, so x is not a minimum; start "
        "elsewhere, raise max_nfev or smooth the residual (e.g. sqrt(p**2 + eps**2) for |p|)",
    -2: "stopped by the callback (it raised StopIteration or returned True)",
    -3: "the Jacobian is not finite at the current point; the last finite point is returned",
    0: "the maximum number of function evaluations is exceeded; raise max_nfev",
    1: "gtol termination condition is satisfied",
    2: "ftol termination condition is satisfied",
    3: "xtol termination condition is satisfied",
    4: "both ftol and xtol termination conditions are satisfied",
}


@dataclass(frozen=True)
class Tolerances:
    """Per-problem stopping tolerances, (B,) tensors, and the working dtype's ``eps``.

    ``ftol`` and ``xtol`` are floored at ``eps``; ``gtol`` is kept as given (the gradient test
    itself compares with ``max(gtol, eps)`` where it is a cosine). ``max_nfev`` is the residual
    evaluation budget per problem."""

    ftol: torch.Tensor
    xtol: torch.Tensor
    gtol: torch.Tensor
    max_nfev: torch.Tensor
    eps: float

    @classmethod
    def make(cls, ftol: float | torch.Tensor, xtol: float | torch.Tensor,
             gtol: float | torch.Tensor, B: int, *, eps: float,
             max_nfev: int | torch.Tensor, dtype: torch.dtype = torch.float64,
             device: torch.device | str | None = None) -> Tolerances:
        """Tolerances for ``B`` problems from scalars or (B,) tensors (already validated)."""
        def per(v: float | torch.Tensor, floor: float) -> torch.Tensor:
            t = torch.as_tensor(v, dtype=dtype, device=device).expand(B)
            return t.clamp_min(floor) if floor > 0 else t.clone()

        nf = torch.as_tensor(max_nfev, dtype=torch.int64, device=device).expand(B).clone()
        return cls(per(ftol, eps), per(xtol, eps), per(gtol, 0.0), nf, eps)


def settle(status: torch.Tensor, mask: torch.Tensor, code: int | torch.Tensor) -> torch.Tensor:
    """``status`` with ``code`` written where ``mask`` holds and the problem is still RUNNING (a
    final status is never overwritten)."""
    return torch.where(mask & (status == RUNNING), code, status)


def converged_on(ok_f: torch.Tensor, ok_x: torch.Tensor) -> torch.Tensor:
    """The SciPy status of the passed tests: 4 both, 2 the cost, 3 the step, RUNNING none.

    >>> converged_on(torch.tensor([True, True, False, False]),
    ...              torch.tensor([True, False, True, False])).tolist()
    [4, 2, 3, -100]
    """
    return torch.where(ok_f, torch.where(ok_x, BOTH, FTOL),
                       torch.where(ok_x, XTOL, RUNNING))


def gradient_test(ft: torch.Tensor, g: torch.Tensor, cn: torch.Tensor, gtol: torch.Tensor,
                  eps: float) -> torch.Tensor:
    """MINPACK's gtol test, per problem: the largest cosine between the residual vector
    ``ft`` (B, m) and a column of the model Jacobian (column norms ``cn`` (B, n), gradient
    ``g = J̃ᵀ ft``) is at most
    ``max(gtol, eps)``, or the residuals are zero. A zero column has cosine 0.

    >>> f = torch.tensor([[1.0, 0.0]])
    >>> gradient_test(f, f, torch.ones(1, 2), torch.tensor([1e-8]), 2.0 ** -52).tolist()
    [False]
    """
    fnorm = torch.linalg.vector_norm(ft, dim=-1)
    den = cn * fnorm[:, None]
    cos = torch.where(den > 0, g.abs() / torch.where(den > 0, den, 1.0), 0.0)
    gnorm = cos.amax(-1) if cos.shape[-1] else cos.new_zeros(cos.shape[0])
    return (gnorm <= gtol.clamp_min(eps)) | (fnorm == 0)


def messages(status: torch.Tensor) -> list[str]:
    """The message of each problem's status (a RUNNING problem reads as out of budget)."""
    return [MESSAGES.get(int(s), MESSAGES[MAX_NFEV]) for s in status.tolist()]
