"""The Kronecker product ``A ⊗ I_k`` with an identity factor, as a lazy operator that stores
``A`` alone (:class:`KroneckerIdentity`).

In the row-major layout of ``torch.kron`` (``(A ⊗ B) vec(V) = vec(A V Bᵀ)``) the product with
``I_k`` is ``vec(A V)`` for ``V`` of shape ``(A.shape[1], k)``: one matrix product with ``A``,
never the ``(p k, q k)`` matrix. A Linear layer ``z = W φ`` read in the feature-major order of
its weight (column ``j k + c`` holds ``W[c, j]``) has this Jacobian: ``φᵀ ⊗ I_C`` for one
sample, ``Φ ⊗ I_C`` for a batch of feature rows ``Φ``.

>>> import torch
>>> phi = torch.tensor([[1.0, 2.0]])
>>> J = KroneckerIdentity(phi, 3)
>>> J.shape, torch.equal(J.to_dense(), torch.kron(phi, torch.eye(3)))
((3, 6), True)
"""

from __future__ import annotations

import torch

from .. import _validate
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .kronecker import _symmetric
from .tags import SYMMETRIC

__all__ = ["KroneckerIdentity"]


class KroneckerIdentity(JacobianOperator):
    """``A ⊗ I_k`` for a matrix ``A`` ``(p, q)``: an ``(p k, q k)`` operator in the row-major
    layout of ``torch.kron``, holding ``A`` only (memory ``p q``, not ``p q k²``).

    Args:
        A: a 2-D floating tensor.
        k: the size of the identity factor, an int ≥ 1.

    Products cost one ``(p, q) @ (q, k)`` matrix product per column. Tagged ``symmetric``
    when ``A`` is; ``slogdet`` is ``k`` times that of ``A`` and ``solve`` solves with ``A``
    alone (square ``A``).

    >>> import torch
    >>> J = KroneckerIdentity(torch.tensor([[2.0, 0.0], [0.0, 4.0]]), 2)
    >>> J.solve(torch.tensor([2.0, 4.0, 4.0, 8.0]))
    tensor([1., 2., 1., 2.])
    >>> J.slogdet()
    (tensor(1.), tensor(4.1589))
    """

    def __init__(self, A: torch.Tensor, k: int) -> None:
        A = chk.check_float_tensor(A, "A", 2)
        self.A, self.k = A, _validate.positive_int(k, "k")
        p, q = A.shape
        tags = (SYMMETRIC,) if _symmetric(A) else ()
        super().__init__((p * self.k, q * self.k), A.dtype, A.device, tags)

    def _apply(self, A: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``vec(A V_j)`` for every column ``j`` of ``V`` ``(A.shape[1] k, m)``."""
        m = V.shape[1]
        W = V.reshape(A.shape[1], self.k * m)
        return (A @ W).reshape(A.shape[0] * self.k, m)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self._apply(self.A, V)

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self._apply(self.A.mT, U)

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._mm(v[:, None])[:, 0]

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self._rmm(u[:, None])[:, 0]

    def _to_dense(self) -> torch.Tensor:
        eye = torch.eye(self.k, dtype=self.dtype, device=self.device)
        return (self.A[:, None, :, None] * eye[None, :, None, :]).reshape(self.shape)

    def _diagonal(self) -> torch.Tensor:
        return self.A.diagonal().repeat_interleave(self.k)

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return KroneckerIdentity(self.A.mT, self.k)

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        sign, lad = L.slogdet_dense(self.A)
        if bool(sign == 0):
            return sign, lad
        return sign**self.k, self.k * lad

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        m = B.shape[1]
        X = L.solve_dense(self.A, B.reshape(self.A.shape[0], self.k * m), "factor A")
        return X.reshape(self.shape[1], m)
