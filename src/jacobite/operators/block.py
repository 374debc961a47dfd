"""Block-diagonal operators: one ``(p, q)`` block per sample (batched per-sample Jacobians)."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import InvalidTagError
from . import _csr
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import DIAGONAL, LOW_RANK, infer_tags, tag_names, transpose_tags

__all__ = ["BlockDiagonal"]

#: Declared block tags are verified at construction when ``blocks.numel()`` is at most this.
CHECK_TAGS_MAX_NUMEL = 2**18


class BlockDiagonal(JacobianOperator):
    """``blockdiag(blocks[0], ..., blocks[B-1])`` for ``blocks`` of shape ``(B, p, q)``.

    The operator has shape ``(B*p, B*q)``; vectors are laid out sample-major (the
    flattening of a ``(B, q)`` batch). Products are batched matmuls; ``slogdet``/``solve``
    are blockwise and ``to_sparse`` builds the CSR directly.

    Args:
        blocks: ``(B, p, q)`` floating tensor.
        tags: tags that hold for *every* block (hence for the whole matrix), or ``"infer"``
            to detect them. ``1 x 1`` blocks are always tagged ``diagonal``.
        rank_bound: a bound on the rank of the whole operator.
        check_tags: verify declared tags on the blocks (``None``: when the blocks are small).

    >>> import torch
    >>> blocks = torch.tensor([[[2.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [0.0, 1.0]]])
    >>> J = BlockDiagonal(blocks, tags="infer")
    >>> J.shape, sorted(J.tags)
    ((4, 4), ['upper_triangular'])
    >>> J.mv(torch.ones(4))
    tensor([2., 2., 2., 1.])
    >>> J.slogdet()
    (tensor(1.), tensor(1.3863))
    """

    def __init__(
        self, blocks: torch.Tensor, tags: Any = (), *, rank_bound: int | None = None,
        check_tags: bool | None = None,
    ) -> None:
        blocks = chk.check_float_tensor(blocks, "blocks", 3)
        if check_tags is not None:
            check_tags = _validate.boolean(check_tags, "check_tags")
        B, p, q = blocks.shape
        if isinstance(tags, str) and tags == "infer":
            tags, check_tags = infer_tags(blocks), False
        if isinstance(tags, str):
            tags = (tags,)
        tags = set(tag_names(tags))
        if p == q == 1:
            tags.add(DIAGONAL)
        super().__init__((B * p, B * q), blocks.dtype, blocks.device, tags, rank_bound)
        self.blocks = blocks
        if check_tags is None:
            check_tags = blocks.numel() <= CHECK_TAGS_MAX_NUMEL
        if check_tags and self.tags - {LOW_RANK}:
            wrong = sorted((self.tags - {LOW_RANK}) - infer_tags(blocks))
            if wrong:
                raise InvalidTagError(
                    f"not every block satisfies the declared tag(s) {wrong}; drop them, or pass "
                    f"check_tags=False if the claim holds and the check is too strict"
                )

    @property
    def num_blocks(self) -> int:
        return self.blocks.shape[0]

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        B, p, q = self.blocks.shape
        return (self.blocks @ v.reshape(B, q, 1)).reshape(B * p)

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        B, p, q = self.blocks.shape
        return (self.blocks.mT @ u.reshape(B, p, 1)).reshape(B * q)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        B, p, q = self.blocks.shape
        return (self.blocks @ V.reshape(B, q, -1)).reshape(B * p, V.shape[1])

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        B, p, q = self.blocks.shape
        return (self.blocks.mT @ U.reshape(B, p, -1)).reshape(B * q, U.shape[1])

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return BlockDiagonal(self.blocks.mT, transpose_tags(self.tags) - {LOW_RANK},
                             rank_bound=self.rank_bound, check_tags=False)

    def _to_dense(self) -> torch.Tensor:
        B, p, q = self.blocks.shape
        out = self.blocks.new_zeros(B, p, B, q)
        idx = torch.arange(B, device=self.blocks.device)
        out[idx, :, idx, :] = self.blocks
        return out.reshape(B * p, B * q)

    def _diagonal(self) -> torch.Tensor:
        B, p, q = self.blocks.shape
        if p == q:
            return self.blocks.diagonal(dim1=-2, dim2=-1).reshape(-1)
        i = torch.arange(min(B * p, B * q), device=self.blocks.device)
        bi, bj = i // p, i // q
        vals = self.blocks[bi.clamp_max(B - 1), i % p, i % q]
        return torch.where(bi == bj, vals, torch.zeros_like(vals))

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank_bound is not None or self.is_triangular():
            return super()._slogdet()
        sign, lad = L.slogdet_dense(self.blocks)  # a singular block makes its sign 0
        return sign.prod(), lad.sum()

    def _solve(self, B_: torch.Tensor) -> torch.Tensor:
        if self.rank_bound is not None or self.is_diagonal():
            return super()._solve(B_)
        B, p, _ = self.blocks.shape
        rhs = B_.reshape(B, p, -1)
        if self.is_triangular():
            L._raise_if_zero(self.blocks.diagonal(dim1=-2, dim2=-1).reshape(-1), "diagonal")
            x = torch.linalg.solve_triangular(L.lapack(self.blocks), L.lapack(rhs),
                                              upper=self.is_upper_triangular())
            x = x.to(torch.promote_types(self.dtype, rhs.dtype))  # half precision: in float32
        else:
            x = L.solve_dense(self.blocks, rhs, "diagonal block")
        return x.reshape(B * p, -1)

    def _to_sparse(self) -> torch.Tensor:
        B, p, q = self.blocks.shape
        dev = self.blocks.device
        crow = torch.arange(B * p + 1, device=dev) * q
        col = (torch.arange(B, device=dev)[:, None, None] * q
               + torch.arange(q, device=dev)[None, None, :]).expand(B, p, q).reshape(-1)
        return _csr.csr_tensor(crow, col, self.blocks.reshape(-1), (B * p, B * q))
