"""Aligned-MTL: align the gradients by making their Gramian's condition number one."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ._base import GramianWeightedAggregator, Option, one_of, pref_weights, vector

__all__ = ["AlignedMTL"]

#: The singular value the aligned gradients are scaled to: the smallest, the median or the RMS.
ScaleMode = Literal["min", "median", "rmse"]
_SCALE_MODES: tuple[ScaleMode, ...] = ("min", "median", "rmse")


class AlignedMTL(GramianWeightedAggregator):
    r"""Aligned-MTL (Senushkin et al. 2023, Algorithm 1). With ``G = V Λ Vᵀ`` restricted to its
    ``r`` eigenvalues above ``λ_max · m · eps``::

        B = √σ · V Λ^{-1/2} Vᵀ,   w = B p,   d = Jᵀ w,

    where ``p`` is the preference vector (default ``1/m``) and ``σ`` is the smallest (``"min"``,
    default), median (``"median"``, lower median) or mean (``"rmse"``) kept eigenvalue;
    ``B = I`` when ``G = 0``. The rows of ``B J`` are orthogonal with equal norms ``√σ``.

    Properties: linear under scaling, weighted; not non-conflicting in general.

    >>> import torch
    >>> AlignedMTL()(torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64))
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """

    pref_vector = Option(vector)
    _str_option = "pref_vector"
    scale_mode = Option(one_of(*_SCALE_MODES))

    def __init__(self, pref_vector: Tensor | None = None, scale_mode: ScaleMode = "min") -> None:
        self.pref_vector = pref_vector
        self.scale_mode = scale_mode

    def _params(self) -> dict[str, Any]:
        return {"pref_vector": self.pref_vector, "scale_mode": self.scale_mode}

    def _weights(self, G: Tensor) -> Tensor:
        p = pref_weights(self.pref_vector, G, None)
        lam, V = torch.linalg.eigh(G, UPLO="U")
        tol = lam.max() * G.shape[0] * torch.finfo(G.dtype).eps
        keep = lam > tol
        if not bool(keep.any()):
            return p
        lam, V = lam[keep], V[:, keep]
        if self.scale_mode == "min":
            sigma = lam.min()
        elif self.scale_mode == "median":
            sigma = lam.median()
        else:
            sigma = lam.mean()
        return sigma.sqrt() * (V @ ((V.T @ p) / lam.sqrt()))
