"""Levenberg–Marquardt for :class:`~jacobite.nn.JENNRegressor` on small problems.

The Sobolev loss is a sum of squares: with residuals ``r`` (values, and known partials scaled
by ``√(λ/count)``) and the L2 penalty ``½ Σ c_i θ_i²``, a step solves
``(JᵀJ + diag(c/2 + μ)) δ = −(Jᵀr + c/2 ⊙ θ)`` with ``J = ∂r/∂θ`` — in the residuals' space by
the Woodbury identity when there are fewer residuals than parameters, so a step costs one
``R × R`` solve. The damping ``μ`` follows the ratio of actual to predicted decrease
(Nielsen's rule). On a few dozen samples this reaches the accuracy of hundreds of L-BFGS
steps in a few dozen.

>>> import torch
>>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
>>> b = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
>>> x, why = levenberg_marquardt(lambda v: (A @ v - b, lambda: A),
...                              torch.zeros(2, dtype=torch.float64),
...                              torch.zeros(2, dtype=torch.float64), 50)
>>> torch.allclose(x, torch.linalg.lstsq(A, b).solution), why
(True, 'converged')
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["levenberg_marquardt"]

#: ``residuals(θ) -> (r (R,), jacobian)``; ``jacobian()`` gives ``∂r/∂θ`` ``(R, P)`` at that
#: ``θ`` (called only for accepted points, so a rejected trial costs one evaluation)
Residuals = Callable[[torch.Tensor], tuple[torch.Tensor, Callable[[], torch.Tensor]]]


def _step(J: torch.Tensor, g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``−(JᵀJ + diag(d))⁻¹ g`` (``d > 0``), by whichever of the two systems is smaller."""
    R, P = J.shape
    if R < P:  # Woodbury: (D + JᵀJ)⁻¹ = D⁻¹ − D⁻¹Jᵀ (I + J D⁻¹ Jᵀ)⁻¹ J D⁻¹
        u = g / d
        Jd = J / d
        small = torch.eye(R, dtype=J.dtype, device=J.device) + Jd @ J.T
        return -(u - Jd.T @ torch.linalg.solve(small, J @ u))
    return -torch.linalg.solve(J.T @ J + torch.diag(d), g)


def levenberg_marquardt(residuals: Residuals, x: torch.Tensor, penalty: torch.Tensor,
                        max_iter: int,
                        callback: Callable[[torch.Tensor, float], bool] | None = None
                        ) -> tuple[torch.Tensor, str]:
    """Minimise ``‖r(θ)‖² + ½ Σ penalty_i θ_i²`` from ``x``; ``callback(θ, f)`` after each
    accepted step may return True to stop. Returns the last point and why it stopped:
    ``"max_iter"``, ``"callback"`` or ``"converged"`` (no step decreases the objective)."""
    h = 0.5 * penalty  # F = ‖r‖² + Σ h θ²: gradient 2(Jᵀr + h θ), model Hessian 2(JᵀJ + h)
    r, jacobian = residuals(x)
    J = jacobian()
    f = float(r @ r) + float((h * x * x).sum())
    mu = 1e-3 * max(float((J * J).sum(0).max()), 1e-12)
    nu = 2.0
    for _ in range(max_iter):
        g = J.T @ r + h * x
        accepted = False
        while mu < 1e16:
            delta = _step(J, g, h + mu)
            x_new = x + delta
            r_new, jacobian = residuals(x_new)
            f_new = float(r_new @ r_new) + float((h * x_new * x_new).sum())
            Jd = J @ delta
            predicted = -(2 * float(g @ delta) + float(Jd @ Jd)
                          + float((h * delta * delta).sum()))
            rho = (f - f_new) / predicted if predicted > 0 else -1.0
            if rho > 0:
                mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                accepted = True
                break
            mu *= nu
            nu *= 2.0
        if not accepted:
            return x, "converged"
        x, r, J, f = x_new, r_new, jacobian(), f_new
        if callback is not None and callback(x, f):
            return x, "callback"
    return x, "max_iter"
