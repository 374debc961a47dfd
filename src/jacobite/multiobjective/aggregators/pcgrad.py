"""PCGrad: gradient surgery by pairwise projections, in random order."""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import UnsupportedOperationError
from ._base import GramianWeightedAggregator

__all__ = ["PCGrad"]


class PCGrad(GramianWeightedAggregator):
    r"""PCGrad (Yu et al. 2020, Algorithm 1). For each row ``i`` start from ``gᵢ`` and, for the
    other rows ``j`` in a random order, remove the component along ``gⱼ`` whenever it conflicts::

        g ← g − min(0, g·gⱼ) / ‖gⱼ‖² · gⱼ,        d = Σᵢ gᵢ^PC.

    Every ``gᵢ^PC`` is a combination ``Jᵀcᵢ`` and ``g·gⱼ = (G cᵢ)ⱼ``, so only the Gramian is
    needed; the m chains run side by side (one vectorised step per position in the
    permutations). The permutations are drawn with ``torch.randperm(m)`` for ``i = 0, …, m−1``
    from torch's global CPU generator, the same draws as TorchJD's ``PCGrad``: the same seed gives
    the same update.

    Properties: linear under scaling, weighted (``w = Σᵢ cᵢ``); non-conflicting for ``m = 2``
    only.

    >>> import torch
    >>> J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)
    >>> PCGrad()(J)
    tensor([0.5000, 1.5000], dtype=torch.float64)
    """

    def _weights(self, G: Tensor) -> Tensor:
        device, m = G.device, G.shape[0]
        Gc = G.cpu()
        try:
            perms = torch.stack([torch.randperm(m) for _ in range(m)])  # (m chains, positions)
        except RuntimeError as exc:
            if "randomness" not in str(exc):
                raise
            raise UnsupportedOperationError(
                "PCGrad draws random orders, which a vmap-based transform (vmap, jacfwd) cannot "
                "batch; differentiate it with torch.autograd, torch.func.grad or jacrev, or "
                "aggregate in a Python loop") from exc
        C = torch.eye(m, dtype=G.dtype)  # row i: coefficients of chain i
        rows = torch.arange(m)
        diag = Gc.diagonal()
        for s in range(m):
            j = perms[:, s]
            inner = (Gc[j] * C).sum(1)  # g_i^PC · g_j
            step = torch.where((j != rows) & (inner < 0), inner / diag[j], 0.0)
            C = C.index_put((rows, j), -step, accumulate=True)  # out of place: autograd
        return C.sum(0).to(device)
