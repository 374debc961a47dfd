"""Hostile values for jacobite.operators: singular, ill-conditioned, non-finite, empty,
non-square, extreme-scale and integer matrices behind every operator kind, against
torch.linalg / scipy.linalg."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from jacobite.errors import (
    DtypeError,
    InvalidTagError,
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    SingularOperatorError,
)
from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    LowRankOperator,
    SparseOperator,
    as_operator,
    infer_tags,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64

SINGULAR = {
    "rank-1": lambda: DenseOperator(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64)),
    "zero": lambda: DenseOperator(torch.zeros(3, 3, dtype=F64)),
    "near-singular": lambda: DenseOperator(torch.tensor([[1.0, 1.0], [1.0, 1.0 + 1e-17]],
                                                        dtype=F64)),
    "zero-diagonal": lambda: DiagonalOperator(torch.tensor([1.0, 0.0, 2.0], dtype=F64)),
    "low-rank": lambda: LowRankOperator(torch.ones(3, 1, dtype=F64), torch.ones(3, 1, dtype=F64)),
    "sparse": lambda: SparseOperator(torch.diag(torch.tensor([1.0, 0.0, 1.0], dtype=F64))
                                     .to_sparse_csr()),
}


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("name", sorted(SINGULAR))
def test_singular_operators_refuse_solve_naming_lstsq(name):
    op = SINGULAR[name]()
    with refuses(SingularOperatorError, "op.lstsq(b)"):
        op.solve(torch.ones(op.shape[0], dtype=F64))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("name", sorted(SINGULAR))
def test_singular_operators_have_slogdet_zero_and_minus_inf(name):
    with within():
        sign, logabs = SINGULAR[name]().slogdet()
    assert float(sign) == 0.0 and float(logabs) == -np.inf


@pytest.mark.parametrize(("scale", "want"), [(1e300, 2 * np.log(1e300)),
                                             (1e-300, 2 * np.log(1e-300)),
                                             (5e-324, 2 * np.log(5e-324))],
                         ids=["huge", "tiny", "subnormal"])
def test_slogdet_at_extreme_scales_does_not_overflow(scale, want):
    A = torch.eye(2, dtype=F64) * scale
    with within():
        sign, logabs = DenseOperator(A).slogdet()
        dsign, dlog = DiagonalOperator(torch.full((2,), scale, dtype=F64)).slogdet()
    assert float(sign) == 1.0 and float(dsign) == 1.0
    assert_close(logabs, want, rtol=1e-12)
    assert_close(dlog, want, rtol=1e-12)


@pytest.mark.parametrize("diag", [[-2.0, 3.0], [-1.0, -1.0, -1.0], [1e-200, -1e200]])
def test_slogdet_of_a_diagonal_with_negative_entries_matches_numpy(diag):
    d = torch.tensor(diag, dtype=F64)
    with within():
        sign, logabs = DiagonalOperator(d).slogdet()
    wsign, wlog = np.linalg.slogdet(np.diag(diag))
    assert float(sign) == wsign
    assert_close(logabs, wlog, rtol=1e-12)


def test_a_well_conditioned_solve_matches_scipy():
    A = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=F64)
    b = torch.tensor([1e-300, 1.0, -1e300], dtype=F64)
    with within():
        x = DenseOperator(A).solve(b)
    assert_close(x, scipy.linalg.solve(A.numpy(), b.numpy()), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_matrices_are_refused_naming_nan_to_num(bad):
    with refuses(NonFiniteInputError, "nan_to_num"):
        DenseOperator(torch.tensor([[1.0, bad], [0.0, 1.0]], dtype=F64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nonfinite_right_hand_side_is_refused(bad):
    with refuses(NonFiniteInputError, "nan_to_num(b)"):
        DenseOperator(torch.eye(2, dtype=F64)).solve(torch.tensor([1.0, bad], dtype=F64))


def test_a_nan_vector_flows_through_mv_as_nan():
    y = DenseOperator(torch.eye(2, dtype=F64)).mv(torch.tensor([1.0, float("nan")], dtype=F64))
    assert bool(torch.isnan(y[1]))


@pytest.mark.parametrize("method", ["slogdet", "solve"])
def test_non_square_operators_are_refused(method):
    op = DenseOperator(torch.ones(2, 3, dtype=F64))
    with refuses(NotSquareError, "square"):
        op.slogdet() if method == "slogdet" else op.solve(torch.ones(2, dtype=F64))


def test_the_empty_operator_has_determinant_one():
    with within():
        sign, logabs = DenseOperator(torch.zeros(0, 0, dtype=F64)).slogdet()
    assert float(sign) == 1.0 and float(logabs) == 0.0


@pytest.mark.parametrize("shape", [(3,), (), (2, 2, 2)])
def test_non_matrix_tensors_are_refused(shape):
    with refuses(ShapeError, "2 dimension(s)"):
        DenseOperator(torch.ones(shape, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_matrices_are_refused_naming_the_conversion(dtype):
    with refuses(DtypeError, "to(torch.float64)"):
        DenseOperator(torch.eye(2, dtype=dtype))


def test_mv_with_a_vector_of_the_wrong_length_is_refused():
    with refuses(ShapeError, "pass a vector with 2 entries"):
        DenseOperator(torch.eye(2, dtype=F64)).mv(torch.ones(3, dtype=F64))


def test_a_false_tag_is_refused_naming_check_tags():
    with refuses(InvalidTagError, "check_tags=False"):
        DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), tags=("symmetric",))


def test_composing_mismatched_shapes_is_refused():
    A = DenseOperator(torch.ones(2, 3, dtype=F64))
    with refuses(ShapeError, "inner dimensions"):
        A @ A


@pytest.mark.parametrize(("make", "row_sum"), [
    (lambda: DiagonalOperator(torch.ones(100_000, dtype=F64)), 1.0),
    (lambda: BlockDiagonal(torch.ones(50_000, 2, 2, dtype=F64)), 2.0),
], ids=["diagonal", "block-diagonal"])
def test_densifying_a_huge_operator_is_refused_before_allocation(make, row_sum):
    op = make()
    with refuses(JacobianTooLarge, "mv", seconds=3.0):
        op.to_dense()
    v = torch.ones(op.shape[1], dtype=F64)
    with within(3.0):
        assert_close(op.mv(v)[:4], torch.full((4,), row_sum, dtype=F64))


def test_a_transposed_view_gives_the_contiguous_answer():
    A = torch.tensor([[2.0, 1.0], [0.5, 3.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)
    with within():
        x = DenseOperator(A.t()).solve(b)
    assert_close(x, np.linalg.solve(A.T.numpy(), b.numpy()), rtol=1e-13)


def test_a_numpy_matrix_becomes_an_operator_with_numpys_determinant():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    with within():
        sign, logabs = as_operator(A).slogdet()
    assert_close(sign * torch.exp(logabs), np.linalg.det(A), rtol=1e-13)


def test_infer_tags_of_a_nan_matrix_is_refused():
    with refuses(NonFiniteInputError, "nan_to_num"):
        infer_tags(torch.tensor([[float("nan")]]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_operators_factorise_in_float32_and_answer_in_their_dtype(dtype):
    A = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=dtype)
    b = torch.tensor([1.0, -1.0, 0.5], dtype=dtype)
    tol = 20 * torch.finfo(dtype).eps
    for op in (DenseOperator(A, tags="psd"), BlockDiagonal(A[None]),
               SparseOperator(A.to_sparse_csr())):
        with within():
            sign, lad = op.slogdet()
            x, y = op.solve(b), op.lstsq(b)
        assert sign.dtype == lad.dtype == x.dtype == y.dtype == dtype
        want_sign, want_lad = np.linalg.slogdet(A.double().numpy())
        assert float(sign) == want_sign
        assert_close(lad, want_lad, rtol=tol, atol=tol)
        want_x = scipy.linalg.solve(A.double().numpy(), b.double().numpy())
        assert_close(x, want_x, rtol=tol, atol=tol)
        assert_close(y, want_x, rtol=tol, atol=tol)
