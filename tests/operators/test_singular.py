"""Singular operators are reported as singular: slogdet is (0, -inf), solve refuses.

The oracle is torch.linalg.matrix_rank / slogdet of a matrix built independently of the
operator methods (see tests/operators/strategies.py for the convention).
"""

from __future__ import annotations

import math

import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.errors import NonFiniteInputError, SingularOperatorError
from jacobite.operators import (
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    LowRankOperator,
    ScaledIdentity,
    SparseOperator,
)

from .strategies import DT, randn, square_operator, structured_operator

SETTINGS = settings(max_examples=max(60, settings.default.max_examples), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SINGULAR_KINDS = ("dense", "dense_psd", "diagonal", "lower", "dplr", "softmax", "block",
                  "sparse", "function", "lowrank")


def _rank_deficient(g: torch.Generator, n: int, k: int) -> torch.Tensor:
    return randn(g, n, k) @ randn(g, k, n)


def _function(M: torch.Tensor) -> FunctionOperator:
    return FunctionOperator(tuple(M.shape), lambda v: M @ v, lambda u: M.T @ u, dtype=DT)


def _well_conditioned(g: torch.Generator, n: int) -> torch.Tensor:
    Q, _ = torch.linalg.qr(randn(g, n, n))
    return Q * torch.linspace(1.0, 3.0, n, dtype=DT)


@st.composite
def singular_leaf(draw, n: int):
    """A singular ``(n, n)`` operator (no rank_bound unless its kind implies one) and its matrix."""
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(SINGULAR_KINDS))
    k = draw(st.integers(0, n - 1))
    if kind == "dense":
        M = _rank_deficient(g, n, k)
        return DenseOperator(M), M
    if kind == "dense_psd":  # the psd tag must not make the sign +1
        W = randn(g, n, k)
        return DenseOperator(W @ W.T, tags=("psd",), check_tags=False), W @ W.T
    if kind == "diagonal":
        d = randn(g, n)
        d[draw(st.integers(0, n - 1))] = 0.0
        return DiagonalOperator(d), torch.diag(d)
    if kind == "lower":
        M = randn(g, n, n).tril()
        M[draw(st.integers(0, n - 1))].fill_(0.0)
        return DenseOperator(M, tags=("lower_triangular",)), M
    if kind == "dplr":  # core = -(V^T D^-1 U)^-1 makes the capacitance vanish
        r = max(k, 1)
        d = randn(g, n).abs() + 0.5
        U, V = randn(g, n, r), randn(g, n, r)
        core = -torch.linalg.inv(V.T @ (U / d[:, None]))
        return DiagonalPlusLowRank(d, U, V, core=core), torch.diag(d) + U @ core @ V.T
    if kind == "softmax":
        s = torch.softmax(2 * randn(g, n), 0)
        return DiagonalPlusLowRank.softmax(s), torch.diag(s) - torch.outer(s, s)
    if kind == "block":
        p = draw(st.sampled_from([q for q in range(1, n + 1) if n % q == 0]))
        blocks = randn(g, n // p, p, p)
        i = draw(st.integers(0, n // p - 1))
        blocks[i] = _rank_deficient(g, p, draw(st.integers(0, p - 1)))
        return BlockDiagonal(blocks), torch.block_diag(*blocks)
    if kind == "sparse":
        M = _rank_deficient(g, n, k)
        return SparseOperator(sp.csr_array(M.numpy())), M
    if kind == "function":
        M = _rank_deficient(g, n, k)
        return _function(M), M
    M = _rank_deficient(g, n, k)
    U, V = randn(g, n, k), randn(g, n, k)
    return LowRankOperator(U, V), U @ V.T


@st.composite
def singular_operator(draw):
    """A singular leaf, alone or inside a product, sum, scaling or transpose."""
    n = draw(st.integers(1, 7))
    S, M = draw(singular_leaf(n))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    how = draw(st.sampled_from(["leaf", "left", "right", "sum", "scale", "transpose"]))
    if how in ("left", "right"):
        N = _well_conditioned(g, n)
        return (DenseOperator(N) @ S, N @ M) if how == "left" else (S @ DenseOperator(N), M @ N)
    if how == "sum":  # (R - N) + N: singular although neither term is (integers: exact)
        k = draw(st.integers(0, n - 1))
        R = (torch.randint(-3, 4, (n, k), generator=g) @ torch.randint(-3, 4, (k, n), generator=g)
             ).to(DT)
        N = torch.randint(-3, 4, (n, n), generator=g).to(DT) + 20 * torch.eye(n, dtype=DT)
        return DenseOperator(R - N) + DenseOperator(N), R
    if how == "scale":
        return -2.5 * S, -2.5 * M
    if how == "transpose":
        return S.T, M.T
    return S, M


@SETTINGS
@given(singular_operator(), st.integers(0, 2**31 - 1))
def test_singular_operators_say_so(pair, seed):
    op, M = pair
    n = M.shape[0]
    # the oracle agrees the matrix is singular, up to the rounding that built it from O(1)
    # ingredients (a softmax Jacobian formed as diag(s) - s s^T carries errors of eps * max(s)
    # in entries of size s; a 1 x 1 d + u c v that cancels leaves a rounding error)
    assert int(torch.linalg.matrix_rank(M, atol=1e-10, rtol=1e-10)) < n
    sign, lad = op.slogdet()
    assert float(sign) == 0 and float(lad) == -math.inf
    assert float(op.det()) == 0 and float(op.logdet()) == -math.inf
    # uniform, not normal, draws: b never repeats a column the operator was built from (a b in
    # the range makes a consistent system, which a Krylov solve may answer)
    b = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=DT) + 0.5
    with pytest.raises(SingularOperatorError, match=r"lstsq"):
        op.solve(b)


@SETTINGS
@given(st.one_of(square_operator(), structured_operator(depth=2)))
def test_nonsingular_slogdet_matches_torch(pair):
    op, M = pair
    n = M.shape[0]
    s = torch.linalg.svdvals(M)
    if float(s[-1]) <= 1e-6 * float(s[0]):  # near the boundary the oracle itself is unsure
        return
    assert int(torch.linalg.matrix_rank(M)) == n
    sign, lad = op.slogdet()
    ref = torch.linalg.slogdet(M)
    assert float(sign) == float(ref.sign)
    assert float(lad) == pytest.approx(float(ref.logabsdet), rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(8))
def test_softmax_jacobian_is_singular(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.softmax(torch.randn(4, generator=g, dtype=dtype), 0)
    J = DiagonalPlusLowRank.softmax(s)
    M = torch.diag(s) - torch.outer(s, s)
    assert int(torch.linalg.matrix_rank(M)) == 3
    assert J.rank_bound == 3 and J.is_psd()
    sign, lad = J.slogdet()
    assert float(sign) == 0 and float(lad) == -math.inf
    with pytest.raises(SingularOperatorError, match=r"op\.lstsq\(b\)"):
        J.solve(torch.ones(4, dtype=dtype))
    # the same matrix without the softmax structure: the lemma and the dense path agree
    plain = DiagonalPlusLowRank(s, s, core=-1.0)
    assert float(plain.slogdet()[0]) == 0
    with pytest.raises(SingularOperatorError, match="lstsq"):
        plain.solve(torch.ones(4, dtype=dtype))
    dense = DenseOperator(J.to_dense())
    assert float(dense.slogdet()[0]) == 0
    with pytest.raises(SingularOperatorError, match="lstsq"):
        dense.solve(torch.ones(4, dtype=dtype))
    # a least-squares solve is the offered fix, and it works: 1 is in the null space
    b = torch.ones(4, dtype=dtype) - 4 * s
    torch.testing.assert_close(J.lstsq(b), torch.linalg.pinv(M) @ b, rtol=1e-4, atol=1e-4)


def test_softmax_of_a_vector_not_summing_to_one_is_regular():
    s = torch.tensor([0.2, 0.3, 0.1], dtype=DT)
    J = DiagonalPlusLowRank.softmax(s)
    M = torch.diag(s) - torch.outer(s, s)
    assert J.rank_bound is None
    sign, lad = J.slogdet()
    ref = torch.linalg.slogdet(M)
    assert float(sign) == float(ref.sign) and float(lad) == pytest.approx(float(ref.logabsdet))
    b = torch.tensor([1.0, 2.0, 3.0], dtype=DT)
    torch.testing.assert_close(J.solve(b), torch.linalg.solve(M, b))


def test_krylov_solve_refuses_a_blown_up_solution():
    s = torch.softmax(torch.tensor([0.3, -1.2, 2.0, 0.1], dtype=DT), 0)
    M = torch.diag(s) - torch.outer(s, s)
    op = FunctionOperator((4, 4), lambda v: M @ v, lambda u: M.T @ u, dtype=DT)
    for b in (torch.ones(4, dtype=DT), torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=DT)):
        with pytest.raises(SingularOperatorError, match="lstsq"):
            op.solve(b)
    # a budget too small to materialise J: the bound alone decides (Krylov "converges" to a
    # vector of size 1e16)
    with jacobite.config.memory_budget(64), \
            pytest.raises(SingularOperatorError, match="condition number"):
        op.solve(torch.ones(4, dtype=DT))


def test_dplr_with_near_zero_diagonal_uses_the_dense_rule():
    d = torch.tensor([1e-300, 1.0, 2.0], dtype=DT)
    u = torch.tensor([1.0, 1.0, 1.0], dtype=DT)
    J = DiagonalPlusLowRank(d, u, core=-1.0 / (1e300 + 1.5))
    M = J.to_dense()
    assert int(torch.linalg.matrix_rank(M)) < 3
    assert float(J.slogdet()[0]) == 0
    with pytest.raises(SingularOperatorError):
        J.solve(u)


def test_non_finite_entries_raise():
    nan = torch.tensor([1.0, math.nan], dtype=DT)
    for build in (DiagonalOperator, lambda t: DenseOperator(torch.diag(t)),
                  lambda t: DiagonalPlusLowRank(t, torch.ones(2, dtype=DT)),
                  lambda t: BlockDiagonal(torch.diag(t)[None]), lambda t: LowRankOperator(t),
                  lambda t: SparseOperator(sp.csr_array(torch.diag(t).numpy()))):
        with pytest.raises(NonFiniteInputError, match=r"nan_to_num|clean"):
            build(nan)
    with pytest.raises(NonFiniteInputError):
        ScaledIdentity(math.inf, 2)
    bad = FunctionOperator((2, 2), lambda v: v * math.nan, lambda u: u * math.nan, dtype=DT)
    with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
        bad.slogdet()
    with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
        bad.solve(torch.ones(2, dtype=DT))
    huge = DenseOperator(torch.full((2, 2), 1e308, dtype=DT) + torch.eye(2, dtype=DT))
    with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
        (huge + huge).slogdet()  # the sum overflows to Inf when materialised
    inf = SparseOperator(sp.csr_array([[1.0, math.inf], [0.0, 2.0]]), check_finite=False)
    with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
        inf.slogdet()
    with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
        inf.solve(torch.ones(2, dtype=DT))
    with pytest.raises(NonFiniteInputError, match="right-hand side"):
        DiagonalOperator(torch.ones(2, dtype=DT)).solve(nan)
