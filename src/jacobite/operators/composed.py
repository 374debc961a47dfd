"""Products of operators (:class:`Composed`, the chain rule) and the generic :class:`Transposed`.

>>> import torch
>>> from jacobite.operators import DenseOperator, DiagonalOperator
>>> A = DenseOperator(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
>>> D = DiagonalOperator(torch.tensor([1.0, -1.0]))
>>> (A @ D).mv(torch.tensor([1.0, 1.0]))
tensor([-1., -1.])
"""

from __future__ import annotations

import torch

from ..errors import DtypeError, ShapeError
from . import _csr
from . import _validate as chk
from .base import JacobianOperator
from .tags import compose_tags, transpose_tags

__all__ = ["Composed", "Transposed"]


def is_transpose_pair(a: JacobianOperator, b: JacobianOperator) -> bool:
    """True when ``b`` is ``a.T`` as an object (so ``a @ b`` is a Gram product)."""
    if a._T is b or b._T is a:
        return True
    if isinstance(a, Transposed) and a.base is b:
        return True
    if isinstance(b, Transposed) and b.base is a:
        return True
    return a is b and a.is_symmetric()


class Composed(JacobianOperator):
    """The product ``A @ B`` of an ``(m, k)`` and a ``(k, n)`` operator, kept lazy.

    ``mv(v) = A.mv(B.mv(v))`` (the chain rule). Tags propagate soundly (see
    :func:`jacobite.operators.tags.compose_tags`): diagonal@diagonal is diagonal, lower@lower
    lower, ``A.T @ A`` and ``A @ A.T`` (the same object under ``.T``) symmetric psd, and a
    low-rank factor bounds the rank. ``slogdet``/``solve`` go factor by factor when both
    factors are square. Usually built with ``A @ B``.

    >>> import torch
    >>> from jacobite.operators import DenseOperator
    >>> A = DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 1.0]]))
    >>> G = A.T @ A
    >>> type(G).__name__, G.shape, sorted(G.tags)
    ('Composed', (2, 2), ['psd', 'symmetric'])
    """

    def __init__(self, A: JacobianOperator, B: JacobianOperator) -> None:
        for name, op in (("A", A), ("B", B)):
            if not isinstance(op, JacobianOperator):
                raise DtypeError(
                    f"Composed({name}=...) needs JacobianOperator factors, got "
                    f"{type(op).__name__}; wrap tensors with DenseOperator(matrix)"
                )
        if A.shape[1] != B.shape[0]:
            raise ShapeError(
                f"cannot compose operators of shapes {A.shape} @ {B.shape}: the inner dimensions "
                f"{A.shape[1]} and {B.shape[0]} differ; the left operator's input size must equal "
                f"the right operator's output size"
            )
        chk.check_same_dtype(A, B, "compose")
        k = A.shape[1]  # rank(A @ B) <= inner dimension, too
        tags, bound = compose_tags(
            A.tags, B.tags, gram=is_transpose_pair(A, B),
            rank_a=k if A.rank_bound is None else A.rank_bound,
            rank_b=k if B.rank_bound is None else B.rank_bound,
        )
        if A.shape[0] != B.shape[1]:  # a rectangular product keeps only the rank information
            tags = frozenset()
        super().__init__((A.shape[0], B.shape[1]), A.dtype, A.device, tags, bound)
        self.A, self.B = A, B

    @property
    def factors(self) -> tuple[JacobianOperator, ...]:
        """The factors left to right, with nested products flattened."""
        out: list[JacobianOperator] = []
        for op in (self.A, self.B):
            out.extend(op.factors if isinstance(op, Composed) else (op,))
        return tuple(out)

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.A._mv(self.B._mv(v))

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.B._rmv(self.A._rmv(u))

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.A._mm(self.B._mm(V))

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self.B._rmm(self.A._rmm(U))

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return Composed(self.B.T, self.A.T)

    def _to_dense(self) -> torch.Tensor:
        (m, k), n = self.A.shape, self.B.shape[1]
        if k * n <= m * k:
            return self.A._mm(self.B.to_dense())
        return self.B._rmm(self.A.to_dense().mT).mT

    def _diagonal(self) -> torch.Tensor:
        if self.A.is_diagonal() and self.B.is_diagonal():
            return self.A.diagonal() * self.B.diagonal()
        return super()._diagonal()

    def _both_square(self) -> bool:
        return self.A.is_square() and self.B.is_square()

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._both_square():
            return super()._slogdet()
        sa, la = self.A._slogdet()
        sb, lb = self.B._slogdet()
        return sa * sb, la + lb

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if not self._both_square() or self.rank_bound is not None:
            return super()._solve(B)
        return self.B._solve(self.A._solve(B))

    def _to_sparse(self) -> torch.Tensor:
        prod = self.A.to_scipy() @ self.B.to_scipy()
        return _csr.scipy_to_torch(prod, self.dtype, self.device)


class Transposed(JacobianOperator):
    """``base.T`` for an operator that cannot transpose itself more cheaply.

    Swaps ``mv``/``rmv`` and ``mm``/``rmm`` of ``base``; ``Transposed(A).T is A``. Most
    operators return a structured transpose from ``.T``; this is the generic fallback.

    >>> import torch
    >>> from jacobite.operators import DenseOperator
    >>> A = DenseOperator(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    >>> Transposed(A).mv(torch.tensor([1.0, 0.0]))
    tensor([1., 2.])
    >>> Transposed(A).T is A
    True
    """

    def __init__(self, base: JacobianOperator) -> None:
        if not isinstance(base, JacobianOperator):
            raise DtypeError(f"Transposed needs a JacobianOperator, got {type(base).__name__}")
        m, n = base.shape
        super().__init__((n, m), base.dtype, base.device, transpose_tags(base.tags),
                         base.rank_bound)
        self.base = base
        self._T = base
        if base._T is None:  # so that base.T is self and the pair is recognised (Gram)
            base._T = self

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.base._rmv(v)

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.base._mv(u)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.base._rmm(V)

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        return self.base._mm(U)

    def _to_dense(self) -> torch.Tensor:
        return self.base.to_dense().mT

    def _diagonal(self) -> torch.Tensor:
        return self.base.diagonal()

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base._slogdet()

    def _to_sparse(self) -> torch.Tensor:
        return _csr.csr_transpose(_csr.to_torch_csr(self.base.to_sparse()))
