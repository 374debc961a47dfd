"""Hostile values for jacobite.analysis: reports and spectra of singular, zero, non-finite,
empty, non-square, low-precision and integer Jacobians, sensitivity maps of empty or
non-finite batches, and attacks with a zero budget — against numpy.linalg / torch.linalg."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import jacobite.analysis as ja
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64
GEN = torch.Generator().manual_seed(7)
MATS = {
    "random": torch.randn(5, 4, dtype=F64, generator=GEN),
    "rank-1": torch.outer(torch.arange(1.0, 5.0, dtype=F64), torch.arange(1.0, 4.0, dtype=F64)),
    "wide": torch.randn(2, 6, dtype=F64, generator=GEN),
    "1xN": torch.tensor([[3.0, 4.0, 0.0]], dtype=F64),
    "Nx1": torch.tensor([[3.0], [4.0]], dtype=F64),
    "transposed": torch.randn(4, 3, dtype=F64, generator=GEN).t(),
}


@pytest.mark.parametrize("name", sorted(MATS))
def test_spectral_norm_matches_svdvals(name):
    J = MATS[name]
    with within():
        s = ja.spectral_norm(J)
    assert_close(s, torch.linalg.svdvals(J)[0], rtol=1e-8)


@pytest.mark.parametrize("name", sorted(MATS))
def test_exact_frobenius_norm_matches_torch(name):
    J = MATS[name]
    with within():
        est = ja.frobenius_norm(J, nproj=-1)
    assert est.exact
    assert_close(est.value, torch.linalg.matrix_norm(J), rtol=1e-12)


def test_the_zero_matrix_has_spectral_norm_zero_and_infinite_condition():
    Z = torch.zeros(3, 3, dtype=F64)
    with within():
        assert float(ja.spectral_norm(Z)) == 0.0
        assert float(ja.condition_number(Z)) == np.inf


def test_a_function_that_ignores_its_input_has_spectral_norm_zero():
    with within():
        s = ja.spectral_norm(lambda v: torch.ones(2, dtype=F64), torch.ones(4, dtype=F64))
    assert float(s) == 0.0


def test_spectral_norm_of_a_function_matches_its_jacobian():
    A = torch.randn(3, 4, dtype=F64, generator=GEN)
    with within():
        s = ja.spectral_norm(lambda v: A @ v, torch.zeros(4, dtype=F64))
    assert_close(s, torch.linalg.svdvals(A)[0], rtol=1e-8)


@pytest.mark.parametrize("J", [torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64),
                               torch.diag(torch.tensor([1.0, 1e-17], dtype=F64))],
                         ids=["rank-1", "near-singular"])
def test_condition_number_of_a_singular_matrix_is_huge_as_numpy_says(J):
    with within():
        c = float(ja.condition_number(J))
    assert c > 1e15 and np.linalg.cond(J.numpy()) > 1e15


@pytest.mark.parametrize("J", [torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64),
                               torch.zeros(2, 2, dtype=F64)], ids=["rank-1", "zero"])
def test_logabsdet_of_a_singular_matrix_is_minus_inf_with_sign_zero(J):
    with within():
        est = ja.logabsdet(J)
    assert est.exact and est.sign == 0.0 and float(est.value) == -np.inf


@pytest.mark.parametrize("J", [torch.tensor([[2.0, 1.0], [1.0, -3.0]], dtype=F64),
                               torch.diag(torch.tensor([1e200, 1e200], dtype=F64))],
                         ids=["indefinite", "overflowing-det"])
def test_logabsdet_matches_numpy_slogdet(J):
    with within():
        est = ja.logabsdet(J)
    sign, logabs = np.linalg.slogdet(J.numpy())
    assert est.sign == sign
    assert_close(est.value, logabs, rtol=1e-12)


@pytest.mark.parametrize(("call", "fix"), [
    (ja.spectral_norm, "nan_to_num"), (ja.condition_number, "nan_to_num"),
    (ja.properties, "check the point"), (lambda J: ja.logabsdet(J), "nan_to_num"),
], ids=["spectral_norm", "condition_number", "properties", "logabsdet"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_jacobians_are_refused(call, fix, bad):
    J = torch.tensor([[1.0, bad], [0.0, 1.0]], dtype=F64)
    with refuses(NonFiniteInputError, fix):
        call(J)


@pytest.mark.parametrize("call", [lambda J: ja.logabsdet(J), ja.properties],
                         ids=["logabsdet", "properties"])
def test_non_square_jacobians_are_refused_naming_the_alternative(call):
    with refuses(NotSquareError, "square"):
        call(torch.ones(2, 3, dtype=F64))


def test_properties_of_an_empty_jacobian_is_refused():
    with refuses(ShapeError, "n >= 1"):
        ja.properties(torch.zeros(0, 0))


def test_properties_of_a_complex_jacobian_is_refused_naming_the_parts():
    with refuses(DtypeError, "J.real"):
        ja.properties(torch.eye(2, dtype=torch.complex64))


@pytest.mark.parametrize("J", [torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64),
                               torch.eye(2, dtype=torch.long) * 3,
                               torch.eye(2, dtype=torch.float16) * 2,
                               torch.diag(torch.tensor([1e300, -1e300], dtype=F64))],
                         ids=["singular", "integer", "float16", "huge"])
def test_properties_match_numpy(J):
    with within():
        p = ja.properties(J)
    A = J.double().numpy()
    assert_close(sorted(p.eigenvalues), sorted(np.linalg.eigvalsh(A)), rtol=1e-3)
    assert p.rank == np.linalg.matrix_rank(A)
    assert p.symmetric


def test_top_singular_asking_for_more_values_than_exist_is_refused():
    with refuses(InvalidOptionError, "at most min(m, n) = 2"):
        ja.top_singular(torch.eye(2, dtype=F64), k=5)


NET = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()


def test_input_jacobians_of_an_empty_batch_is_refused_naming_unsqueeze():
    with refuses(ShapeError, "unsqueeze(0)"):
        ja.input_jacobians(NET, torch.zeros(0, 3, dtype=F64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_saliency_of_a_nonfinite_batch_is_refused(bad):
    with refuses(NonFiniteInputError, "nan_to_num"):
        ja.saliency(NET, torch.tensor([[bad, 0.0, 0.0]], dtype=F64))


def test_input_jacobians_match_jacrev_at_extreme_inputs():
    x = torch.tensor([[1e300, 0.0, -1e300], [5e-324, 0.0, 0.0]], dtype=F64)
    with within():
        J = ja.input_jacobians(NET, x)
    W = NET[0].weight.detach()
    assert_close(J, W.expand(2, 2, 3))


def test_fgsm_with_a_zero_budget_leaves_the_input_unchanged():
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    with within():
        adv = ja.fgsm(NET, x, torch.tensor([0]), eps=0.0)
    assert torch.equal(adv, x)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_fgsm_with_a_bad_budget_is_refused(eps):
    with refuses(InvalidOptionError, "finite number ≥ 0"):
        ja.fgsm(NET, torch.zeros(1, 3, dtype=F64), torch.tensor([0]), eps=eps)


def test_an_exact_log_determinant_over_the_budget_is_refused_before_forming_j():
    x = torch.linspace(-1, 1, 200_000, dtype=F64)
    with refuses(JacobianTooLarge, "memory_budget", seconds=3.0):
        ja.logabsdet(torch.sin, x, method="exact")


def test_an_exact_condition_number_over_a_small_budget_is_refused():
    with refuses(JacobianTooLarge, "memory_budget", "iterative method", seconds=3.0):
        ja.condition_number(torch.sin, torch.zeros(3000, dtype=F64), exact=True,
                            memory_budget="1 MiB")


@pytest.mark.parametrize("s", [1e300, 1e-300], ids=["1e300", "1e-300"])
def test_spectra_of_a_huge_or_tiny_identity_match_svdvals(s):
    eye = torch.eye(50, dtype=F64)
    want = torch.linalg.svdvals(s * eye)[0]
    with within():
        assert_close(ja.spectral_norm(s * eye), want, rtol=1e-12, atol=0)
        assert_close(ja.spectral_norm(lambda v: s * v, torch.ones(50, dtype=F64)), want,
                     rtol=1e-12, atol=0)
        assert_close(ja.condition_number(s * eye, exact=False), 1.0, rtol=1e-12)
        assert_close(ja.frobenius_norm(s * eye, nproj=-1).value, 50 ** 0.5 * s, rtol=1e-12,
                     atol=0)
        assert_close(ja.logabsdet(s * eye, method="slq", nprobe=2, steps=3).value,
                     50 * np.log(s), rtol=1e-12)


def test_the_spectral_norm_of_a_complex_matrix_is_refused_naming_the_real_form():
    with refuses(DtypeError, "real form", "svdvals"):
        ja.spectral_norm(torch.eye(3, dtype=torch.complex128) * 1j)
