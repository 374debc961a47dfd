"""The result of :func:`jacobite.least_squares`, SciPy-style, with the covariance of the estimate.

>>> import torch
>>> from jacobite.solvers.lsq import least_squares
>>> res = least_squares(lambda p: torch.stack([p[0] - 1.0, p[1] + 2.0]), [0.0, 0.0])
>>> res.x.tolist(), res.cost, res.success
([1.0, -2.0], 0.0, True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import JacobiteWarning

__all__ = ["LeastSquaresResult", "covariance"]


@dataclass
class LeastSquaresResult:
    """What :func:`jacobite.least_squares` found (the fields of SciPy's ``OptimizeResult``).

    Attributes:
        x: the solution, shaped like ``x0``, in the working dtype (float64 by default).
        cost: ``½ Σ ρ(r²)`` at ``x`` (``½‖r‖²`` for the linear loss), as SciPy reports it.
        fun: the residuals at ``x`` (flat, length ``m``).
        jac: the ``m × n`` Jacobian at ``x`` (a dense tensor, or a SciPy CSR matrix when the
            Jacobian is sparse); for a robust loss, the Jacobian of the raw residuals.
        grad: the gradient of the cost, ``Jᵀ (ρ' r)``.
        optimality: the first-order optimality measure, SciPy's: ``‖grad‖∞``, or under bounds the
            ∞-norm of the Coleman–Li scaled gradient ``‖v ∘ grad‖∞``.
        active_mask: −1 / +1 where a variable sits on its lower / upper bound, 0 where free.
        nfev: residual evaluations (line searches, rejected steps and geodesic accelerations
            included).
        njev: Jacobian evaluations.
        status: SciPy's codes 0 (``max_nfev`` reached), 1 (gtol), 2 (ftol), 3 (xtol), 4 (ftol
            and xtol), −2 (stopped by the callback); and −3 non-finite Jacobian, and
            three stops where the gradient vanishes at no minimum: −4 a kink (the residuals are
            not differentiable and the cost falls nearby), −5 a saddle point or maximum of the
            cost, −6 a plateau (``J = 0`` and the cost flat nearby); −7 residuals and
            Jacobian too far apart in size for float64 (rescale the problem), −8 a stall far
            from a minimum (steps below the residuals' rounding; pass ``x_scale``), −9 failed
            line search (Gauss–Newton: no decrease along its direction). Residuals
            of any size are solved as ``2^-e r`` (exact), and ``cost``, ``fun``, ``jac`` and
            ``grad`` are those of ``r`` itself (``inf`` where they pass float64's range). A
            positive status is given only where the cost is zero, or the solver moved to a
            point with a full-rank Jacobian, or probes of the cost around the point find
            nothing lower (then a kink or saddle that was left behind is named in
            ``message``); −4 and −5 are reported only when ``max_nfev`` or the number of
            restarts stops the solver.
        message: why it stopped, in words.
        success: ``status > 0``: a minimum as far as the local tests and probes can tell.
        method: the method that ran (``"lm"``, ``"trf"`` or ``"gauss-newton"``).
        nit: accepted steps.
        jac_mode: how the Jacobians were computed: ``"dense"``, ``"sparse"`` or ``"callable"``
            (``jac="auto"`` records its choice here).
        covariance: ``σ² (JᵀJ)⁻¹`` with ``σ² = Σ r² / (m − n)`` (SciPy's ``curve_fit``
            convention), from the SVD of ``J`` (``JᵀJ`` is never formed); ``None`` when it is not
            meaningful: ``m <= n``, a robust loss, a sparse Jacobian, or active bounds. Where
            ``J`` is numerically rank deficient, the parameters the data do not determine have
            variance ``inf`` and the others their finite one (see :func:`covariance`; with a
            :class:`JacobiteWarning`).
    """

    x: torch.Tensor
    cost: float
    fun: torch.Tensor
    jac: Any
    grad: torch.Tensor
    optimality: float
    active_mask: torch.Tensor
    nfev: int
    njev: int
    status: int
    message: str
    success: bool
    method: str
    nit: int
    covariance: torch.Tensor | None = field(default=None, repr=False)
    jac_mode: str = "dense"

    def __getitem__(self, key: str) -> Any:
        """``res["x"]`` works as on SciPy's ``OptimizeResult``."""
        return getattr(self, key)


def covariance(J: np.ndarray, f: np.ndarray, scale: bool = True,
               warn: bool = True) -> np.ndarray | None:
    """``σ² (JᵀJ)⁻¹`` from ``J = U S Vᵀ`` as ``σ² V S⁻² Vᵀ`` (σ² = ‖f‖²/(m − n) when ``scale``,
    else 1); ``None`` when ``J`` is not finite or, with ``scale``, ``m <= n`` (no σ² estimate).

    A rank-deficient ``J`` (singular values at or below ``eps · max(m, n) · s₀``, SciPy's cut)
    gives the limit of ``σ² (JᵀJ + εI)⁻¹`` as ``ε → 0``: the pseudo-inverse part, plus
    ``±inf`` wherever the projector ``N`` onto the null space of ``J`` has an entry (``N_ij``
    above ``√eps``). A parameter the data do not determine has variance ``inf``; one they do
    keeps its finite variance. That comes with a :class:`JacobiteWarning` naming the parameters.

    >>> import numpy as np
    >>> covariance(np.array([[1.0], [1.0]]), np.array([1.0, -1.0])).tolist()
    [[1.0]]
    >>> J = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])  # the second parameter is free
    >>> covariance(J, np.array([1.0, 0.0, -1.0]), warn=False).tolist()
    [[0.142857142857, 0.0], [0.0, inf]]
    """
    m, n = J.shape
    if scale and m <= n:
        return None
    if not np.all(np.isfinite(J)):
        return None
    _, s, Vt = np.linalg.svd(J, full_matrices=False)
    eps = np.finfo(float).eps
    keep = s > eps * max(m, n) * (s[0] if s.size else 0.0)
    Vk = Vt[keep]
    with np.errstate(over="ignore"):  # a variance past float64 (residuals of 1e200) is inf
        VS = Vk.T / s[keep]
        cov = VS @ VS.T
        if scale:
            cov *= float(f @ f) / (m - n)
    if Vk.shape[0] < n:
        null = np.eye(n) - Vk.T @ Vk  # the projector onto the null space of J
        unknown = np.abs(null) > np.sqrt(eps)
        cov[unknown] = np.copysign(np.inf, null[unknown])
        if warn:
            free = np.flatnonzero(np.diag(unknown)).tolist()
            warnings.warn(f"the Jacobian at the solution is rank deficient: the data do not "
                          f"determine the parameters {free} (their variance is inf); fix or "
                          "remove them, or add data that depend on them", JacobiteWarning,
                          stacklevel=3)
    return cov
