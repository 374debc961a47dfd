"""Tag vocabulary, closure and propagation rules."""

from __future__ import annotations

import pytest
import torch

from jacobite.operators import (
    ALL_TAGS,
    BlockDiagonal,
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
    InvalidTagError,
    LowRankOperator,
    ScaledIdentity,
    Transposed,
    infer_tags,
    verify_tags,
)
from jacobite.operators.tags import close_tags, compose_tags, normalize_tags

DT = torch.float64
g = torch.Generator().manual_seed(0)


def rnd(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=DT)


def test_vocabulary():
    assert {"diagonal", "symmetric", "psd", "lower_triangular", "upper_triangular",
                        "low_rank", "scaled_identity", "identity"} == ALL_TAGS


def test_closure():
    assert close_tags({"psd"}) == {"psd", "symmetric"}
    assert close_tags({"diagonal"}) == {"diagonal", "symmetric", "lower_triangular",
                                        "upper_triangular"}
    assert "diagonal" in close_tags({"lower_triangular", "upper_triangular"})


def test_diagonal_at_diagonal_is_diagonal():
    A, B = DiagonalOperator(rnd(4)), DiagonalOperator(rnd(4))
    P = A @ B
    assert P.is_diagonal() and P.is_symmetric()
    torch.testing.assert_close(P.diagonal(), A.d * B.d)


def test_diagonal_psd_products_stay_psd():
    A, B = DiagonalOperator(rnd(3).abs()), DiagonalOperator(rnd(3).abs())
    assert (A @ B).is_psd()
    assert not (A @ DiagonalOperator(-rnd(3).abs())).is_psd()


def test_triangular_products():
    L1 = DenseOperator(rnd(4, 4).tril(), tags=("lower_triangular",))
    L2 = DenseOperator(rnd(4, 4).tril(), tags=("lower_triangular",))
    assert (L1 @ L2).is_lower_triangular() and not (L1 @ L2).is_upper_triangular()
    assert (L1.T @ L2.T).is_upper_triangular()
    assert (L1 @ DiagonalOperator(rnd(4))).is_lower_triangular()
    assert not (L1 @ L2.T).is_triangular()


@pytest.mark.parametrize("m", [2, 5])
def test_gram_products_are_symmetric_psd(m):
    A = DenseOperator(rnd(m, 3))
    for G in (A.T @ A, A @ A.T):
        assert G.is_symmetric() and G.is_psd()
        verify_tags(G)
    # Transposed built directly is recognised too
    T = Transposed(DenseOperator(rnd(3, m)))
    assert (T @ T.base).is_psd() and (T.base @ T).is_psd()


def test_gram_detection_needs_the_same_object():
    M = rnd(3, 3)
    A, B = DenseOperator(M), DenseOperator(M.T.clone())
    assert not (B @ A).is_symmetric()


def test_symmetric_times_symmetric_is_not_symmetric():
    S1, S2 = rnd(3, 3), rnd(3, 3)
    A = DenseOperator(S1 + S1.T, tags=("symmetric",))
    B = DenseOperator(S2 + S2.T, tags=("symmetric",))
    P = A @ B
    assert not P.is_symmetric()
    M = P.to_dense()
    assert not torch.allclose(M, M.T)


def test_symmetric_square_is_gram():
    S = rnd(3, 3)
    A = DenseOperator(S + S.T, tags=("symmetric",))
    assert A.T is A
    assert (A @ A).is_psd()
    verify_tags(A @ A)


def test_low_rank_bound_propagates():
    U = rnd(6, 2)
    P = LowRankOperator(U, rnd(5, 2))
    assert P.rank_bound == 2 and P.is_low_rank()
    Q = P @ DenseOperator(rnd(5, 7))
    assert Q.rank_bound == 2
    R = DenseOperator(rnd(4, 6)) @ P
    assert R.rank_bound == 2
    assert (P @ LowRankOperator(rnd(5, 1), rnd(3, 1))).rank_bound == 1
    assert (P + P).rank_bound == 4
    assert (3.0 * P).rank_bound == 2
    assert P.T.rank_bound == 2
    # the inner dimension bounds the rank of a product
    thin = DenseOperator(rnd(6, 2)) @ DenseOperator(rnd(2, 6))
    assert thin.rank_bound == 2
    # a bound that is not below min(m, n) says nothing and is dropped
    assert LowRankOperator(rnd(3, 3)).rank_bound is None
    assert not LowRankOperator(rnd(3, 3)).is_low_rank()


def test_low_rank_singular_fast_path():
    P = LowRankOperator(rnd(5, 2))
    sign, lad = P.slogdet()
    assert float(sign) == 0 and lad == -torch.inf


