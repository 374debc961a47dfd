"""The Kronecker product ``A ⊗ B + shift · I`` as a lazy operator (:class:`KroneckerOperator`).

Vectors are laid out row-major: ``(A ⊗ B) vec(V) = vec(A V Bᵀ)`` for ``V`` of shape
``(A.shape[1], B.shape[1])`` flattened row-major — the index of ``torch.kron``. Products cost
two small matrix products instead of one with the ``(pr, qs)`` matrix; for symmetric factors
the eigendecompositions ``A = Q_A Λ_A Q_Aᵀ``, ``B = Q_B Λ_B Q_Bᵀ`` give
``A ⊗ B + s I = (Q_A ⊗ Q_B)(Λ_A ⊗ Λ_B + s)(Q_A ⊗ Q_B)ᵀ``, hence ``solve``, ``slogdet`` and
:meth:`KroneckerOperator.inv_sqrt` from the factors alone.

>>> import torch
>>> A = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
>>> B = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
>>> K = KroneckerOperator(A, B, shift=0.5)
>>> torch.allclose(K.to_dense(), torch.kron(A, B) + 0.5 * torch.eye(4))
True
>>> x = K.solve(torch.ones(4))
>>> torch.allclose(K.mv(x), torch.ones(4))
True
"""

from __future__ import annotations

import torch

from .. import _validate
from ..errors import InvalidOptionError, SingularOperatorError
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .function import FunctionOperator
from .tags import PSD, SYMMETRIC

__all__ = ["KroneckerOperator"]


def _symmetric(a: torch.Tensor) -> bool:
    if a.shape[0] != a.shape[1]:
        return False
    tol = 100 * L.eps_of(a.dtype) * max(float(a.abs().max()), 1e-300)
    return bool(((a - a.mT).abs() <= tol).all())


