"""Operators in float16 and bfloat16: every method that factorises (slogdet, solve, lstsq, tag
checks with eigenvalues or ranks, the determinant lemma and Woodbury) runs in float32 and answers
in the operator's dtype — against torch.linalg in float64 on the same half-precision entries."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    ScaledIdentity,
    SparseOperator,
    infer_tags,
    verify_tags,
)

HALF = [torch.float16, torch.bfloat16]
N = 4


def _parts(seed: int, dt: torch.dtype):
    g = torch.Generator().manual_seed(seed)
    A = (0.3 * torch.randn(N, N, generator=g) + 2 * torch.eye(N)).to(dt)
    d = (torch.rand(N, generator=g) + 1).to(dt)
    U = (0.3 * torch.randn(N, 2, generator=g)).to(dt)
    return A, d, U


def _build(kind: str, seed: int, dt: torch.dtype):
    """``(op, M)``: the operator and its float64 matrix from the same half-precision entries."""
    A, d, U = _parts(seed, dt)
    A64, d64, U64 = A.double(), d.double(), U.double()
    if kind == "dense":
        return DenseOperator(A), A64
    if kind == "lower":
        return DenseOperator(A.tril(), tags="lower_triangular"), A64.tril()
    if kind == "psd":
        S = (A64 @ A64.T).to(dt)
        return DenseOperator(S, tags="psd"), S.double()
    if kind == "diagonal":
        return DiagonalOperator(d), torch.diag(d64)
    if kind == "scaled_identity":
        return ScaledIdentity(d[0], N), d64[0] * torch.eye(N, dtype=torch.float64)
    if kind == "dplr":
        return DiagonalPlusLowRank(d, U), torch.diag(d64) + U64 @ U64.T
    if kind == "block":
        blocks = torch.stack([A[:2, :2], A[2:, 2:]])
        return BlockDiagonal(blocks), torch.block_diag(A64[:2, :2], A64[2:, 2:])
    if kind == "sparse":
        return SparseOperator(A.to_sparse_csr()), A64
    if kind == "function":
        return FunctionOperator((N, N), lambda v: A @ v, lambda u: A.T @ u, dtype=dt), A64
    if kind == "composed":
        return DenseOperator(A) @ DiagonalOperator(d), A64 @ torch.diag(d64)
    return DenseOperator(A) + DiagonalOperator(d), A64 + torch.diag(d64)  # "sum"


KINDS = ["dense", "lower", "psd", "diagonal", "scaled_identity", "dplr", "block", "sparse",
         "function", "composed", "sum"]


def _tol(dt: torch.dtype) -> float:
    return 40 * torch.finfo(dt).eps  # the operators' own products round to the dtype


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16))
@pytest.mark.parametrize("dt", HALF)
@pytest.mark.parametrize("kind", KINDS)
def test_slogdet_solve_and_lstsq_answer_in_the_operators_dtype(kind, dt, seed):
    op, M = _build(kind, seed, dt)
    want_sign, want_lad = torch.linalg.slogdet(M)
    sign, lad = op.slogdet()
    assert sign.dtype == dt and lad.dtype == dt
    assert float(sign) == float(want_sign)
    assert float(lad) == pytest.approx(float(want_lad), abs=_tol(dt) * N)
    b = torch.linspace(-1, 1, N, dtype=dt)
    want = torch.linalg.solve(M, b.double())
    for got in (op.solve(b), op.lstsq(b)):
        assert got.dtype == dt
        torch.testing.assert_close(got.double(), want, rtol=_tol(dt), atol=_tol(dt))
    assert op.det().dtype == dt and op.logdet().dtype == dt


@pytest.mark.parametrize("dt", HALF)
def test_tag_checks_with_eigenvalues_and_ranks_run_in_half_precision(dt):
    A, _, U = _parts(0, dt)
    S = (A.double() @ A.double().T).to(dt)
    assert "psd" in infer_tags(S)
    verify_tags(DenseOperator(S, tags="psd"))
    op = DenseOperator((U @ U.T), rank_bound=2)  # a rank check through matrix_rank
    assert op.slogdet()[0] == 0 and op.slogdet()[0].dtype == dt


@pytest.mark.parametrize("dt", HALF)
def test_a_singular_half_precision_matrix_is_singular_by_its_own_rounding(dt):
    S = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=dt)
    sign, lad = DenseOperator(S).slogdet()
    assert float(sign) == 0 and lad == -torch.inf and lad.dtype == dt
