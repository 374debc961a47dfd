"""Symmetric test matrices with a chosen spectrum, shared by the eigenvalue and spectral-density
tests.

>>> A = with_spectrum(torch.tensor([1.0, 2.0, 5.0]))
>>> torch.linalg.eigvalsh(A)
tensor([1.0000, 2.0000, 5.0000], dtype=torch.float64)
"""

from __future__ import annotations

import torch


def with_spectrum(lam: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``Q diag(lam) Qᵀ`` in float64 for a random orthogonal ``Q``, symmetrised."""
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(len(lam), len(lam), dtype=torch.float64, generator=g))[0]
    A = Q @ torch.diag(lam.to(torch.float64)) @ Q.T
    return (A + A.T) / 2
