"""The posterior precision ``Λ = G + δ I`` of a Laplace approximation, kept in the structure of
its curvature ``G`` so that ``log det Λ`` and ``J Λ⁻¹ Jᵀ`` are cheap for every prior precision
``δ`` (one number per group of parameters, a group being a layer):

- :class:`KronPosterior`: per layer ``G ⊗ A``, the factors eigendecomposed once
  (``G = Q_G Λ_G Q_Gᵀ``, ``A = Q_A Λ_A Q_Aᵀ``), so ``Λ = (Q_G ⊗ Q_A)(Λ_G ⊗ Λ_A + δ)(…)ᵀ``;
- :class:`DiagPosterior`: ``diag(g) + δ``;
- :class:`FullPosterior`: a dense ``G`` eigendecomposed once (a Cholesky factorisation for
  each ``δ`` that differs between groups).

>>> import torch
>>> post = DiagPosterior(torch.tensor([1.0, 3.0]), torch.tensor([0, 0]), ["layer"])
>>> J = torch.tensor([[[1.0, 1.0]]])  # one sample, one output
>>> post.logdet(torch.tensor([1.0])), post.variance(J, torch.tensor([1.0]), diagonal=True)
(tensor(2.0794), tensor([[0.7500]]))
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
        self.layers = [L for L, _, _ in factors]

    def _lam(self, i: int, delta: torch.Tensor) -> torch.Tensor:
        lg, _, la, _ = self.eig[i]
        return torch.outer(lg, la) + delta[i]

    def logdet(self, delta: torch.Tensor) -> torch.Tensor:
        return sum((self._lam(i, delta).log().sum() for i in range(len(self.eig))),
                   start=delta.new_zeros(()))

    def variance(self, J: torch.Tensor, delta: torch.Tensor, diagonal: bool) -> torch.Tensor:
        """``J Λ⁻¹ Jᵀ`` per sample for ``J`` ``(n, C, P)``: each layer's columns read as
        ``(d_out, d_in + 1)`` matrices ``M``, rotated to ``Q_Gᵀ M Q_A`` and weighted by the
        inverse eigenvalues."""
        n, C = J.shape[:2]
        out = J.new_zeros((n, C) if diagonal else (n, C, C))
        for i, b in enumerate(self.blocks):
            L = b.layer
            parts = []
            if L.w is not None:
                parts.append(J[:, :, L.w].reshape(n, C, L.d_out, L.d_in))
            if L.b is not None:
                parts.append(J[:, :, L.b].reshape(n, C, L.d_out, 1))
            M = torch.cat(parts, dim=3)
            _, qg, _, qa = self.eig[i]
            T = qg.T @ M @ qa  # (n, C, d_out, d_in + 1)
            W = T / self._lam(i, delta)
            out += (W * T).sum(dim=(2, 3)) if diagonal else torch.einsum("ncij,ndij->ncd", W, T)
        return out

    def linear_variance(self, parts: list[tuple[torch.Tensor, torch.Tensor]],
                        delta: torch.Tensor, diagonal: bool) -> torch.Tensor:
        """``J Λ⁻¹ Jᵀ`` per sample from Linear layers' per-sample Jacobians ``B_n ⊗ ã_nᵀ``
        (``parts``: ``(ã, B)`` per layer): rotated, ``(B_n Q_G) ⊗ (ã_nᵀ Q_A)``, so the
        variance is ``B̃ diag(w) B̃ᵀ`` with ``w_i = Σ_j (Q_Aᵀ ã)_j² / λ_ij`` — the ``(C, P)``
        Jacobian never formed."""
        n, C = parts[0][1].shape[:2]
        out = parts[0][1].new_zeros((n, C) if diagonal else (n, C, C))
        for i, (a, B) in enumerate(parts):
            _, qg, _, qa = self.eig[i]
            U = a @ qa
            w = (U * U) @ (1.0 / self._lam(i, delta)).T  # (n, d_out)
            Bt = B @ qg
            out += (Bt * Bt * w[:, None, :]).sum(-1) if diagonal else \
                (Bt * w[:, None, :]) @ Bt.mT
        return out

    def root(self, E: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``R E`` with ``R Rᵀ = Λ⁻¹``: per layer ``(Q_G ⊗ Q_A) λ^(-1/2) (Q_G ⊗ Q_A)ᵀ``."""
        out = torch.zeros_like(E)
        for i, b in enumerate(self.blocks):
            _, qg, _, qa = self.eig[i]
            scale = self._lam(i, delta).rsqrt()[..., None]

            def apply(M: torch.Tensor, qg: torch.Tensor = qg, qa: torch.Tensor = qa,
                      scale: torch.Tensor = scale) -> torch.Tensor:
                W = M.reshape(qg.shape[0], qa.shape[0], -1)
                W = torch.einsum("ji,jlk,lm->imk", qg, W, qa) * scale
                return torch.einsum("ij,jlk,ml->imk", qg, W, qa).reshape(M.shape)

            b.apply(apply, E, out)
        return out

    def precision(self, delta: torch.Tensor) -> JacobianOperator:
        blocks = [_Block(b.layer, b.K.A, b.K.B, float(delta[i]))
                  for i, b in enumerate(self.blocks)]
        ref = self.blocks[0].K
        return KFACOperator(self.size, blocks, ref.dtype, ref.device)


