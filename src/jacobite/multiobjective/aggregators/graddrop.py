"""GradDrop: gradient sign dropout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ... import _validate
from ._base import Aggregator, Option, check_vector, vector

__all__ = ["GradDrop"]


def _identity(P: Tensor) -> Tensor:
    return P


class GradDrop(Aggregator):
    r"""GradDrop (Chen et al. 2020, Algorithm 1 lines 10–15). Per coordinate, the positive-sign
    purity ``P = ½(1 + Σᵢ Jᵢ / Σᵢ |Jᵢ|)`` and one uniform draw ``U``; row ``i`` keeps its
    positive entries where ``f(P) > U`` and its negative ones where ``f(P) < U``::

        d = Σᵢ (ℓᵢ + (1 − ℓᵢ) Mᵢ) ⊙ gᵢ,

    with leaks ``ℓ`` (default 0) and ``f`` increasing (default identity). ``U`` is one
    ``torch.rand(n)`` from torch's global generator in J's dtype and device — TorchJD's draw, so
    the same seed gives the same update. Coordinates where every row is 0 get 0.

    Needs ``J`` (not Gramian-weighted). Properties: none of non-conflicting, linear, weighted
    (it is a random, sign-consistent mask of the sum).

    >>> import torch
    >>> GradDrop()(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # no sign conflict: the sum
    tensor([4., 6.])
    """

    f = Option(_validate.callable_)
    leak = Option(vector)
    _str_option = "leak"

    def __init__(self, f: Callable[[Tensor], Tensor] = _identity,
                 leak: Tensor | None = None) -> None:
        self.f = f
        self.leak = leak

    def _params(self) -> dict[str, Any]:
        return {"f": self.f, "leak": self.leak}

    def forward(self, J: Tensor) -> Tensor:
        m = J.shape[0]
        leak = (torch.zeros(m, dtype=J.dtype, device=J.device) if self.leak is None
                else check_vector(self.leak, "leak", m).to(dtype=J.dtype, device=J.device))
        total = J.abs().sum(0)
        P = 0.5 * (1.0 + J.sum(0) / torch.where(total > 0, total, 1.0))
        fP = self.f(P)
        U = torch.rand(P.shape, dtype=J.dtype, device=J.device)
        mask = ((fP > U)[None, :] & (J > 0)) | ((fP < U)[None, :] & (J < 0))
        return ((leak[:, None] + (1 - leak[:, None]) * mask) * J).sum(0)
