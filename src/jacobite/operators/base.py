"""The operator contract: :class:`JacobianOperator`, one abstract base with shared defaults.

Concrete operators override the private hooks (``_mv``, ``_rmv`` and, where their structure
allows something faster than the default, ``_mm``, ``_rmm``, ``_to_dense``, ``_diagonal``,
``_slogdet``, ``_solve``, ``_to_sparse``, ``_transpose``). The public methods validate the
input once and dispatch. Structure lives in :attr:`JacobianOperator.tags`, not in subclasses.

>>> import torch
>>> from jacobite.operators import DenseOperator
>>> A = DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
>>> A.mv(torch.tensor([1.0, 1.0]))
tensor([3., 3.])
>>> sorted((A.T @ A).tags)
['psd', 'symmetric']
"""

from __future__ import annotations

import abc
import numbers
from typing import TYPE_CHECKING, Any

import torch

from .. import _validate
from ..config import get_memory_budget
from ..errors import JacobianTooLarge, ShapeError, SingularOperatorError
from . import _csr
from . import _validate as chk
from . import linalg as L
from .tags import (
    DIAGONAL,
    IDENTITY,
    LOW_RANK,
    LOWER_TRIANGULAR,
    PSD,
    SCALED_IDENTITY,
    SYMMETRIC,
    UPPER_TRIANGULAR,
    normalize_tags,
)

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

__all__ = ["JacobianOperator"]


