"""Structure tags: a fixed vocabulary, closure rules, propagation rules and checks.

A tag is a *promise* about the matrix an operator represents; fast paths (``slogdet``
from the diagonal, triangular solves, ...) rely on it, so every rule here is sound:
a tag is only kept when it is guaranteed to hold.

Vocabulary (all but ``"low_rank"`` imply a square operator):

* ``"diagonal"`` -- only the main diagonal is non-zero (implies symmetric and both
  triangular tags);
* ``"symmetric"`` -- ``J == J.T``;
* ``"psd"`` -- symmetric positive semidefinite (implies ``"symmetric"``);
* ``"lower_triangular"`` / ``"upper_triangular"`` (both together imply ``"diagonal"``);
* ``"low_rank"`` -- ``rank(J) <= rank_bound < min(m, n)``; the bound is the operator's
  ``rank_bound`` attribute;
* ``"scaled_identity"`` -- ``J == s * I`` (implies ``"diagonal"``);
* ``"identity"`` -- ``J == I`` (implies ``"scaled_identity"`` and ``"psd"``).

>>> sorted(close_tags({"identity"}))  # doctest: +NORMALIZE_WHITESPACE
['diagonal', 'identity', 'lower_triangular', 'psd', 'scaled_identity', 'symmetric',
 'upper_triangular']
>>> sorted(transpose_tags(frozenset({"lower_triangular"})))
['upper_triangular']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidTagError,
    NonFiniteInputError,
    ShapeError,
)
from .linalg import lapack, matrix_rank

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
    "close_tags",
    "compose_tags",
    "infer_tags",
    "normalize_tags",
    "scale_tags",
    "sum_tags",
    "transpose_tags",
    "verify_tags",
]

DIAGONAL = "diagonal"
SYMMETRIC = "symmetric"
PSD = "psd"
LOWER_TRIANGULAR = "lower_triangular"
UPPER_TRIANGULAR = "upper_triangular"
LOW_RANK = "low_rank"
SCALED_IDENTITY = "scaled_identity"
IDENTITY = "identity"

ALL_TAGS: frozenset[str] = frozenset(
    {DIAGONAL, SYMMETRIC, PSD, LOWER_TRIANGULAR, UPPER_TRIANGULAR, LOW_RANK, SCALED_IDENTITY,
     IDENTITY}
)
#: Tags that only make sense for square operators.
SQUARE_TAGS: frozenset[str] = ALL_TAGS - {LOW_RANK}
# Tags kept by a sum of two operators that both carry them.
_SUM_KEPT = frozenset({DIAGONAL, SYMMETRIC, PSD, LOWER_TRIANGULAR, UPPER_TRIANGULAR,
                       SCALED_IDENTITY})


def close_tags(tags: Iterable[str]) -> frozenset[str]:
    """Add every tag implied by the given ones (the closure under the implication rules).

    >>> sorted(close_tags({"lower_triangular", "upper_triangular"}))
    ['diagonal', 'lower_triangular', 'symmetric', 'upper_triangular']
    """
    out = set(tags)
    while True:
        before = len(out)
        if IDENTITY in out:
            out |= {SCALED_IDENTITY, PSD}
        if SCALED_IDENTITY in out:
            out.add(DIAGONAL)
        if LOWER_TRIANGULAR in out and UPPER_TRIANGULAR in out:
            out.add(DIAGONAL)
        if DIAGONAL in out:
            out |= {SYMMETRIC, LOWER_TRIANGULAR, UPPER_TRIANGULAR}
        if PSD in out:
            out.add(SYMMETRIC)
        if len(out) == before:
            return frozenset(out)


def tag_names(tags: Any) -> frozenset[str]:
    """The declared tags as a set of names: one name, or a collection of them.

    >>> sorted(tag_names("psd")), sorted(tag_names(("psd", "symmetric")))
    (['psd'], ['psd', 'symmetric'])
    """
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, Iterable) or not all(isinstance(t, str) for t in tags):
        raise InvalidTagError(f"tags must be a tag name or a collection of them, got {tags!r}; "
                              f"e.g. tags=('symmetric',)")
    return frozenset(tags)


def normalize_tags(
    tags: Iterable[str] | str, shape: tuple[int, int], rank_bound: int | None = None
) -> tuple[frozenset[str], int | None]:
    """Validate declared tags against the vocabulary and the shape; return ``(tags, rank_bound)``.

    ``"low_rank"`` is present exactly when a useful ``rank_bound`` (``< min(m, n)``) is known;
    a bound that is not below ``min(m, n)`` says nothing and is dropped.

    >>> normalize_tags(("low_rank",), (4, 3), rank_bound=1)
    (frozenset({'low_rank'}), 1)
    >>> normalize_tags((), (4, 3), rank_bound=3)
    (frozenset(), None)
    """
    tags = tag_names(tags)
    unknown = tags - ALL_TAGS
    if unknown:
        raise InvalidTagError(
            f"unknown tag(s) {sorted(unknown)}; use only tags from the vocabulary "
            f"{sorted(ALL_TAGS)} (see jacobite.operators.tags)"
        )
    m, n = shape
    if m != n and tags & SQUARE_TAGS:
        raise InvalidTagError(
            f"tag(s) {sorted(tags & SQUARE_TAGS)} only apply to square operators, but the shape "
            f"is {(m, n)}; drop them (only 'low_rank' fits a rectangular operator)"
        )
    if rank_bound is not None:
        if isinstance(rank_bound, bool) or int(rank_bound) != rank_bound or rank_bound < 0:
            raise InvalidTagError(
                f"rank_bound must be a non-negative int, got {rank_bound!r}"
            )
        rank_bound = int(rank_bound)
        if rank_bound >= min(m, n):
            rank_bound = None
    elif LOW_RANK in tags:
        raise InvalidTagError(
            "tag 'low_rank' needs a bound: pass rank_bound=<int> (an upper bound on the rank)"
        )
    tags = tags - {LOW_RANK}
    if rank_bound is not None:
        tags = tags | {LOW_RANK}
    return close_tags(tags), rank_bound


def transpose_tags(tags: frozenset[str]) -> frozenset[str]:
    """Tags of ``J.T``: lower and upper triangular swap, everything else is kept.

    >>> sorted(transpose_tags(frozenset({"upper_triangular", "low_rank"})))
    ['low_rank', 'lower_triangular']
    """
    out = set(tags) - {LOWER_TRIANGULAR, UPPER_TRIANGULAR}
    if LOWER_TRIANGULAR in tags:
        out.add(UPPER_TRIANGULAR)
    if UPPER_TRIANGULAR in tags:
        out.add(LOWER_TRIANGULAR)
    return frozenset(out)


def _min_bound(*bounds: int | None) -> int | None:
    known = [b for b in bounds if b is not None]
    return min(known) if known else None


def compose_tags(
    a: frozenset[str], b: frozenset[str], *, gram: bool = False,
    rank_a: int | None = None, rank_b: int | None = None,
) -> tuple[frozenset[str], int | None]:
    """Tags and rank bound of the product ``A @ B`` given those of the factors.

    ``gram=True`` says that one factor is the transpose of the other (``A.T @ A`` or
    ``A @ A.T``), which makes the product symmetric positive semidefinite.

    >>> sorted(compose_tags(frozenset({"lower_triangular"}), close_tags({"diagonal"}))[0])
    ['lower_triangular']
    >>> compose_tags(close_tags({"symmetric"}), close_tags({"symmetric"}))[0]
    frozenset()
    >>> sorted(compose_tags(frozenset(), frozenset(), gram=True)[0])
    ['psd', 'symmetric']
    """
    out: set[str] = set()
    for tag in (DIAGONAL, LOWER_TRIANGULAR, UPPER_TRIANGULAR, SCALED_IDENTITY, IDENTITY):
        if tag in a and tag in b:
            out.add(tag)
    # s*I @ B and A @ s*I keep the structure of the other factor (psd only when s >= 0).
    for s, other in ((a, b), (b, a)):
        if SCALED_IDENTITY in s:
            out |= other & {DIAGONAL, SYMMETRIC, LOWER_TRIANGULAR, UPPER_TRIANGULAR}
            if PSD in s and PSD in other:
                out.add(PSD)
    # Two commuting diagonal PSD matrices multiply to a diagonal PSD matrix.
    if DIAGONAL in a and DIAGONAL in b and PSD in a and PSD in b:
        out.add(PSD)
    if gram:
        out |= {SYMMETRIC, PSD}
    bound = _min_bound(rank_a, rank_b)
    if bound is not None:
        out.add(LOW_RANK)
    return close_tags(out), bound


def sum_tags(
    a: frozenset[str], b: frozenset[str], rank_a: int | None = None, rank_b: int | None = None
) -> tuple[frozenset[str], int | None]:
    """Tags of ``A + B``: structure both share (identity becomes scaled identity); rank adds.

    >>> sorted(sum_tags(close_tags({"identity"}), close_tags({"identity"}))[0])
    ['diagonal', 'lower_triangular', 'psd', 'scaled_identity', 'symmetric', 'upper_triangular']
    """
    out = set(a & b & _SUM_KEPT)
    bound = rank_a + rank_b if rank_a is not None and rank_b is not None else None
    if bound is not None:
        out.add(LOW_RANK)
    return close_tags(out), bound


def scale_tags(tags: frozenset[str], c: complex | float) -> frozenset[str]:
    """Tags of ``c * J``: psd survives only ``c >= 0``, identity only ``c == 1``.

    >>> sorted(scale_tags(close_tags({"psd"}), -2.0))
    ['symmetric']
    """
    out = set(tags)
    real = isinstance(c, (int, float)) or (isinstance(c, complex) and c.imag == 0)
    c_real = c.real if isinstance(c, complex) else c
    if not (real and c_real >= 0):
        out.discard(PSD)
    if not (real and c_real == 1):
        out.discard(IDENTITY)
    return close_tags(out)


def _tol(matrix: torch.Tensor, atol: float | None) -> float:
    if atol is not None:
        return float(atol)
    if matrix.numel() == 0:
        return 0.0
    eps = torch.finfo(matrix.real.dtype if matrix.is_complex() else matrix.dtype).eps
    scale = float(matrix.abs().max())
    return 64.0 * max(matrix.shape[-1], 1) * eps * max(scale, 1e-300)


def infer_tags(matrix: torch.Tensor, *, atol: float | None = None) -> frozenset[str]:
    """Structural tags that hold (up to ``atol``) for ``matrix`` or for every matrix of a batch.

    ``matrix`` has shape ``(n, n)`` or ``(..., n, n)``. ``atol`` defaults to a small multiple of
    machine epsilon times the largest entry. ``"low_rank"`` is never inferred.

    >>> sorted(infer_tags(torch.tensor([[2.0, 0.0], [1.0, 3.0]])))
    ['lower_triangular']
    >>> sorted(infer_tags(torch.tensor([[2.0, 1.0], [1.0, 2.0]])))
    ['psd', 'symmetric']
    """
    if not isinstance(matrix, torch.Tensor):
        raise ArgumentTypeError(f"matrix must be a tensor, got {type(matrix).__name__}; pass "
                                f"e.g. torch.as_tensor(a, dtype=torch.float64)")
    if not (matrix.is_floating_point() or matrix.is_complex()):
        raise DtypeError(f"matrix has dtype {matrix.dtype}; convert it with "
                         f"matrix.to(torch.float64)")
    if matrix.ndim < 2:
        raise ShapeError(f"matrix must have at least 2 dimensions (a matrix or a batch of "
                         f"them), got shape {tuple(matrix.shape)}; reshape it first")
    if not _validate.all_finite(matrix):
        raise NonFiniteInputError("matrix contains NaN or Inf; clean it first (e.g. "
                                  "torch.nan_to_num)")
    if atol is not None:
        atol = _validate.tolerance(atol, "atol")
    if matrix.shape[-1] != matrix.shape[-2]:
        return frozenset()
    tol = _tol(matrix, atol)
    out: set[str] = set()
    n = matrix.shape[-1]
    if bool((matrix.tril(-1).abs() <= tol).all()):
        out.add(UPPER_TRIANGULAR)
    if bool((matrix.triu(1).abs() <= tol).all()):
        out.add(LOWER_TRIANGULAR)
    if bool(((matrix - matrix.mT).abs() <= tol).all()):
        out.add(SYMMETRIC)
        if not matrix.is_complex() and n > 0:
            sym = (matrix + matrix.mT) / 2
            if bool((torch.linalg.eigvalsh(lapack(sym)).amin(-1) >= -tol).all()):
                out.add(PSD)
    eye = torch.eye(n, dtype=matrix.dtype, device=matrix.device)
    if {LOWER_TRIANGULAR, UPPER_TRIANGULAR} <= out and n > 0:
        d = matrix.diagonal(dim1=-2, dim2=-1)
        if bool(((d - d[..., :1]).abs() <= tol).all()):
            out.add(SCALED_IDENTITY)
        if bool(((matrix - eye).abs() <= tol).all()):
            out.add(IDENTITY)
    return close_tags(out)


def verify_tags(op: Any, *, atol: float | None = None) -> None:
    """Check every tag claim (and the rank bound) of ``op`` numerically on ``op.to_dense()``.

    Raises :class:`~jacobite.errors.InvalidTagError` listing the claims that fail. Meant for
    small operators (tests, debugging): it materialises the matrix and computes eigenvalues.

    >>> from jacobite.operators import DenseOperator
    >>> verify_tags(DenseOperator(torch.eye(3), tags=("psd",)))
    """
    from .base import JacobianOperator

    if not isinstance(op, JacobianOperator):
        raise ArgumentTypeError(f"op must be a JacobianOperator, got {type(op).__name__}; wrap "
                                f"a matrix with jacobite.operators.as_operator(matrix)")
    if atol is not None:
        atol = _validate.tolerance(atol, "atol")
    dense = op.to_dense()
    found = infer_tags(dense, atol=atol)
    wrong = sorted((set(op.tags) - {LOW_RANK}) - found)
    if op.rank_bound is not None:
        rank = matrix_rank(dense, atol) if dense.numel() else 0
        if rank > op.rank_bound:
            wrong.append(f"low_rank (rank {rank} > rank_bound {op.rank_bound})")
    if wrong:
        raise InvalidTagError(
            f"the matrix does not satisfy the tag(s) {wrong} claimed by {op!r}; drop these tags "
            f"(or fix the matrix so that they hold)"
        )
