"""The posterior precision ``Λ = G + δ I`` of a Laplace approximation, kept in the structure of
its curvature ``G`` so that ``log det Λ`` and ``Λ⁻¹ V`` are cheap for every prior precision
``δ`` (one number per group of parameters, a group being a layer):

- :class:`KronPosterior`: per layer ``G ⊗ A``, the factors eigendecomposed once
  (``G = Q_G Λ_G Q_Gᵀ``, ``A = Q_A Λ_A Q_Aᵀ``), so ``Λ = (Q_G ⊗ Q_A)(Λ_G ⊗ Λ_A + δ)(…)ᵀ``;
- :class:`DiagPosterior`: ``diag(g) + δ``;
- :class:`FullPosterior`: a dense ``G`` eigendecomposed once (a Cholesky factorisation for
  each ``δ`` that differs between groups).

>>> import torch
>>> post = DiagPosterior(torch.tensor([1.0, 3.0]), torch.tensor([0, 0]), ["layer"])
>>> post.logdet(torch.tensor([1.0])), post.inv_mm(torch.ones(2, 1), torch.tensor([1.0]))[:, 0]
(tensor(2.0794), tensor([0.5000, 0.2500]))
"""

from __future__ import annotations

import torch

from ..operators import DenseOperator, DiagonalOperator, JacobianOperator
from ._kfac_stats import Layer
from .kfac import KFACOperator, _Block

__all__ = ["DiagPosterior", "FullPosterior", "KronPosterior"]


class KronPosterior:
    """One ``G ⊗ A + δ_l I`` block per layer, on the layer's slice of the parameter vector."""

    def __init__(self, factors: list[tuple[Layer, torch.Tensor, torch.Tensor]],
                 size: int) -> None:
        self.size = size
        self.names = [L.name for L, _, _ in factors]
        self.blocks = [_Block(L, G, A, 0.0) for L, G, A in factors]
        self.eig = []
        for _, G, A in factors:
            lg, qg = torch.linalg.eigh(G)
            la, qa = torch.linalg.eigh(A)
            # Gram matrices: eigenvalues below zero are rounding
            self.eig.append((lg.clamp_min(0), qg, la.clamp_min(0), qa))
        self.group_sizes = [G.shape[0] * A.shape[0] for _, G, A in factors]

    def _lam(self, i: int, delta: torch.Tensor) -> torch.Tensor:
        lg, _, la, _ = self.eig[i]
        return torch.outer(lg, la) + delta[i]

    def logdet(self, delta: torch.Tensor) -> torch.Tensor:
        return sum((self._lam(i, delta).log().sum() for i in range(len(self.eig))),
                   start=delta.new_zeros(()))

    def inv_mm(self, V: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(V)
        for i, b in enumerate(self.blocks):
            _, qg, _, qa = self.eig[i]
            lam = self._lam(i, delta)

            def apply(M: torch.Tensor, qg: torch.Tensor = qg, qa: torch.Tensor = qa,
                      lam: torch.Tensor = lam) -> torch.Tensor:
                k = M.shape[1]
                W = torch.einsum("ji,jlk,lm->imk", qg, M.reshape(qg.shape[0], qa.shape[0], k),
                                 qa)
                W = W / lam[..., None]
                return torch.einsum("ij,jlk,ml->imk", qg, W, qa).reshape(-1, k)

            b.apply(apply, V, out)
        return out

    def precision(self, delta: torch.Tensor) -> JacobianOperator:
        blocks = [_Block(b.layer, b.K.A, b.K.B, float(delta[i]))
                  for i, b in enumerate(self.blocks)]
        ref = self.blocks[0].K
        return KFACOperator(self.size, blocks, ref.dtype, ref.device)


class DiagPosterior:
    """``diag(g) + δ_group``: ``group[i]`` is the group of parameter ``i``."""

    def __init__(self, g: torch.Tensor, group: torch.Tensor, names: list[str]) -> None:
        self.g, self.group, self.names, self.size = g.clamp_min(0), group, names, g.numel()
        self.group_sizes = torch.bincount(group, minlength=len(names)).tolist()

    def logdet(self, delta: torch.Tensor) -> torch.Tensor:
        return (self.g + delta[self.group]).log().sum()

    def inv_mm(self, V: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return V / (self.g + delta[self.group])[:, None]

    def precision(self, delta: torch.Tensor) -> JacobianOperator:
        return DiagonalOperator(self.g + delta[self.group])


class FullPosterior:
    """A dense ``G + diag(δ_group)``: by the eigendecomposition of ``G`` when every group has
    the same ``δ``, else by a Cholesky factorisation per ``δ`` (cached for the last one)."""

    def __init__(self, G: torch.Tensor, group: torch.Tensor, names: list[str]) -> None:
        self.G, self.group, self.names, self.size = G, group, names, G.shape[0]
        self.group_sizes = torch.bincount(group, minlength=len(names)).tolist()
        lam, self.Q = torch.linalg.eigh(G)
        self.lam = lam.clamp_min(0)
        self._chol: tuple[torch.Tensor, torch.Tensor] | None = None

    def _uniform(self, delta: torch.Tensor) -> bool:
        return bool((delta == delta[0]).all())

    def _cholesky(self, delta: torch.Tensor) -> torch.Tensor:
        if self._chol is None or not torch.equal(self._chol[0], delta):
            M = self.G + torch.diag(delta[self.group])
            self._chol = (delta.clone(), torch.linalg.cholesky(M))
        return self._chol[1]

    def logdet(self, delta: torch.Tensor) -> torch.Tensor:
        if self._uniform(delta):
            return (self.lam + delta[0]).log().sum()
        return 2 * self._cholesky(delta).diagonal().log().sum()

    def inv_mm(self, V: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        if self._uniform(delta):
            return self.Q @ ((self.Q.T @ V) / (self.lam + delta[0])[:, None])
        return torch.cholesky_solve(V, self._cholesky(delta))

    def precision(self, delta: torch.Tensor) -> JacobianOperator:
        return DenseOperator(self.G + torch.diag(delta[self.group]), tags=("symmetric", "psd"),
                             check_tags=False)


Posterior = KronPosterior | DiagPosterior | FullPosterior
