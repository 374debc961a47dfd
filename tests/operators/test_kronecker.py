"""KroneckerOperator equals torch.kron (plus the shift) in every product, its diagonal, solve,
slogdet and inverse square root, for random shapes and factors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import ArgumentTypeError, InvalidOptionError, SingularOperatorError
from jacobite.operators import KroneckerOperator

from .dense_oracle import assert_solve_and_slogdet_equal_dense

F64 = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-10}


def _spd(n: int, g: torch.Generator) -> torch.Tensor:
    M = torch.randn(n, n, dtype=F64, generator=g)
    return M @ M.T + 0.5 * torch.eye(n, dtype=F64)


@settings(max_examples=40, deadline=None)
@given(p=st.integers(1, 4), q=st.integers(1, 4), r=st.integers(1, 4), s=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_products_equal_torch_kron_for_rectangular_factors(p, q, r, s, seed):
    g = torch.Generator().manual_seed(seed)
    A, B = torch.randn(p, q, dtype=F64, generator=g), torch.randn(r, s, dtype=F64, generator=g)
    K, D = KroneckerOperator(A, B), torch.kron(A, B)
    v, u = torch.randn(q * s, dtype=F64, generator=g), torch.randn(p * r, dtype=F64, generator=g)
    V = torch.randn(q * s, 3, dtype=F64, generator=g)
    torch.testing.assert_close(K.to_dense(), D, **TOL)
    torch.testing.assert_close(K.mv(v), D @ v, **TOL)
    torch.testing.assert_close(K.rmv(u), D.T @ u, **TOL)
    torch.testing.assert_close(K.mm(V), D @ V, **TOL)
    torch.testing.assert_close(K.T.mv(u), D.T @ u, **TOL)


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 4), r=st.integers(1, 4), shift=st.sampled_from([0.0, 0.3, 2.0]),
       seed=st.integers(0, 2**16))
def test_symmetric_factors_solve_slogdet_and_inverse_square_root(p, r, shift, seed):
    g = torch.Generator().manual_seed(seed)
    A, B = _spd(p, g), _spd(r, g)
    K = KroneckerOperator(A, B, shift=shift)
    D = torch.kron(A, B) + shift * torch.eye(p * r, dtype=F64)
    assert K.is_symmetric() and K.is_psd()
    b = torch.randn(p * r, 2, dtype=F64, generator=g)
    torch.testing.assert_close(K.to_dense(), D, **TOL)
    torch.testing.assert_close(K.diagonal(), D.diagonal(), **TOL)
    assert_solve_and_slogdet_equal_dense(K, D, b, solve_rtol=1e-7)
    R = K.inv_sqrt().to_dense()
    torch.testing.assert_close(R @ D @ R, torch.eye(p * r, dtype=F64), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(R, R.T, rtol=1e-9, atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 3), r=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_general_square_factors_solve_and_slogdet_by_their_lu(p, r, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(p, p, dtype=F64, generator=g) + 3 * torch.eye(p, dtype=F64)
    B = torch.randn(r, r, dtype=F64, generator=g) - 3 * torch.eye(r, dtype=F64)
    A[0, -1] += 1.0  # not symmetric (for p > 1)
    K, D = KroneckerOperator(A, B), torch.kron(A, B)
    b = torch.randn(p * r, dtype=F64, generator=g)
    assert_solve_and_slogdet_equal_dense(K, D, b)


def test_singular_factor_is_refused_by_solve_and_gives_minus_infinity_logdet():
    A = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)  # rank 1
    K = KroneckerOperator(A, torch.eye(2, dtype=F64))
    assert K.slogdet()[1] == -torch.inf and K.slogdet()[0] == 0
    with pytest.raises(SingularOperatorError, match="shift"):
        K.solve(torch.ones(4, dtype=F64))
    with pytest.raises(SingularOperatorError, match="shift"):
        K.inv_sqrt()
    # damping makes it definite
    Kd = KroneckerOperator(A, torch.eye(2, dtype=F64), shift=0.1)
    D = torch.kron(A, torch.eye(2, dtype=F64)) + 0.1 * torch.eye(4, dtype=F64)
    torch.testing.assert_close(Kd.solve(torch.ones(4, dtype=F64)),
                               torch.linalg.solve(D, torch.ones(4, dtype=F64)))


def test_shift_needs_symmetric_factors_and_a_nonnegative_value():
    with pytest.raises(InvalidOptionError, match="symmetric"):
        KroneckerOperator(torch.randn(2, 3), torch.eye(2), shift=1.0)
    with pytest.raises(InvalidOptionError, match="shift"):
        KroneckerOperator(torch.eye(2), torch.eye(2), shift=-1.0)


def test_declared_psd_leaves_the_eigendecompositions_to_the_first_solve():
    g = torch.Generator().manual_seed(0)
    A, B = _spd(3, g), _spd(2, g)
    K = KroneckerOperator(A, B, shift=0.2, psd=True)
    assert K.is_psd() and K._eig is None
    b = torch.randn(6, dtype=F64, generator=g)
    D = torch.kron(A, B) + 0.2 * torch.eye(6, dtype=F64)
    torch.testing.assert_close(K.solve(b), torch.linalg.solve(D, b), rtol=1e-8, atol=1e-10)
    assert KroneckerOperator(A, B).is_psd()
    assert not KroneckerOperator(A, -B).is_psd()
    with pytest.raises(ArgumentTypeError, match="psd"):
        KroneckerOperator(A, B, psd="yes")