class KroneckerOperator(JacobianOperator):
    """``A ⊗ B + shift · I`` for matrices ``A`` ``(p, q)`` and ``B`` ``(r, s)``: an
    ``(p r, q s)`` operator in the row-major layout of ``torch.kron``.

    Args:
        A, B: 2-D floating tensors of one dtype and device.
        shift: a number ≥ 0 added on the diagonal (damping); needs symmetric square
            factors.
        psd: whether the operator is positive semi-definite (symmetric factors only): ``None``
            decides it from the factors' eigenvalues, computed at construction; ``True`` takes
            it as given (Gram factors ``XᵀX``), leaving the eigendecompositions to the first
            ``solve``, ``slogdet`` or ``inv_sqrt``.

    Tagged ``symmetric`` when both factors are symmetric, and ``psd`` when moreover every
    eigenvalue ``λ_A λ_B + shift`` is ≥ 0. ``solve`` and ``slogdet`` use the factors: their
    eigendecompositions for symmetric factors, else their LU factorisations (``shift=0``).

    >>> import torch
    >>> K = KroneckerOperator(torch.eye(2), torch.tensor([[0.0, 1.0]]))
    >>> K.shape, K.mv(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    ((2, 4), tensor([2., 4.]))
    """

    def __init__(self, A: torch.Tensor, B: torch.Tensor, *, shift: float = 0.0,
                 psd: bool | None = None) -> None:
        A = chk.check_float_tensor(A, "A", 2)
        B = chk.check_float_tensor(B, "B", 2)
        chk.check_same_dtype(A, B, "take the Kronecker product of")
        shift = _validate.tolerance(shift, "shift")
        self.A, self.B, self.shift = A, B, float(shift)
        sym = _symmetric(A) and _symmetric(B)
        if shift and not sym:
            raise InvalidOptionError(
                "shift= needs symmetric square factors A and B (it is applied through their "
                "eigendecompositions); add the shift yourself as K + shift * I otherwise")
        self._eig: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        tags: set[str] = set()
        if psd is not None:
            psd = _validate.boolean(psd, "psd")
        if sym:
            tags.add(SYMMETRIC)
            if psd is None:
                lam = self._eigen()[0]
                psd = bool((lam >= -L.eps_of(A.dtype) * lam.abs().max().clamp_min(1e-300)
                            * lam.numel()).all())
            if psd:
                tags.add(PSD)
        p, q = A.shape
        r, s = B.shape
        super().__init__((p * r, q * s), A.dtype, A.device, tags)

    def _eigen(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(λ (p, r), Q_A, Q_B)``: the eigenvalues ``λ_A[i] λ_B[k] + shift``."""
        if self._eig is None:
            la, qa = torch.linalg.eigh(self.A)
            lb, qb = torch.linalg.eigh(self.B)
            self._eig = (torch.outer(la, lb) + self.shift, qa, qb)
        return self._eig

    def _apply(self, A: torch.Tensor, B: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``vec(A V_j Bᵀ)`` for every column ``j`` of ``V`` ``(A.shape[1] B.shape[1], k)``."""
        k = V.shape[1]
        W = V.reshape(A.shape[1], B.shape[1], k)
        out = torch.einsum("ij,jlk,ml->imk", A, W, B)
        return out.reshape(A.shape[0] * B.shape[0], k)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        out = self._apply(self.A, self.B, V)
        return out + self.shift * V if self.shift else out

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        out = self._apply(self.A.mT, self.B.mT, U)
        return out + self.shift * U if self.shift else out

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._mm(v[:, None])[:, 0]

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self._rmm(u[:, None])[:, 0]

    def _to_dense(self) -> torch.Tensor:
        K = torch.kron(self.A, self.B)
        if self.shift:
            K = K + self.shift * torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        return K

    def _diagonal(self) -> torch.Tensor:
        if self.A.shape[0] == self.A.shape[1] and self.B.shape[0] == self.B.shape[1]:
            return torch.kron(self.A.diagonal(), self.B.diagonal()) + self.shift
        return super()._diagonal()

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return KroneckerOperator(self.A.mT, self.B.mT)

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.is_symmetric():
            lam = self._eigen()[0].reshape(-1)
            if self._singular(lam):
                zero = lam.new_zeros(())
                return zero, torch.full_like(zero, -torch.inf)
            return L.slogdet_from_diagonal(lam)
        p, r = self.A.shape[0], self.B.shape[0]
        if self.A.shape[1] != p or self.B.shape[1] != r:  # square overall, not factorwise
            return super()._slogdet()
        sa, la = L.slogdet_dense(self.A)
        sb, lb = L.slogdet_dense(self.B)
        return sa**r * sb**p, r * la + p * lb

    def _singular(self, lam: torch.Tensor) -> bool:
        L.check_finite_matrix(lam, "slogdet")
        top = lam.abs().max()
        return bool((lam.abs() <= lam.numel() * L.eps_of(lam.dtype) * top).any()) \
            or bool(top == 0)

    def _solve(self, B_: torch.Tensor) -> torch.Tensor:
        if self.is_symmetric():
            return self._spectral(B_, -1.0, "solve")
        p, r = self.A.shape[0], self.B.shape[0]
        if self.A.shape[1] != p or self.B.shape[1] != r:
            return super()._solve(B_)
        k = B_.shape[1]
        V = B_.reshape(p, r, k)
        Y = L.solve_dense(self.A, V.reshape(p, r * k), "factor A").reshape(p, r, k)
        X = L.solve_dense(self.B, Y.permute(1, 0, 2).reshape(r, p * k), "factor B")
        return X.reshape(r, p, k).permute(1, 0, 2).reshape(p * r, k)

    def _spectral(self, V: torch.Tensor, power: float, what: str) -> torch.Tensor:
        """``(A ⊗ B + s I)^power V`` through the factors' eigendecompositions."""
        lam, qa, qb = self._eigen()
        if self._singular(lam.reshape(-1)):
            raise SingularOperatorError(
                f"cannot {what}: an eigenvalue λ_A λ_B + shift is (numerically) zero, so the "
                "operator is singular; pass shift= > 0 (damping) or use op.lstsq(b)")
        if power != -1.0 and bool((lam < 0).any()):
            raise SingularOperatorError(
                f"cannot {what}: the operator has a negative eigenvalue; a real inverse square "
                "root needs a positive definite operator (pass shift= > 0)")
        W = self._apply(qa.mT, qb.mT, V).reshape(*lam.shape, -1)
        W = W * (lam**power)[..., None]
        return self._apply(qa, qb, W.reshape(lam.numel(), -1))

    def inv_sqrt(self) -> JacobianOperator:
        """``(A ⊗ B + shift · I)^(-1/2)`` for symmetric positive definite operators, as a lazy
        symmetric operator applied through the factors' eigendecompositions.

        >>> import torch
        >>> K = KroneckerOperator(torch.eye(2) * 4.0, torch.eye(1))
        >>> K.inv_sqrt().mv(torch.ones(2))
        tensor([0.5000, 0.5000])
        """
        if not self.is_symmetric():
            raise InvalidOptionError(
                "inv_sqrt() needs symmetric factors A and B; symmetrise them first, "
                "e.g. (A + A.T) / 2")
        n = self.shape[0]
        self._spectral(torch.zeros(n, 1, dtype=self.dtype, device=self.device), -0.5,
                       "take the inverse square root")  # refuse a singular operator now

        def mm(V: torch.Tensor) -> torch.Tensor:
            return self._spectral(V, -0.5, "take the inverse square root")

        return FunctionOperator((n, n), lambda v: mm(v[:, None])[:, 0],
                                lambda v: mm(v[:, None])[:, 0], dtype=self.dtype,
                                device=self.device, tags=("symmetric", "psd"), mm=mm, rmm=mm,
                                name="kronecker_inv_sqrt")
