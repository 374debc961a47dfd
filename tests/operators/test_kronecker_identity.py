"""KroneckerIdentity equals torch.kron(A, I_k) in every product, its diagonal, transpose, solve
and slogdet, for random shapes and factors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import DtypeError, InvalidOptionError, ShapeError, SingularOperatorError
from jacobite.operators import KroneckerIdentity

from .dense_oracle import assert_solve_and_slogdet_equal_dense

F64 = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-10}


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 4), q=st.integers(1, 4), k=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_products_equal_torch_kron_with_the_identity(p, q, k, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, q, dtype=F64, generator=g)
    K, D = KroneckerIdentity(A, k), torch.kron(A, torch.eye(k, dtype=F64))
    v, u = torch.randn(q * k, dtype=F64, generator=g), torch.randn(p * k, dtype=F64, generator=g)
    V, U = torch.randn(q * k, 3, dtype=F64, generator=g), torch.randn(p * k, 2, dtype=F64,
                                                                       generator=g)
    torch.testing.assert_close(K.to_dense(), D, **TOL)
    torch.testing.assert_close(K.mv(v), D @ v, **TOL)
    torch.testing.assert_close(K.rmv(u), D.T @ u, **TOL)
    torch.testing.assert_close(K.mm(V), D @ V, **TOL)
    torch.testing.assert_close(K.rmm(U), D.T @ U, **TOL)
    torch.testing.assert_close(K.T.to_dense(), D.T, **TOL)
    torch.testing.assert_close(K.diagonal(), D.diagonal(), **TOL)  # length min(p k, q k)


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 4), k=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_solve_and_slogdet_equal_the_dense_matrix(p, k, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, p, dtype=F64, generator=g) + 3 * torch.eye(p, dtype=F64)
    K, D = KroneckerIdentity(A, k), torch.kron(A, torch.eye(k, dtype=F64))
    b = torch.randn(p * k, 2, dtype=F64, generator=g)
    assert_solve_and_slogdet_equal_dense(K, D, b)


def test_symmetric_factor_gives_a_symmetric_operator_and_its_own_transpose():
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=F64)
    K = KroneckerIdentity(A, 3)
    assert K.is_symmetric() and K.T is K
    assert not KroneckerIdentity(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), 2) \
        .is_symmetric()


def test_memory_holds_the_factor_only():
    A = torch.randn(1, 129, dtype=F64)
    K = KroneckerIdentity(A, 3100)  # φᵀ ⊗ I for 3100 labels, never 3100 x 399900 numbers
    assert K.shape == (3100, 129 * 3100) and K.A.numel() == 129
    v = torch.randn(129 * 3100, dtype=F64)
    torch.testing.assert_close(K.mv(v), v.view(129, 3100).T @ A[0], **TOL)


def test_singular_factor_is_refused_with_the_fix():
    K = KroneckerIdentity(torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64), 2)
    assert K.slogdet()[1] == -torch.inf
    with pytest.raises(SingularOperatorError, match="lstsq"):
        K.solve(torch.ones(4, dtype=F64))


@pytest.mark.parametrize(("A", "k", "err"), [
    (torch.ones(3, dtype=F64), 2, ShapeError), ("abc", 2, DtypeError),
    (torch.ones(2, 2, dtype=torch.int64), 2, DtypeError), (torch.eye(2, dtype=F64), 0,
                                                           InvalidOptionError)])
def test_bad_arguments_raise_typed_errors(A, k, err):
    with pytest.raises(err):
        KroneckerIdentity(A, k)