class DiagPosterior:
    """``diag(g) + δ_group``: ``group[i]`` is the group of parameter ``i``; ``layers`` the
    Linear or Conv2d layers owning the parameters, where all of them have one."""

    def __init__(self, g: torch.Tensor, group: torch.Tensor, names: list[str],
                 layers: list[Layer] | None = None) -> None:
        self.g, self.group, self.names, self.size = g.clamp_min(0), group, names, g.numel()
        self.group_sizes = torch.bincount(group, minlength=len(names)).tolist()
        self.layers = layers or []

    def linear_variance(self, parts: list[tuple[torch.Tensor, torch.Tensor]],
                        delta: torch.Tensor, diagonal: bool) -> torch.Tensor:
        """``J Λ⁻¹ Jᵀ`` per sample from Linear layers' ``B_n ⊗ ã_nᵀ`` (see
        :meth:`KronPosterior.linear_variance`), ``λ`` read as ``(d_out, d_in + 1)``."""
        n, C = parts[0][1].shape[:2]
        out = parts[0][1].new_zeros((n, C) if diagonal else (n, C, C))
        lam = self.g + delta[self.group]
        for L, (a, B) in zip(self.layers, parts, strict=True):
            cols = [lam[L.w].reshape(L.d_out, L.d_in)] if L.w is not None else []
            if L.b is not None:
                cols.append(lam[L.b].reshape(L.d_out, 1))
            w = (a * a) @ (1.0 / torch.cat(cols, dim=1)).T  # (n, d_out)
            out += (B * B * w[:, None, :]).sum(-1) if diagonal else (B * w[:, None, :]) @ B.mT
        return out

    def logdet(self, delta: torch.Tensor) -> torch.Tensor:
        return (self.g + delta[self.group]).log().sum()

    def variance(self, J: torch.Tensor, delta: torch.Tensor, diagonal: bool) -> torch.Tensor:
        W = J / (self.g + delta[self.group])
        return (W * J).sum(dim=2) if diagonal else W @ J.mT

    def root(self, E: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``R E`` with ``R Rᵀ = Λ⁻¹``: ``Λ^(-1/2)``."""
        return E * (self.g + delta[self.group]).rsqrt()[:, None]

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

    def variance(self, J: torch.Tensor, delta: torch.Tensor, diagonal: bool) -> torch.Tensor:
        if self._uniform(delta):  # J Q diag(1 / (λ + δ)) Qᵀ Jᵀ
            T = J @ self.Q
            W = T / (self.lam + delta[0])
        else:  # (L⁻¹ Jᵀ)ᵀ (L⁻¹ Jᵀ) with Λ = L Lᵀ
            T = torch.linalg.solve_triangular(self._cholesky(delta), J.mT, upper=False).mT
            W = T
        return (W * T).sum(dim=2) if diagonal else W @ T.mT

    def root(self, E: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """``R E`` with ``R Rᵀ = Λ⁻¹``: ``Q (λ + δ)^(-1/2) Qᵀ``, or ``L⁻ᵀ`` for ``Λ = L Lᵀ``."""
        if self._uniform(delta):
            return self.Q @ ((self.Q.T @ E) * (self.lam + delta[0]).rsqrt()[:, None])
        return torch.linalg.solve_triangular(self._cholesky(delta).T, E, upper=True)

    def precision(self, delta: torch.Tensor) -> JacobianOperator:
        return DenseOperator(self.G + torch.diag(delta[self.group]), tags=("symmetric", "psd"),
                             check_tags=False)


Posterior = KronPosterior | DiagPosterior | FullPosterior
