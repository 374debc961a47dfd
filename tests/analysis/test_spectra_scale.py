"""Spectra of Jacobians at the edges of the float64 range (``1e±300``): Lanczos, Hutchinson
and SLQ run on a power-of-two rescaled ``J``, so norms neither overflow nor underflow —
against ``torch.linalg`` and analytic values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite.analysis as ja
from jacobite.errors import DtypeError
from jacobite.operators import DenseOperator

F64 = torch.float64
N = 50
SCALES = [1e300, 1e-300, 1e-307, 2.0 ** 1000]


def _forms(s: float):
    eye = torch.eye(N, dtype=F64)
    return {"tensor": (s * eye, None), "operator": (DenseOperator(s * eye), None),
            "function": (lambda v: s * v, torch.ones(N, dtype=F64))}


@pytest.mark.parametrize("form", ["tensor", "operator", "function"])
@pytest.mark.parametrize("s", SCALES)
def test_spectral_norm_and_top_singular_of_a_huge_or_tiny_identity(s, form):
    obj, x = _forms(s)[form]
    want = float(torch.linalg.svdvals(s * torch.eye(N, dtype=F64))[0])
    assert want == pytest.approx(s, rel=1e-15)
    assert float(ja.spectral_norm(obj, x)) == pytest.approx(want, rel=1e-12)
    r = ja.top_singular(obj, x, k=2)
    np.testing.assert_allclose(r.values.numpy(), [want, want], rtol=1e-12)
    assert r.converged


@pytest.mark.parametrize("s", SCALES)
def test_condition_number_at_huge_and_tiny_scales(s):
    D = torch.diag(torch.linspace(1.0, 4.0, N, dtype=F64)) * s
    for exact in (True, False):
        assert float(ja.condition_number(D, exact=exact)) == pytest.approx(4.0, rel=1e-8)
        assert float(ja.condition_number(lambda v, D=D: D @ v, torch.zeros(N, dtype=F64),
                                         exact=exact)) == pytest.approx(4.0, rel=1e-8)


@pytest.mark.parametrize("s", SCALES)
def test_frobenius_norm_at_huge_and_tiny_scales(s):
    A = s * torch.eye(N, dtype=F64)
    want = math.sqrt(N) * s  # torch.linalg.matrix_norm(A) itself overflows/underflows here
    exact = ja.frobenius_norm(A, nproj=-1)
    assert float(exact.value) == pytest.approx(want, rel=1e-12)
    est = ja.frobenius_norm(A, nproj=8, seed=0)  # Rademacher probes are exact on an identity
    assert float(est.value) == pytest.approx(want, rel=1e-12)
    assert est.ci[0] == pytest.approx(want, rel=1e-12) and est.ci[1] == pytest.approx(want)


@pytest.mark.parametrize("method", ["exact", "slq"])
@pytest.mark.parametrize("s", [1e300, 1e-300])
def test_logabsdet_at_huge_and_tiny_scales(s, method):
    r = ja.logabsdet(s * torch.eye(N, dtype=F64), method=method, nprobe=2, steps=3)
    assert float(r.value) == pytest.approx(N * math.log(s), rel=1e-12)
    r = ja.logabsdet(lambda v: s * v, torch.ones(N, dtype=F64), method=method, nprobe=2, steps=3)
    assert float(r.value) == pytest.approx(N * math.log(s), rel=1e-12)


def test_the_scaled_spectral_norm_is_still_differentiable():
    A = (1e300 * torch.diag(torch.tensor([3.0, 1.0, 2.0], dtype=F64))).requires_grad_()
    (g,) = torch.autograd.grad(ja.spectral_norm(A), A)
    want = torch.zeros(3, 3, dtype=F64)
    want[0, 0] = 1.0  # d σ_max / d A = u vᵀ
    torch.testing.assert_close(g, want, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(e=st.integers(-1000, 1000), seed=st.integers(0, 2**16))
def test_spectral_norm_is_scale_equivariant_across_the_float64_range(e, seed):
    A = torch.randn(6, 4, dtype=F64, generator=torch.Generator().manual_seed(seed))
    c = 2.0 ** e
    want = float(torch.linalg.svdvals(A)[0]) * c
    assert float(ja.spectral_norm(A * c)) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("call", [
    lambda A: ja.spectral_norm(A),
    lambda A: ja.frobenius_norm(DenseOperator(A), nproj=-1),
    lambda A: ja.condition_number(lambda v: A @ v, torch.ones(3, dtype=A.dtype)),
    lambda A: ja.top_singular(lambda v: A.real @ v * (1 + 1j), torch.ones(3, dtype=F64)),
], ids=["tensor", "operator", "complex-x", "complex-output"])
def test_a_complex_jacobian_is_refused_instead_of_losing_its_imaginary_part(call):
    # Lanczos runs in real float64: torch.linalg.svdvals(A) is the oracle it cannot reach
    A = torch.tensor([[1j, 2.0, 0.0], [0.0, 1.0, 3j], [1.0, 0.0, 1.0]], dtype=torch.complex128)
    with pytest.raises(DtypeError, match="real form"):
        call(A)
