"""Lazy sums and scalar multiples of operators (``A + B``, ``A - B``, ``c * A``, ``-A``, ``A / c``).

>>> import torch
>>> from jacobite.operators import DiagonalOperator, ScaledIdentity
>>> H = DiagonalOperator(torch.tensor([1.0, 2.0])) + ScaledIdentity(0.5, 2)
>>> sorted(H.tags)
['diagonal', 'lower_triangular', 'psd', 'symmetric', 'upper_triangular']
>>> H.solve(torch.tensor([1.5, 2.5]))
tensor([1., 1.])
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DtypeError, ShapeError, SingularOperatorError
from . import _csr
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import scale_tags, sum_tags

__all__ = ["ScaledOperator", "SumOperator"]


class SumOperator(JacobianOperator):
    """``A + B`` for two operators of the same shape; tags they share survive.

    >>> import torch
    >>> from jacobite.operators import DenseOperator
    >>> S = DenseOperator(torch.eye(2)) + DenseOperator(torch.ones(2, 2))
    >>> S.to_dense()
    tensor([[2., 1.],
            [1., 2.]])
    """

    def __init__(self, A: JacobianOperator, B: JacobianOperator) -> None:
        for name, op in (("A", A), ("B", B)):
            if not isinstance(op, JacobianOperator):
                raise DtypeError(f"SumOperator({name}=...) needs JacobianOperator terms, got "
                                 f"{type(op).__name__}; wrap tensors with DenseOperator(matrix)")
        if A.shape != B.shape:
            raise ShapeError(f"cannot add operators of shapes {A.shape} and {B.shape}; both terms "
                             f"must have the same shape")
        chk.check_same_dtype(A, B, "add")
        tags, bound = sum_tags(A.tags, B.tags, A.rank_bound, B.rank_bound)
        super().__init__(A.shape, A.dtype, A.device, tags, bound)
        self.A, self.B = A, B

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.A._mv(v) + self.B._mv(v)

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.A._rmv(u) + self.B._rmv(u)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.A._mm(V) + self.B._mm(V)

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self.A._rmm(U) + self.B._rmm(U)

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return SumOperator(self.A.T, self.B.T)

    def _to_dense(self) -> torch.Tensor:
        return self.A.to_dense() + self.B.to_dense()

    def _diagonal(self) -> torch.Tensor:
        return self.A.diagonal() + self.B.diagonal()

    def _to_sparse(self) -> torch.Tensor:
        return _csr.scipy_to_torch(self.A.to_scipy() + self.B.to_scipy(), self.dtype, self.device)


class ScaledOperator(JacobianOperator):
    """``c * A`` for a scalar ``c`` (a number or a 0-d tensor, kept for autograd).

    ``slogdet`` and ``solve`` reuse those of ``A``: ``det(cA) = c^n det(A)``.

    >>> import torch
    >>> from jacobite.operators import DiagonalOperator
    >>> S = -2.0 * DiagonalOperator(torch.tensor([1.0, 3.0]))
    >>> S.slogdet()
    (tensor(1.), tensor(2.4849))
    >>> S.is_psd()
    False
    """

    def __init__(self, c: Any, A: JacobianOperator) -> None:
        if not isinstance(A, JacobianOperator):
            raise DtypeError(f"ScaledOperator needs a JacobianOperator, got {type(A).__name__}")
        value = chk.scalar_value(c)
        if isinstance(value, complex) and not A.dtype.is_complex:
            raise DtypeError(f"cannot scale a real {A.dtype} operator by the complex number "
                             f"{value}; build the operator with a complex dtype")
        if isinstance(c, torch.Tensor):
            self.c: Any = c.reshape(()).to(dtype=A.dtype, device=A.device)
        else:
            self.c = value
        super().__init__(A.shape, A.dtype, A.device, scale_tags(A.tags, value), A.rank_bound)
        self.A = A
        self._value = value

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.c * self.A._mv(v)

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.c * self.A._rmv(u)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.c * self.A._mm(V)

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self.c * self.A._rmm(U)

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return ScaledOperator(self.c, self.A.T)

    def _to_dense(self) -> torch.Tensor:
        return self.c * self.A.to_dense()

    def _diagonal(self) -> torch.Tensor:
        return self.c * self.A.diagonal()

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.shape[0]
        sign, lad = self.A._slogdet()
        c = torch.as_tensor(self.c, dtype=self.dtype, device=self.device)
        if n == 0:
            return sign, lad
        if self._value == 0:
            return torch.zeros_like(sign), torch.full_like(lad, -torch.inf)
        if c.is_complex():
            return sign * (c / c.abs()) ** n, lad + n * c.abs().log()
        return sign * torch.sign(c) ** n, lad + n * c.abs().log()

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if self._value == 0:
            raise SingularOperatorError(
                f"cannot solve: the operator is 0 * A, which is singular; {L._SINGULAR_FIX}"
            )
        return self.A._solve(B) / self.c

    def _to_sparse(self) -> torch.Tensor:
        sparse = _csr.to_torch_csr(self.A.to_sparse())
        return _csr.csr_tensor(sparse.crow_indices(), sparse.col_indices(),
                               self.c * sparse.values(), self.shape)
