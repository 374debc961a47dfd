"""Lazy Jacobian operators: the structure layer of jacobite.

An operator is an ``(m, n)`` matrix known through products ``mv`` (``J v``) and ``rmv``
(``J^T u``), with *tags* (``"diagonal"``, ``"symmetric"``, ``"psd"``,
``"lower_triangular"``, ``"upper_triangular"``, ``"low_rank"``, ``"scaled_identity"``,
``"identity"``) that unlock fast ``slogdet``, ``solve``, ``diagonal`` and ``to_sparse``.
Tags propagate through ``@`` (composition), ``.T``, ``+`` and scalar ``*``.

This package depends only on torch, NumPy, SciPy and ``jacobite.errors``/``jacobite.config``;
the compute layer builds operators from closures with :class:`FunctionOperator`.

>>> import torch
>>> from jacobite.operators import DenseOperator, DiagonalOperator
>>> A = DenseOperator(torch.tensor([[2.0, 0.0], [1.0, 1.0]]), tags=("lower_triangular",))
>>> D = DiagonalOperator(torch.tensor([1.0, 3.0]))
>>> J = A @ D
>>> sorted(J.tags), J.slogdet()
(['lower_triangular'], (tensor(1.), tensor(1.7918)))
"""

from ..errors import ConvergenceError, InvalidTagError, SingularOperatorError
from .arithmetic import ScaledOperator, SumOperator
from .base import JacobianOperator
from .block import BlockDiagonal
from .composed import Composed, Transposed
from .convert import as_operator
from .dense import DenseOperator
from .diagonal import DiagonalOperator, ScaledIdentity
from .function import FunctionOperator
from .kronecker import KroneckerOperator
from .kronecker_identity import KroneckerIdentity
from .lowrank import DiagonalPlusLowRank, LowRankOperator
from .sparse import SparseOperator
from .tags import (
    ALL_TAGS,
    DIAGONAL,
    IDENTITY,
    LOW_RANK,
    LOWER_TRIANGULAR,
    PSD,
    SCALED_IDENTITY,
    SYMMETRIC,
    UPPER_TRIANGULAR,
    infer_tags,
    verify_tags,
)

__all__ = [
    "ALL_TAGS",
    "DIAGONAL",
    "IDENTITY",
    "LOWER_TRIANGULAR",
    "LOW_RANK",
    "PSD",
    "SCALED_IDENTITY",
    "SYMMETRIC",
    "UPPER_TRIANGULAR",
    "BlockDiagonal",
    "Composed",
    "ConvergenceError",
    "DenseOperator",
    "DiagonalOperator",
    "DiagonalPlusLowRank",
    "FunctionOperator",
    "InvalidTagError",
    "JacobianOperator",
    "KroneckerIdentity",
    "KroneckerOperator",
    "LowRankOperator",
    "ScaledIdentity",
    "ScaledOperator",
    "SingularOperatorError",
    "SparseOperator",
    "SumOperator",
    "Transposed",
    "as_operator",
    "infer_tags",
    "verify_tags",
]
