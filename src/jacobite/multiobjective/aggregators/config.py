"""ConFIG: the conflict-free direction of equal cosines with every gradient."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import Aggregator, Option, pref_weights, vector

__all__ = ["ConFIG"]


class ConFIG(Aggregator):
    r"""ConFIG (Liu et al. 2024, Equation 2). With unit rows ``ûᵢ = gᵢ/‖gᵢ‖`` (zero rows stay
    zero) and the preference vector ``p`` (default all ones)::

        b = Û⁺ p,   e = b / ‖b‖,   d = (Σᵢ gᵢ·e) e,

    so ``e`` makes cosines proportional to ``p`` with every gradient and ``d`` has the length of
    the projected sum. Works on ``J`` itself (the pseudo-inverse of the unit rows, in float64, with
singular values below ``max(m, n)·eps`` of J's dtype taken as zero).

    Properties: non-conflicting when ``p > 0`` and the rows are linearly independent
    (``gᵢ·e ∝ pᵢ‖gᵢ‖``); linear under scaling (``A(cJ) = c A(J)``, ``c > 0``); weighted in the
    sense that ``d`` lies in the row space (``d = Jᵀw``), though computed from ``J`` itself.

    >>> import torch
    >>> ConFIG()(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    tensor([1.0000, 1.0000], dtype=torch.float64)
    """

    pref_vector = Option(vector)
    _str_option = "pref_vector"

    def __init__(self, pref_vector: Tensor | None = None) -> None:
        self.pref_vector = pref_vector

    def _params(self) -> dict[str, Any]:
        return {"pref_vector": self.pref_vector}

    def forward(self, J: Tensor) -> Tensor:
        p = pref_weights(self.pref_vector, J[:, :1].T.expand(J.shape[0], J.shape[0]), 1.0)
        # each row divided by its largest entry first, so that its norm neither overflows (rows
        # near 1e300) nor underflows (rows near 1e-300); the unit row does not depend on that
        # scale, which is held constant for autograd
        scale = J.detach().abs().amax(dim=1, keepdim=True)
        scaled = J / torch.where(scale > 0, scale, 1.0)
        norms = scaled.norm(dim=1, keepdim=True)
        units = torch.where(norms > 0, scaled / torch.where(norms > 0, norms, 1.0), 0.0)
        # the pseudo-inverse in float64, with singular values below J's own precision
        # (max(m, n)·eps of its dtype) treated as zero: rows that are dependent up to J's
        # round-off count as dependent, the same way whatever their order
        rtol = max(units.shape) * torch.finfo(J.dtype).eps
        pinv = torch.linalg.pinv(units.to(torch.float64), rtol=rtol)
        p64 = p.to(torch.float64)
        b = pinv @ p64
        # where the weighted unit rows cancel (opposite gradients with balanced weights) b is
        # J's round-off, not a direction: the update is zero rather than amplified noise
        noise = 8 * rtol * torch.linalg.matrix_norm(pinv, ord=2) * p64.norm()
        if not torch.compiler.is_compiling() and b.device.type != "meta" \
                and bool(b.norm() <= noise):
            return (J * 0).sum(dim=0)  # zero, still a function of J for autograd
        e = (b / b.norm().clamp_min(1e-12)).to(J.dtype)
        return (J @ e).sum() * e
