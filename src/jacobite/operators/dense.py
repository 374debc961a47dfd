"""An explicit matrix as an operator."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import InvalidTagError
from . import _csr
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import LOW_RANK, infer_tags, transpose_tags

__all__ = ["DenseOperator"]

#: Declared tags are verified at construction when the matrix has at most this many rows.
CHECK_TAGS_MAX_N = 512


class DenseOperator(JacobianOperator):
    """A dense ``(m, n)`` matrix; declared tags unlock the structured fast paths.

    Args:
        matrix: a 2-D floating tensor (NumPy arrays are converted).
        tags: tags you promise hold, or ``"infer"`` to detect the structural ones.
        rank_bound: an upper bound on the rank (gives the ``"low_rank"`` tag).
        check_tags: verify the declared tags numerically (``None``: only when the matrix
            has at most 512 rows, where it is cheap). A false claim raises
            :class:`~jacobite.errors.InvalidTagError`.

    >>> import torch
    >>> L = DenseOperator(torch.tensor([[2.0, 0.0], [1.0, 4.0]]), tags=("lower_triangular",))
    >>> L.solve(torch.tensor([2.0, 9.0]))
    tensor([1., 2.])
    >>> L.slogdet()
    (tensor(1.), tensor(2.0794))
    >>> sorted(DenseOperator(torch.eye(2), tags="infer").tags)[:3]
    ['diagonal', 'identity', 'lower_triangular']
    """

    def __init__(
        self, matrix: torch.Tensor, tags: Any = (), *, rank_bound: int | None = None,
        check_tags: bool | None = None,
    ) -> None:
        matrix = chk.check_float_tensor(matrix, "matrix", 2)
        if check_tags is not None:
            check_tags = _validate.boolean(check_tags, "check_tags")
        if isinstance(tags, str) and tags == "infer":
            tags = infer_tags(matrix)
            check_tags = False
        super().__init__((matrix.shape[0], matrix.shape[1]), matrix.dtype, matrix.device, tags,
                         rank_bound)
        self.matrix = matrix
        if check_tags is None:
            check_tags = matrix.shape[0] <= CHECK_TAGS_MAX_N
        if check_tags and self.tags:
            self._check_declared()

    def _check_declared(self) -> None:
        found = infer_tags(self.matrix)
        wrong = sorted((self.tags - {LOW_RANK}) - found)
        if self.rank_bound is not None and self.matrix.numel():
            rank = L.matrix_rank(self.matrix)
            if rank > self.rank_bound:
                wrong.append(f"low_rank (numerical rank {rank} > rank_bound {self.rank_bound})")
        if wrong:
            raise InvalidTagError(
                f"the matrix does not satisfy the declared tag(s) {wrong}; drop them, or pass "
                f"check_tags=False if the claim holds and the check is too strict"
            )

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.matrix.mT @ u

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self.matrix.mT @ U

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return DenseOperator(self.matrix.mT, transpose_tags(self.tags),
                             rank_bound=self.rank_bound, check_tags=False)

    def to_dense(self) -> torch.Tensor:
        """The stored matrix itself (no copy, no memory-budget check)."""
        return self.matrix

    def _diagonal(self) -> torch.Tensor:
        return self.matrix.diagonal()

    def _to_sparse(self) -> torch.Tensor:
        return _csr.dense_to_csr(self.matrix)
