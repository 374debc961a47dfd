"""Nash-MTL: multi-task learning as a bargaining game."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ... import _validate
from ...errors import InvalidOptionError
from ._base import GramianWeightedAggregator, Option, nonnegative, times_pow2

__all__ = ["NashMTL"]


def _nash_weights(Gn: Tensor, beta: Tensor, iters: int = 100) -> Tensor | None:
    """Damped Newton on ``φ(β) = ½βᵀĜβ − Σ log βᵢ`` (``∇φ = 0`` ⇔ ``βᵢ(Ĝβ)ᵢ = 1``), β > 0.

    Returns ``None`` when φ is unbounded below (0 in the convex hull of the rows) or Newton
    stalls."""

    def phi(b: Tensor) -> float:
        return float(0.5 * b @ Gn @ b - b.log().sum())

    for _ in range(iters):
        grad = Gn @ beta - 1.0 / beta
        if float(grad.abs().max()) < 1e-12 * max(1.0, float((1.0 / beta).abs().max())):
            return beta
        H = Gn + torch.diag(1.0 / beta**2)
        sol, info = torch.linalg.solve_ex(H, grad)
        step = -sol
        if int(info) != 0 or not bool(torch.isfinite(step).all()):
            return None
        neg = step < 0
        t = min(1.0, 0.99 * float((-beta[neg] / step[neg]).min())) if bool(neg.any()) else 1.0
        f0, slope = phi(beta), float(grad @ step)
        while t > 1e-12 and phi(beta + t * step) > f0 + 1e-4 * t * slope:
            t *= 0.5
        if t <= 1e-12:
            break
        beta = beta + t * step
    grad = Gn @ beta - 1.0 / beta
    return beta if float(grad.abs().max()) < 1e-8 * float((1.0 / beta).abs().max()) else None


class NashMTL(GramianWeightedAggregator):
    r"""Nash-MTL (Navon et al. 2022): the Nash bargaining solution ``d = Jᵀα`` with ``α > 0``
    solving ``αᵢ (Gα)ᵢ = 1`` for every objective, then clipped to ``‖d‖ ≤ max_norm`` (``0``: no
    clipping). Since ``‖d‖² = αᵀGα = m`` at the solution, the default ``max_norm = 1`` returns a
    unit-length direction for ``m ≥ 2``.

    Solved exactly by damped Newton on the strictly convex ``½αᵀGα − Σ log αᵢ`` (TorchJD runs
    the original sequence of convexified cvxpy problems, stopped at 1e-3), warm-started from the
    previous weights. Stateful like TorchJD's: weights are recomputed every
    ``update_weights_every`` calls and reused in between; ``optim_niter`` caps the Newton
    iterations (× 5); when no solution exists (0 in the convex hull of the rows) the previous
    weights are kept. Call :meth:`reset` between experiments.

    Properties: weighted (``α > 0``), non-conflicting in the sense ``gᵢ·d = 1/αᵢ > 0``. The
    weights scale as ``α(cJ) = α(J)/c`` (c > 0), so the update ``d`` is the same at every scale
    of ``J``, clipped or not; the Newton solve runs on the Gramian normalised by its Frobenius
    norm and is warm-started from the previous *normalised* solution, so that law holds
    exactly, even where ``J Jᵀ`` over- or underflows (it is formed from ``J`` times a power of
    two there).

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> NashMTL(n_tasks=2, max_norm=0.0).weights(J @ J.T)
    tensor([1.0000, 0.5000], dtype=torch.float64)
    """

    differentiable = False
    n_tasks = Option(_validate.positive_int)
    max_norm = Option(nonnegative)
    update_weights_every = Option(_validate.positive_int)
    optim_niter = Option(_validate.positive_int)

    def __init__(self, n_tasks: int, max_norm: float = 1.0, update_weights_every: int = 1,
                 optim_niter: int = 20) -> None:
        self.n_tasks = n_tasks
        self.max_norm = max_norm
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter
        self.reset()

    def reset(self) -> None:
        """Forget the previous weights and the call counter."""
        self.step = 0
        self.prev_alpha = torch.ones(self.n_tasks, dtype=torch.float64)
        self._prev_beta = torch.ones(self.n_tasks, dtype=torch.float64)

    def _params(self) -> dict[str, Any]:
        return {"n_tasks": self.n_tasks, "max_norm": self.max_norm,
                "update_weights_every": self.update_weights_every,
                "optim_niter": self.optim_niter}

    def _weights(self, G: Tensor) -> Tensor:
        return self._weights_at(G, 0)

    def _weights_at(self, G: Tensor, k: int) -> Tensor:
        """``α`` for ``J`` from ``G = (2ᵏJ)(2ᵏJ)ᵀ``: ``β`` solves the normalised problem
        ``βᵢ(Ĝβ)ᵢ = 1`` (``Ĝ = G/‖G‖``, the same for every scale of J), ``α = 2ᵏ β/√‖G‖``."""
        if G.shape[0] != self.n_tasks:
            raise InvalidOptionError(f"NashMTL(n_tasks={self.n_tasks}) got {G.shape[0]} "
                                     "objectives; build it with n_tasks = m (or call reset)")
        G64 = G.detach().cpu().to(torch.float64)
        if self.prev_alpha.shape[0] != self.n_tasks:  # n_tasks was reassigned
            self.reset()
        if self.step % self.update_weights_every == 0:
            peak = float(G64.abs().max())  # ‖G‖ of entries near 1e300 would overflow
            nf = float(torch.linalg.norm(G64 / peak)) * peak if peak > 0 else 0.0
            if nf > 0:
                start = self._prev_beta.clamp_min(1e-8)
                beta = _nash_weights(G64 / nf, start, 5 * self.optim_niter)
                if beta is not None:
                    self._prev_beta = beta
                    self.prev_alpha = times_pow2(beta / nf**0.5, k)
        self.step += 1
        alpha = self.prev_alpha.clone()
        if self.max_norm > 0:
            scaled = times_pow2(alpha, -k)  # the weights of 2ᵏJ, whose Gramian G is
            norm = float(scaled @ G64 @ scaled) ** 0.5
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha.to(dtype=G.dtype, device=G.device)