def test_scaled_identity_keeps_structure():
    S = rnd(3, 3)
    A = DenseOperator(S @ S.T, tags=("psd",))
    assert (ScaledIdentity(2.0, 3, dtype=DT) @ A).is_psd()
    assert not (ScaledIdentity(-2.0, 3, dtype=DT) @ A).is_psd()
    assert (ScaledIdentity(-2.0, 3, dtype=DT) @ A).is_symmetric()
    I = ScaledIdentity.identity(3, dtype=DT)
    assert (I @ I).is_identity()
    assert (I @ A).tags == A.tags


def test_scalar_and_sum_rules():
    S = rnd(3, 3)
    A = DenseOperator(S @ S.T, tags=("psd",))
    assert (2 * A).is_psd() and not (-A).is_psd() and (-A).is_symmetric()
    assert (A + A).is_psd()
    assert (A - A).tags == {"symmetric"}
    I = ScaledIdentity.identity(3, dtype=DT)
    assert (I + I).is_scaled_identity() and not (I + I).is_identity()
    assert (0.5 * (I + I)).is_scaled_identity()


def test_transpose_tags_and_cache():
    L = DenseOperator(rnd(3, 3).tril(), tags=("lower_triangular",))
    assert L.T.is_upper_triangular() and not L.T.is_lower_triangular()
    assert L.T.T is L
    D = DiagonalOperator(rnd(3))
    assert D.T is D


def test_softmax_tags():
    s = torch.softmax(rnd(6), 0)
    J = DiagonalPlusLowRank.softmax(s)
    assert J.is_symmetric() and J.is_psd()
    verify_tags(J)
    # not a probability vector (sum > 1): no psd claim, and indeed not psd
    J2 = DiagonalPlusLowRank.softmax(3 * s)
    assert J2.is_symmetric() and not J2.is_psd()
    assert float(torch.linalg.eigvalsh(J2.to_dense()).min()) < 0


@pytest.mark.parametrize("c, psd", [(-0.1, True), (-50.0, False), (2.0, True)])
def test_dplr_psd_certificate(c, psd):
    d, U = rnd(5).abs() + 1, rnd(5, 2)
    J = DiagonalPlusLowRank(d, U, core=c)
    assert J.is_psd() is psd
    assert (float(torch.linalg.eigvalsh(J.to_dense()).min()) >= -1e-12) is psd


def test_block_tags():
    blocks = rnd(3, 2, 2)
    assert BlockDiagonal(blocks @ blocks.mT, "infer").is_psd()
    assert BlockDiagonal(rnd(4, 1, 1)).is_diagonal()
    assert BlockDiagonal(blocks.tril(), ("lower_triangular",)).T.is_upper_triangular()
    with pytest.raises(InvalidTagError, match="not every block"):
        BlockDiagonal(blocks, ("symmetric",))


def test_declared_tags_are_checked():
    with pytest.raises(InvalidTagError, match=r"declared tag\(s\) \['symmetric'\]"):
        DenseOperator(rnd(3, 3), tags=("symmetric",))
    with pytest.raises(InvalidTagError, match="rank_bound"):
        DenseOperator(rnd(3, 3), rank_bound=1)
    # unchecked claims are trusted (documented)
    DenseOperator(rnd(3, 3), tags=("symmetric",), check_tags=False)


def test_invalid_tags():
    with pytest.raises(InvalidTagError, match="vocabulary"):
        DenseOperator(rnd(2, 2), tags=("orthogonal",))
    with pytest.raises(InvalidTagError, match="square"):
        DenseOperator(rnd(2, 3), tags=("symmetric",))
    with pytest.raises(InvalidTagError, match="pass rank_bound"):
        normalize_tags(("low_rank",), (3, 3))
    with pytest.raises(InvalidTagError, match="non-negative int"):
        normalize_tags((), (3, 3), rank_bound=-1)
    with pytest.raises(InvalidTagError, match="does not satisfy"):
        verify_tags(FunctionOperator((2, 2), lambda v: torch.stack([v[1], v[0] * 0]),
                                     dtype=DT, tags=("lower_triangular",)))


def test_infer_tags():
    assert infer_tags(torch.eye(3, dtype=DT)) >= {"identity", "psd", "diagonal"}
    assert infer_tags(2 * torch.eye(3, dtype=DT)) >= {"scaled_identity", "psd"}
    assert infer_tags(rnd(2, 3)) == frozenset()
    assert "psd" not in infer_tags(-torch.eye(2, dtype=DT))


def test_compose_tags_rule_table():
    lower, diag = close_tags({"lower_triangular"}), close_tags({"diagonal"})
    assert compose_tags(lower, diag)[0] == {"lower_triangular"}
    tags, bound = compose_tags(frozenset(), frozenset({"low_rank"}), rank_b=2)
    assert tags == {"low_rank"} and bound == 2
