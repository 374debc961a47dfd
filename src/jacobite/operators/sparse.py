"""Sparse matrices (SciPy or torch sparse) as operators."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import DtypeError, InvalidTagError, NonFiniteInputError
from . import _csr
from . import linalg as L
from .base import JacobianOperator
from .tags import LOW_RANK, infer_tags, transpose_tags

__all__ = ["SparseOperator"]

#: Declared tags are verified at construction when the matrix has at most this many rows.
CHECK_TAGS_MAX_N = 512


class SparseOperator(JacobianOperator):
    """A sparse matrix: a ``scipy.sparse`` matrix/array or a torch sparse COO/CSR/CSC tensor.

    Stored as a torch CSR tensor (:attr:`matrix`); products use torch sparse kernels.
    ``slogdet``/``solve`` use SciPy's sparse LU (``splu``) on the CPU, ``to_sparse`` and
    ``to_scipy`` return the stored matrix. ``dtype``/``device`` convert the input. Entries must
    be finite unless ``check_finite=False`` (a computed Jacobian may hold an infinite
    derivative, which is then the answer).

    >>> import scipy.sparse as sp
    >>> import torch
    >>> S = SparseOperator(sp.diags([1.0, 2.0, 4.0]) + sp.eye(3, k=1))
    >>> S.mv(torch.ones(3, dtype=torch.float64))
    tensor([2., 3., 4.], dtype=torch.float64)
    >>> S.slogdet()
    (tensor(1., dtype=torch.float64), tensor(2.0794, dtype=torch.float64))
    """

    def __init__(
        self, matrix: Any, *, dtype: torch.dtype | None = None,
        device: torch.device | str | None = None, tags: Any = (), rank_bound: int | None = None,
        check_tags: bool | None = None, check_finite: bool = True,
    ) -> None:
        if dtype is not None:
            dtype = _validate.floating_dtype(dtype)
        if device is not None:
            device = _validate.device(device)
        if check_tags is not None:
            check_tags = _validate.boolean(check_tags, "check_tags")
        import scipy.sparse as sp

        if sp.issparse(matrix):
            if dtype is None:
                dtype = torch.from_numpy(np.zeros(0, dtype=matrix.dtype)).dtype
            csr = _csr.scipy_to_torch(matrix, dtype, torch.device(device or "cpu"))
        elif isinstance(matrix, torch.Tensor) and matrix.layout in (
                torch.sparse_coo, torch.sparse_csr, torch.sparse_csc):
            csr = _csr.to_torch_csr(matrix)
            if dtype is not None or device is not None:
                csr = _csr.csr_tensor(csr.crow_indices().to(device or csr.device),
                                      csr.col_indices().to(device or csr.device),
                                      csr.values().to(dtype=dtype or csr.dtype,
                                                      device=device or csr.device),
                                      (csr.shape[0], csr.shape[1]))
        else:
            raise DtypeError(
                f"SparseOperator needs a scipy.sparse matrix or a torch sparse tensor, got "
                f"{type(matrix).__name__}; for a dense tensor use DenseOperator(matrix)"
            )
        if _validate.boolean(check_finite, "check_finite") and not _validate.all_finite(
                csr.values()):
            raise NonFiniteInputError("matrix contains NaN or Inf; an operator needs finite "
                                      "entries: clean them first")
        if csr.ndim != 2:
            raise DtypeError(f"SparseOperator needs a 2-D matrix, got shape {tuple(csr.shape)}")
        if not (csr.dtype.is_floating_point or csr.dtype.is_complex):
            raise DtypeError(f"SparseOperator needs a floating dtype, got {csr.dtype}; pass "
                             f"dtype=torch.float64")
        super().__init__((csr.shape[0], csr.shape[1]), csr.dtype, csr.device, tags, rank_bound)
        self.matrix = csr
        self._csr_t: torch.Tensor | None = None
        if check_tags is None:
            check_tags = csr.shape[0] <= CHECK_TAGS_MAX_N
        if check_tags and self.tags - {LOW_RANK}:
            wrong = sorted((self.tags - {LOW_RANK}) - infer_tags(csr.to_dense()))
            if wrong:
                raise InvalidTagError(f"the matrix does not satisfy the declared tag(s) {wrong}; "
                                      f"drop them (or pass check_tags=False)")

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.matrix.values().numel())

    def to_torch(self) -> torch.Tensor:
        """The stored torch sparse CSR tensor (same as :meth:`to_sparse`)."""
        return self.matrix

    def _t(self) -> torch.Tensor:
        if self._csr_t is None:
            self._csr_t = _csr.csr_transpose(self.matrix)
        return self._csr_t

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self._t() @ u

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.matrix @ V

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self._t() @ U

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return SparseOperator(self._t(), tags=transpose_tags(self.tags) - {LOW_RANK},
                              rank_bound=self.rank_bound, check_tags=False)

    def _to_dense(self) -> torch.Tensor:
        return self.matrix.to_dense()

    def _diagonal(self) -> torch.Tensor:
        return _csr.csr_diagonal(self.matrix)

    def _to_sparse(self) -> torch.Tensor:
        return self.matrix

    def _lapack_scipy(self) -> Any:
        """The matrix for SciPy's sparse LU: half precision widened to float32."""
        return _csr.torch_to_scipy(self.matrix.to(L.lapack_dtype(self.dtype)))

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank_bound is not None or self.is_diagonal() or self.is_triangular():
            return super()._slogdet()
        if self.shape[0] == 0:
            return super()._slogdet()
        L.check_finite_matrix(self.matrix.values(), "slogdet")
        sign, lad = L.splu_slogdet(self._lapack_scipy())
        real = torch.empty((), dtype=self.dtype).real.dtype
        return (torch.tensor(sign, dtype=self.dtype, device=self.device),
                torch.tensor(lad, dtype=real, device=self.device))

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if self.rank_bound is not None or self.is_diagonal() or self.shape[0] == 0:
            return super()._solve(B)
        L.check_finite_matrix(self.matrix.values(), "solve")
        x = L.splu_solve(self._lapack_scipy(), L.lapack(B.detach().cpu()).numpy())
        return torch.from_numpy(np.asarray(x).reshape(B.shape)).to(self.dtype).to(self.device)
