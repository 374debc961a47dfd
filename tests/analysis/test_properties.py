"""The properties report against NumPy oracles, and the softmax Jacobian's known properties."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobite.analysis import JacobianProperties, properties
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)
from jacobite.nn import softmax_jacobian
from jacobite.operators import DenseOperator, DiagonalOperator, DiagonalPlusLowRank

DT = torch.float64


@given(st.lists(st.floats(-8, 8), min_size=2, max_size=8))
def test_softmax_jacobian_properties(logits: list[float]) -> None:
    K = len(logits)
    p = properties(softmax_jacobian(torch.tensor(logits, dtype=DT)))
    assert p.symmetric and p.psd
    assert max(abs(s) for s in p.row_sums) < 1e-15
    assert max(abs(s) for s in p.column_sums) < 1e-15
    assert p.rank == K - 1 and p.nullity == 1
    np.testing.assert_allclose(p.null_space[0], np.full(K, 1 / math.sqrt(K)), atol=1e-10)
    assert p.determinant == 0.0 and p.condition_number == math.inf
    assert p.declared_tags == ("low_rank", "psd", "symmetric")


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=10))
def test_softmax_eigenvalues_lie_in_zero_half(logits: list[float]) -> None:
    """Proof by test of the 1/2 bound (Gershgorin: each disc is [0, 2 s_i (1 - s_i)])."""
    p = properties(softmax_jacobian(torch.tensor(logits, dtype=DT)))
    assert -p.tol <= p.eigenvalues[0]
    assert p.eigenvalues[-1] <= 0.5 + p.tol


def test_reference_004_quarter_bound_is_wrong() -> None:
    """Reference 004 claims the largest eigenvalue is at most 1/4; sigma = (1/2, 1/2) gives 1/2."""
    J = DiagonalPlusLowRank.softmax(torch.tensor([0.5, 0.5], dtype=DT))
    p = properties(J)
    assert p.eigenvalues == pytest.approx((0.0, 0.5), abs=1e-15)
    assert max(p.eigenvalues) > 0.25
    # with more classes: sigma = (1/2, 1/2 - e, e) still exceeds 1/4
    s = torch.tensor([0.5, 0.49, 0.01], dtype=DT)
    assert properties(DiagonalPlusLowRank.softmax(s)).eigenvalues[-1] > 0.25


@pytest.mark.parametrize("seed", range(6))
def test_matches_numpy_on_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 7))
    A = rng.normal(size=(n, n))
    if seed % 3 == 1:
        A = A @ A.T  # symmetric PSD
    if seed % 3 == 2 and n > 1:
        A[:, 0] = A[:, 1] * 2.0  # singular
    p = properties(torch.from_numpy(A))
    assert p.n == n
    assert p.rank == np.linalg.matrix_rank(A)
    assert p.symmetric == bool(np.allclose(A, A.T))
    ev = np.linalg.eigvals(A)
    ev = ev[np.lexsort((ev.imag, ev.real))]
    np.testing.assert_allclose(np.array(p.eigenvalues, dtype=complex), ev, atol=1e-10)
    np.testing.assert_allclose(p.row_sums, A.sum(1), atol=1e-14)
    np.testing.assert_allclose(p.column_sums, A.sum(0), atol=1e-14)
    np.testing.assert_allclose(p.singular_values, np.linalg.svd(A, compute_uv=False))
    assert p.trace == pytest.approx(np.trace(A))
    if p.rank == n:
        assert p.determinant == pytest.approx(np.linalg.det(A), rel=1e-10)
        assert p.condition_number == pytest.approx(np.linalg.cond(A), rel=1e-10)
    else:
        N = np.array(p.null_space).T
        assert N.shape == (n, n - p.rank)
        np.testing.assert_allclose(A @ N, 0, atol=1e-12)
        np.testing.assert_allclose(N.T @ N, np.eye(n - p.rank), atol=1e-12)
    assert p.psd == bool(p.symmetric and np.linalg.eigvalsh((A + A.T) / 2).min() >= -p.tol)


def test_complex_spectrum_and_json() -> None:
    R = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=DT)
    p = properties(R)
    assert not p.symmetric and not p.psd and p.asymmetry == 2.0
    assert p.eigenvalues == (complex(0, -1), complex(0, 1))
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert d["eigenvalues"] == [[0.0, -1.0], [0.0, 1.0]]
    singular = properties(torch.zeros(2, 2, dtype=DT)).to_dict()
    assert singular["condition_number"] == "inf" and singular["log_abs_det"] == "-inf"
    json.dumps(singular, allow_nan=False)


def test_operators_dtype_tolerance_and_text() -> None:
    d = torch.tensor([2.0, 0.0, 3.0], dtype=DT)
    p = properties(DiagonalOperator(d))
    assert p.rank == 2 and p.null_space == ((0.0, 1.0, 0.0),) and p.psd
    assert "diagonal" in p.declared_tags
    q = properties(DenseOperator(torch.diag(d)))
    assert q.eigenvalues == p.eigenvalues and q.declared_tags == ()
    near = torch.tensor([[1.0, 1e-9], [0.0, 1e-9]], dtype=torch.float32)
    assert properties(near).rank == 1  # float32 tolerance: 1e-9 is noise
    assert properties(near.double()).rank == 2
    assert properties(near.double(), tol=1e-6).rank == 1
    assert properties(np.eye(3)).rank == 3
    text = str(properties(softmax_jacobian(torch.zeros(3, dtype=DT))))
    for piece in ("symmetric", "PSD", "rank", "null space", "eigenvalues", "condition number"):
        assert piece in text
    assert isinstance(p, JacobianProperties)
    with pytest.raises(AttributeError):
        p.rank = 3  # type: ignore[misc]


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(NotSquareError, match=r"J.T @ J"):
        properties(torch.zeros(2, 3))
    with pytest.raises(NotSquareError, match=r"J.T @ J"):
        properties(DenseOperator(torch.zeros(3, 2)))
    with pytest.raises(ShapeError, match="2-D"):
        properties(torch.zeros(3))
    with pytest.raises(ShapeError, match="empty"):
        properties(torch.zeros(0, 0))
    with pytest.raises(DtypeError, match="complex"):
        properties(torch.eye(2, dtype=torch.complex128))
    with pytest.raises(DtypeError, match=r"torch\.as_tensor"):
        properties([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(NonFiniteInputError):
        properties(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(InvalidOptionError, match="tol"):
        properties(torch.eye(2), tol=-1.0)
