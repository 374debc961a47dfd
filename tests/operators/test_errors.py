"""Bad inputs raise typed errors whose message names the fix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import jacobite.errors
from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    InvalidTagError,
    JacobiteError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)
from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    ScaledIdentity,
    SingularOperatorError,
    SparseOperator,
    SumOperator,
    as_operator,
    infer_tags,
    verify_tags,
)

DT = torch.float64
A = DenseOperator(torch.randn(4, 3, dtype=DT))
S = DenseOperator(torch.randn(3, 3, dtype=DT))


def test_wrong_vector_length():
    with pytest.raises(ShapeError, match=r"expects a vector of length 3 .* got length 4"):
        A.mv(torch.ones(4, dtype=DT))
    with pytest.raises(ShapeError, match=r"length 4 .* got length 3"):
        A.rmv(torch.ones(3, dtype=DT))


def test_matrix_passed_to_mv_hints_mm():
    with pytest.raises(ShapeError, match="use mm"):
        A.mv(torch.ones(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match=r"shape \(3, k\)"):
        A.mm(torch.ones(4, 2, dtype=DT))
    with pytest.raises(ShapeError, match=r"\(m,\) or 2-D"):
        A.__rmatmul__(torch.ones(1, 1, 4, dtype=DT))
    with pytest.raises(ShapeError, match="reshape batches"):
        A @ torch.ones(3, 1, 1, dtype=DT)


def test_dtype_mismatch():
    with pytest.raises(DtypeError, match=r"convert it with x\.to\(torch\.float64\)"):
        A.mv(torch.ones(3))
    with pytest.raises(DtypeError, match=r"torch\.as_tensor"):
        A.mv(np.ones(3))
    with pytest.raises(DtypeError, match="same dtype"):
        A @ DenseOperator(torch.ones(3, 3))
    with pytest.raises(DtypeError, match=r"matrix\.to\(torch\.float64\)"):
        DenseOperator(torch.ones(2, 2, dtype=torch.int64))


def test_incompatible_composition():
    with pytest.raises(ShapeError, match=r"\(4, 3\) @ \(4, 3\).*inner dimensions 3 and 4"):
        A @ A
    with pytest.raises(ShapeError, match="same shape"):
        SumOperator(A, S)
    with pytest.raises(DtypeError, match="DenseOperator"):
        SumOperator(A, torch.ones(4, 3))  # type: ignore[arg-type]


def test_square_only_operations():
    with pytest.raises(NotSquareError, match="lstsq"):
        A.solve(torch.ones(4, dtype=DT))
    with pytest.raises(NotSquareError, match=r"J\.T @ J"):
        A.slogdet()
    with pytest.raises(NotSquareError):
        A.logdet()
    with pytest.raises(NotSquareError):
        A.trace()
    assert issubclass(NotSquareError, ShapeError)


def test_bad_right_hand_side():
    with pytest.raises(ShapeError, match=r"shape \(3,\) or \(3, k\)"):
        S.solve(torch.ones(4, dtype=DT))
    with pytest.raises(ShapeError, match=r"shape \(4,\) or \(4, k\)"):
        A.lstsq(torch.ones(3, dtype=DT))


def test_bad_constructor_arguments():
    with pytest.raises(ShapeError, match="2 dimension"):
        DenseOperator(torch.ones(3, dtype=DT))
    with pytest.raises(ShapeError, match="3 dimension"):
        BlockDiagonal(torch.ones(3, 3, dtype=DT))
    with pytest.raises(ShapeError, match="DiagonalOperator"):
        ScaledIdentity(torch.ones(3), 3)
    with pytest.raises(ShapeError, match="rows"):
        DiagonalPlusLowRank(torch.ones(3, dtype=DT), torch.ones(4, 1, dtype=DT))
    with pytest.raises(ShapeError, match="same number of columns"):
        DiagonalPlusLowRank(torch.ones(3, dtype=DT), torch.ones(3, 1, dtype=DT),
                            torch.ones(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match=r"\(2, 2\) matrix"):
        DiagonalPlusLowRank(torch.ones(3, dtype=DT), torch.ones(3, 2, dtype=DT),
                            core=torch.ones(3, 3, dtype=DT))
    with pytest.raises(DtypeError, match=r"U\.to\(torch\.float64\)"):
        DiagonalPlusLowRank(torch.ones(3, dtype=DT), torch.ones(3, 1))
    with pytest.raises(DtypeError, match="DenseOperator"):
        SparseOperator(torch.ones(2, 2))
    with pytest.raises(DtypeError, match=r"dtype=torch\.float64"):
        FunctionOperator((2, 2), lambda v: v, dtype=torch.int32)
    with pytest.raises(ShapeError, match="pair"):
        FunctionOperator((2, 2, 2), lambda v: v, dtype=DT)
    with pytest.raises(DtypeError, match="cannot turn"):
        as_operator("matrix")


def test_singular_solve_names_the_fix():
    with pytest.raises(SingularOperatorError, match=r"position 1.*lstsq"):
        DiagonalOperator(torch.tensor([1.0, 0.0], dtype=DT)).solve(torch.ones(2, dtype=DT))
    with pytest.raises(SingularOperatorError, match="singular"):
        DenseOperator(torch.ones(2, 2, dtype=DT)).solve(torch.ones(2, dtype=DT))
    L = DenseOperator(torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=DT), tags="infer")
    assert L.is_lower_triangular()
    with pytest.raises(SingularOperatorError, match="triangular"):
        L.solve(torch.ones(2, dtype=DT))
    assert issubclass(SingularOperatorError, JacobiteError)
    assert SingularOperatorError is jacobite.errors.SingularOperatorError


def test_unknown_solve_method():
    F = FunctionOperator((2, 2), lambda v: v, dtype=DT)
    with pytest.raises(InvalidOptionError, match="'gmres', 'cg', 'dense'"):
        F.solve(torch.ones(2, dtype=DT), method="lu")


@pytest.mark.parametrize("build", [
    lambda: DiagonalOperator(torch.tensor([1.0, float("nan")], dtype=DT)),
    lambda: DenseOperator(torch.tensor([[1.0, float("inf")], [0.0, 1.0]], dtype=DT)),
    lambda: ScaledIdentity(float("nan"), 3),
    lambda: SparseOperator(sp.csr_matrix(([float("nan")], ([0], [0])), shape=(2, 2))),
])
def test_non_finite_entries_are_refused(build):
    with pytest.raises(NonFiniteInputError, match="finite"):
        build()


def test_option_types_of_the_constructors():
    with pytest.raises(InvalidTagError, match=r"e\.g\. tags="):
        DenseOperator(torch.eye(2, dtype=DT), tags=3)
    with pytest.raises(ArgumentTypeError, match="check_tags must be True or False"):
        DenseOperator(torch.eye(2, dtype=DT), check_tags="yes")
    with pytest.raises(ArgumentTypeError, match="n must be an int"):
        ScaledIdentity(1.0, True)
    with pytest.raises(ArgumentTypeError, match="torch dtype"):
        ScaledIdentity(1.0, 2, dtype="float64")
    with pytest.raises(ShapeError, match="pair"):
        FunctionOperator(None, lambda v: v, dtype=DT)
    with pytest.raises(ArgumentTypeError, match="mv must be a callable"):
        FunctionOperator((2, 2), "v", dtype=DT)


def test_infer_and_verify_tags_check_their_arguments():
    with pytest.raises(ArgumentTypeError, match="tensor"):
        infer_tags([[1.0]])
    with pytest.raises(ShapeError, match="at least 2"):
        infer_tags(torch.ones(3, dtype=DT))
    with pytest.raises(InvalidOptionError, match="atol"):
        infer_tags(torch.eye(2, dtype=DT), atol=float("nan"))
    with pytest.raises(ArgumentTypeError, match="as_operator"):
        verify_tags(torch.eye(2, dtype=DT))
