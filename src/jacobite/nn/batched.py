"""``I_G ⊗ A``: one shared operator applied to every sample of a batch (Linear on ``(B, n)``).

The Jacobian of the flattened map ``X ↦ X Wᵀ`` (``X`` of shape ``(B, n)``, laid out row-major) is
block diagonal with ``B`` copies of ``W``. Storing ``W`` once keeps memory at O(m n) and each
product at one ``(B, n) @ (n, m)`` matmul, instead of a ``BlockDiagonal`` holding ``B`` copies.

>>> import torch
>>> from jacobite.operators import DenseOperator
>>> W = DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]]))
>>> J = RepeatedBlockDiagonal(W, 2)
>>> J.shape, J.mv(torch.tensor([1.0, 1.0, 0.0, 1.0])).tolist()
((6, 4), [3.0, 1.0, 1.0, 2.0, 1.0, 0.0])
"""

from __future__ import annotations

import torch

from .. import _validate
from ..errors import DtypeError
from ..operators import JacobianOperator
from ..operators.tags import LOW_RANK

__all__ = ["RepeatedBlockDiagonal"]


class RepeatedBlockDiagonal(JacobianOperator):
    """``blockdiag(A, A, ..., A)`` with ``copies`` copies of an ``(m, n)`` operator ``A``.

    Shape ``(copies*m, copies*n)``; vectors are sample-major (the row-major flattening of a
    ``(copies, n)`` batch). Tags of ``A`` that hold blockwise (symmetric, psd, diagonal,
    triangular, scaled identity, identity) carry over; the rank bound is ``copies * A.rank_bound``.
    Products cost one ``A.mm`` with ``copies`` columns; ``slogdet`` is ``copies`` times that of
    ``A`` and ``solve`` solves blockwise.

    >>> import torch
    >>> from jacobite.operators import DiagonalOperator
    >>> J = RepeatedBlockDiagonal(DiagonalOperator(torch.tensor([2.0, 3.0])), 3)
    >>> J.slogdet()
    (tensor(1.), tensor(5.3753))
    >>> J.block is J.T.block, J.copies
    (True, 3)
    """

    def __init__(self, A: JacobianOperator, copies: int) -> None:
        if not isinstance(A, JacobianOperator):
            raise DtypeError(
                f"RepeatedBlockDiagonal needs a JacobianOperator block, got {type(A).__name__}; "
                f"wrap a matrix with jacobite.operators.DenseOperator(W)"
            )
        copies = _validate.positive_int(copies, "copies (the batch size)")
        m, n = A.shape
        bound = None if A.rank_bound is None else copies * A.rank_bound
        super().__init__((copies * m, copies * n), A.dtype, A.device, A.tags - {LOW_RANK}, bound)
        self.block, self.copies = A, copies

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        n = self.block.shape[1]
        return self.block._mm(v.reshape(self.copies, n).mT).mT.reshape(-1)

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        m = self.block.shape[0]
        return self.block._rmm(u.reshape(self.copies, m).mT).mT.reshape(-1)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        n, k = self.block.shape[1], V.shape[1]
        cols = V.reshape(self.copies, n, k).permute(1, 0, 2).reshape(n, self.copies * k)
        out = self.block._mm(cols)
        return out.reshape(-1, self.copies, k).permute(1, 0, 2).reshape(-1, k)

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        m, k = self.block.shape[0], U.shape[1]
        cols = U.reshape(self.copies, m, k).permute(1, 0, 2).reshape(m, self.copies * k)
        out = self.block._rmm(cols)
        return out.reshape(-1, self.copies, k).permute(1, 0, 2).reshape(-1, k)

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return RepeatedBlockDiagonal(self.block.T, self.copies)

    def _to_dense(self) -> torch.Tensor:
        return torch.block_diag(*([self.block.to_dense()] * self.copies))

    def _diagonal(self) -> torch.Tensor:
        if self.block.is_square():
            return self.block.diagonal().repeat(self.copies)
        return super()._diagonal()

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.block.is_square():
            return super()._slogdet()
        sign, lad = self.block._slogdet()
        return sign**self.copies, self.copies * lad

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if self.rank_bound is not None or not self.block.is_square():
            return super()._solve(B)
        n, k = self.block.shape[0], B.shape[1]
        cols = B.reshape(self.copies, n, k).permute(1, 0, 2).reshape(n, self.copies * k)
        x = self.block._solve(cols)
        return x.reshape(n, self.copies, k).permute(1, 0, 2).reshape(-1, k)