class JacobianOperator(abc.ABC):
    """A lazy ``(m, n)`` matrix (usually a Jacobian) known through products with vectors.

    Subclasses call ``super().__init__(shape, dtype, device, tags, rank_bound)`` and implement
    ``_mv`` and ``_rmv``; everything else has a default built on them.

    >>> import torch
    >>> from jacobite.operators import DiagonalOperator
    >>> D = DiagonalOperator(torch.tensor([1.0, 2.0]))
    >>> isinstance(D, JacobianOperator), D.shape, D.is_diagonal()
    (True, (2, 2), True)
    """

    def __init__(
        self, shape: tuple[int, int], dtype: torch.dtype, device: torch.device | str | None,
        tags: Any = (), rank_bound: int | None = None,
    ) -> None:
        if (not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                           and s >= 0 for s in shape)):
            raise ShapeError(f"shape must be a pair (m, n) of ints >= 0, got {shape!r}; e.g. "
                             f"shape=(3, 2)")
        self._shape = (int(shape[0]), int(shape[1]))
        self._dtype = _validate.floating_dtype(dtype)
        self._device = _validate.device(device if device is not None else "cpu")
        if rank_bound is not None:
            rank_bound = _validate.nonnegative_int(rank_bound, "rank_bound")
        self._tags, self._rank_bound = normalize_tags(tags, self._shape, rank_bound)
        self._T: JacobianOperator | None = None
        self._vmap_ok = True

    # ------------------------------------------------------------------ description
    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: the operator maps vectors of length ``n`` to vectors of length ``m``."""
        return self._shape

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def tags(self) -> frozenset[str]:
        """Structure promises from :mod:`jacobite.operators.tags` (closed under implication)."""
        return self._tags

    @property
    def rank_bound(self) -> int | None:
        """An upper bound on the rank below ``min(m, n)`` (tag ``"low_rank"``), else ``None``."""
        return self._rank_bound

    def is_square(self) -> bool:
        return self._shape[0] == self._shape[1]

    def is_symmetric(self) -> bool:
        return SYMMETRIC in self._tags

    def is_psd(self) -> bool:
        return PSD in self._tags

    def is_diagonal(self) -> bool:
        return DIAGONAL in self._tags

    def is_lower_triangular(self) -> bool:
        return LOWER_TRIANGULAR in self._tags

    def is_upper_triangular(self) -> bool:
        return UPPER_TRIANGULAR in self._tags

    def is_triangular(self) -> bool:
        return bool(self._tags & {LOWER_TRIANGULAR, UPPER_TRIANGULAR})

    def is_low_rank(self) -> bool:
        return LOW_RANK in self._tags

    def is_scaled_identity(self) -> bool:
        return SCALED_IDENTITY in self._tags

    def is_identity(self) -> bool:
        return IDENTITY in self._tags

    def __repr__(self) -> str:
        extra = f", rank_bound={self._rank_bound}" if self._rank_bound is not None else ""
        return (f"{type(self).__name__}(shape={self._shape}, dtype={self._dtype}, "
                f"tags={sorted(self._tags)}{extra})")

    # ------------------------------------------------------------------ products
    @abc.abstractmethod
    def _mv(self, v: torch.Tensor, /) -> torch.Tensor: ...

    @abc.abstractmethod
    def _rmv(self, u: torch.Tensor, /) -> torch.Tensor: ...

    def _batched(self, fn: Any, mat: torch.Tensor, out_rows: int) -> torch.Tensor:
        if mat.shape[1] == 0:
            return mat.new_zeros((out_rows, 0))
        if self._vmap_ok:
            try:
                return torch.func.vmap(fn, in_dims=1, out_dims=1)(mat)
            except Exception:  # vmap cannot trace every closure: fall back to a loop
                self._vmap_ok = False
        return torch.stack([fn(mat[:, j]) for j in range(mat.shape[1])], dim=1)

    def _mm(self, V: torch.Tensor, /) -> torch.Tensor:
        return self._batched(self._mv, V, self._shape[0])

    def _rmm(self, U: torch.Tensor, /) -> torch.Tensor:
        return self._batched(self._rmv, U, self._shape[1])

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``J @ v`` for ``v`` of shape ``(n,)``; returns shape ``(m,)``."""
        return self._mv(chk.check_vector(self, v, self._shape[1], "mv", "mm"))

    def rmv(self, u: torch.Tensor) -> torch.Tensor:
        """``J.T @ u`` for ``u`` of shape ``(m,)``; returns shape ``(n,)`` (no conjugation)."""
        return self._rmv(chk.check_vector(self, u, self._shape[0], "rmv", "rmm"))

    def mm(self, V: torch.Tensor) -> torch.Tensor:
        """``J @ V`` for ``V`` of shape ``(n, k)``; returns ``(m, k)``."""
        return self._mm(chk.check_matrix(self, V, self._shape[1], "mm"))

    def rmm(self, U: torch.Tensor) -> torch.Tensor:
        """``J.T @ U`` for ``U`` of shape ``(m, k)``; returns ``(n, k)``."""
        return self._rmm(chk.check_matrix(self, U, self._shape[0], "rmm"))

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, JacobianOperator):
            from .composed import Composed

            return Composed(self, other)
        if isinstance(other, torch.Tensor):
            if other.ndim == 1:
                return self.mv(other)
            if other.ndim == 2:
                return self.mm(other)
            raise ShapeError(
                f"operator @ tensor needs a 1-D (n,) or 2-D (n, k) tensor, got shape "
                f"{tuple(other.shape)}; reshape batches to (n, k) first"
            )
        return NotImplemented

    def __rmatmul__(self, other: Any) -> Any:
        if isinstance(other, torch.Tensor):
            if other.ndim == 1:
                return self.rmv(other)
            if other.ndim == 2:
                return self.rmm(other.mT).mT
            raise ShapeError(
                f"tensor @ operator needs a 1-D (m,) or 2-D (k, m) tensor, got shape "
                f"{tuple(other.shape)}"
            )
        return NotImplemented

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, other: Any) -> Any:
        if not isinstance(other, JacobianOperator):
            return NotImplemented
        from .arithmetic import SumOperator

        return SumOperator(self, other)

    def __sub__(self, other: Any) -> Any:
        if not isinstance(other, JacobianOperator):
            return NotImplemented
        return self + (-1.0) * other

    def __neg__(self) -> JacobianOperator:
        return (-1.0) * self

    def __mul__(self, c: Any) -> Any:
        if isinstance(c, JacobianOperator) or not (
            isinstance(c, (int, float, complex)) or (isinstance(c, torch.Tensor) and c.numel() == 1)
        ):
            return NotImplemented
        from .arithmetic import ScaledOperator

        return ScaledOperator(c, self)

    __rmul__ = __mul__

    def __truediv__(self, c: Any) -> Any:
        if isinstance(c, JacobianOperator):
            return NotImplemented
        return self * (1.0 / c)

    # ------------------------------------------------------------------ transpose
    @property
    def T(self) -> JacobianOperator:
        """The transpose, with transposed tags; cached, so ``op.T.T is op``."""
        if self._T is None:
            t = self._transpose()
            if t is not self:
                t._T = self
            self._T = t
        return self._T

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        from .composed import Transposed

        return Transposed(self)

    # ------------------------------------------------------------------ materialisation
    def to_dense(self) -> torch.Tensor:
        """The ``(m, n)`` matrix; raises :class:`JacobianTooLarge` above the memory budget."""
        chk.ensure_fits(self, self._shape, "to_dense()")
        return self._to_dense()

    def _to_dense(self) -> torch.Tensor:
        return self._mm(torch.eye(self._shape[1], dtype=self._dtype, device=self._device))

    def diagonal(self) -> torch.Tensor:
        """The main diagonal (length ``min(m, n)``), cheap where the structure allows."""
        return self._diagonal()

    def _diagonal(self) -> torch.Tensor:
        return L.probe_diagonal(self, get_memory_budget())

    def trace(self) -> torch.Tensor:
        """Sum of the main diagonal (square operators)."""
        chk.check_square(self, "trace")
        return self.diagonal().sum()

    def to_sparse(self) -> torch.Tensor:
        """The matrix as a torch sparse CSR tensor (``layout=torch.sparse_csr``).

        Diagonal, block-diagonal and sparse operators build it without densifying; others
        go through :meth:`to_dense` (and its memory budget). Explicit zeros may be stored.
        """
        return self._to_sparse()

    def _to_sparse(self) -> torch.Tensor:
        return _csr.dense_to_csr(self.to_dense())

    def to_scipy(self) -> sp.csr_array:
        """The matrix as a ``scipy.sparse.csr_array`` (on the CPU)."""
        return _csr.torch_to_scipy(self.to_sparse())

    def as_linear_operator(self) -> spla.LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` (NumPy in/out) for SciPy's solvers and svds.

        ``rmatvec`` is the conjugate transpose, as SciPy expects.
        """
        return L.to_linear_operator(self)

    # ------------------------------------------------------------------ linear algebra
    def slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sign, log|det|)`` like ``torch.linalg.slogdet``, using the structure where it can.

        A singular operator gives ``(0, -inf)``, never the sign and size of a rounding error:
        singular by structure (a ``rank_bound`` below ``n``, a zero on the diagonal of a
        diagonal or triangular operator, a vanishing capacitance in the determinant lemma of
        :class:`~jacobite.operators.DiagonalPlusLowRank`), or numerically singular when
        materialised (``σ_min ≤ n · eps · σ_max``, the ``torch.linalg.matrix_rank`` rule).
        Tags such as ``psd`` never stand in for this test. NaN or Inf in the matrix raise
        :class:`~jacobite.errors.NonFiniteInputError`.

        >>> import torch
        >>> from jacobite.operators import DenseOperator
        >>> DenseOperator(torch.tensor([[1.0, 2.0], [2.0, 4.0]]), tags="psd").slogdet()
        (tensor(0.), tensor(-inf))
        """
        chk.check_square(self, "slogdet")
        sign, logabsdet = self._slogdet()
        return sign, logabsdet

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._rank_bound is not None:  # rank < n: singular
            zero = torch.zeros((), dtype=self._dtype, device=self._device)
            return zero, torch.full((), -torch.inf, dtype=zero.real.dtype, device=self._device)
        if self.is_diagonal() or self.is_triangular():
            return L.slogdet_from_diagonal(self.diagonal())
        return L.slogdet_dense(self.to_dense())

    def logdet(self) -> torch.Tensor:
        """``log det`` like ``torch.logdet``: ``nan`` for a negative, ``-inf`` for a zero det."""
        sign, lad = self.slogdet()
        if sign.is_complex():
            return lad + sign.log()
        nan = torch.full_like(lad, torch.nan)
        return torch.where(sign < 0, nan, torch.where(sign == 0, -torch.inf, lad))

    def det(self) -> torch.Tensor:
        """The determinant ``sign * exp(logabsdet)``."""
        sign, lad = self.slogdet()
        return sign * lad.exp()

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``x`` with ``J x = b`` for ``b`` of shape ``(n,)`` or ``(n, k)``, via the structure.

        Singular operators (by the rule of :meth:`slogdet`) raise
        :class:`SingularOperatorError`, whose message names :meth:`lstsq`; NaN or Inf in ``b``
        or in the matrix raise :class:`~jacobite.errors.NonFiniteInputError`.
        """
        chk.check_square(self, "solve")
        B, vec = chk.check_rhs(self, b, "solve")
        x = self._solve(B)
        return x[:, 0] if vec else x

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        n = self._shape[0]
        if self._rank_bound is not None:
            raise SingularOperatorError(
                f"cannot solve: the operator is tagged low_rank with rank_bound "
                f"{self._rank_bound} < n = {n}, so it is singular; use op.lstsq(b) for a "
                f"least-squares / minimum-norm solution"
            )
        if self.is_diagonal():
            return L.divide_by_diagonal(self.diagonal(), B)
        if self.is_triangular():
            return L.solve_triangular_dense(self.to_dense(), B, upper=self.is_upper_triangular())
        return L.solve_dense(self.to_dense(), B)

    def lstsq(self, b: torch.Tensor) -> torch.Tensor:
        """Minimum-norm least-squares solution of ``J x ≈ b``; ``b`` is ``(m,)`` or ``(m, k)``.

        Uses the pseudo-inverse of the dense matrix when it fits the memory budget, else LSMR.
        """
        B, vec = chk.check_rhs(self, b, "lstsq")
        x = self._lstsq(B)
        return x[:, 0] if vec else x

    def _lstsq(self, B: torch.Tensor) -> torch.Tensor:
        try:
            chk.ensure_fits(self, self._shape, "lstsq()")
        except JacobianTooLarge:
            return L.iterative_lstsq(self, B)
        out = torch.promote_types(self._dtype, B.dtype)  # half precision: pinv in float32
        return (torch.linalg.pinv(L.lapack(self.to_dense())) @ L.lapack(B)).to(out)
