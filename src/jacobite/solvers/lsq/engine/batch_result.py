"""The result of a batched least-squares solve: one row per problem.

>>> import torch
>>> from jacobite.solvers.lsq import least_squares
>>> c = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
>>> res = least_squares(lambda x: x - c, torch.zeros(2, 1), batch=True)
>>> res.x.flatten().tolist(), res.success.tolist(), res.status.tolist()
([1.0, 2.0], [True, True], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BatchLeastSquaresResult", "batch_covariance"]


@dataclass
class BatchLeastSquaresResult:
    """What ``jacobite.least_squares(..., batch=True)`` found for each of ``B`` problems.

    Every field holds one row per problem; the meanings are those of
    :class:`~jacobite.solvers.lsq.LeastSquaresResult`, problem by problem.

    Attributes:
        x: ``(B, n)`` solutions, in the working dtype.
        cost: ``(B,)``: ``½ Σ ρ(r²)`` of each problem.
        fun: ``(B, m)`` residuals at ``x``.
        jac: ``(B, m, n)`` Jacobians at ``x`` (of the raw residuals for a robust loss).
        grad: ``(B, n)`` gradients of the cost, ``Jᵀ (ρ' r)``.
        optimality: ``(B,)``: ``‖grad‖∞``, or under bounds the Coleman–Li scaled
            ``‖v ∘ grad‖∞`` (SciPy's measure).
        active_mask: ``(B, n)`` int: −1 / +1 where a variable is on its lower / upper bound.
        status: ``(B,)`` int64: SciPy's codes (0 budget spent, 1 gtol, 2 ftol, 3 xtol, 4 ftol
            and xtol) and jacobite's failures (−3 non-finite Jacobian, −7 residuals and
            Jacobian too far apart in size, −8 a stop far from a minimum, −9 a failed
            Gauss–Newton line search; the table is in docs/solvers.md, "Statuses").
        success: ``(B,)`` bool, ``status > 0``.
        message: one message per problem.
        nfev, njev, nit: ``(B,)`` int64 residual evaluations, Jacobian evaluations and accepted
            steps of each problem (the evaluations of the whole batch are shared, so ``nfev``
            counts those that moved this problem's iteration on).
        method: the method that ran.
        covariance: ``(B, n, n)``: ``σ² (JᵀJ)⁻¹`` with ``σ² = Σ r² / (m − n)`` per problem,
            from the SVD of ``J``; ``inf`` throughout a problem's block where it is not
            determined: ``m <= n``, a robust loss, an active bound or a numerically rank-deficient
            ``J`` (no warning per problem: test ``torch.isinf(cov).any((1, 2))``).
    """

    x: torch.Tensor
    cost: torch.Tensor
    fun: torch.Tensor
    jac: torch.Tensor
    grad: torch.Tensor
    optimality: torch.Tensor
    active_mask: torch.Tensor
    status: torch.Tensor
    success: torch.Tensor
    message: list[str]
    nfev: torch.Tensor
    njev: torch.Tensor
    nit: torch.Tensor
    method: str
    covariance: torch.Tensor = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        """``res["x"]`` as on SciPy's ``OptimizeResult``."""
        return getattr(self, key)

    def __len__(self) -> int:
        """The number of problems."""
        return int(self.x.shape[0])


def batch_covariance(J: torch.Tensor, f: torch.Tensor, determined: torch.Tensor,
                     scale: bool = True) -> torch.Tensor:
    """``σ² V S⁻² Vᵀ`` per problem from ``J = U S Vᵀ`` (``(B, m, n)``), ``σ² = ‖f‖² / (m − n)``
    when ``scale`` (else 1); ``inf`` blocks where ``determined`` (B,) is false, ``m <= n`` with
    ``scale``, or ``J`` is numerically rank deficient.

    >>> J = torch.tensor([[[1.0], [1.0]], [[1.0], [0.0]]], dtype=torch.float64)
    >>> f = torch.tensor([[1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    >>> batch_covariance(J, f, torch.tensor([True, True])).flatten().tolist()
    [1.0, 0.0]
    """
    B, m, n = J.shape
    out = torch.full((B, n, n), torch.inf, dtype=J.dtype, device=J.device)
    if (scale and m <= n) or n == 0:
        return out
    finite = torch.isfinite(J).flatten(1).all(-1)
    Jf = torch.where(finite[:, None, None], J, 0.0)
    _, s, Vh = torch.linalg.svd(Jf, full_matrices=False)
    tol = torch.finfo(J.dtype).eps * max(m, n) * s[:, 0]
    full = (s[:, -1] > tol) & finite & determined & (s[:, 0] > 0)
    safe = torch.where(full[:, None], s, 1.0)
    VS = Vh.mT / safe[:, None, :]
    cov = VS @ VS.mT
    if scale:
        cov = cov * ((f * f).sum(-1) / (m - n))[:, None, None]
    return torch.where(full[:, None, None], cov, out)
