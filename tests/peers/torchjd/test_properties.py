"""The properties TorchJD's aggregation tests check, on the same matrix families, in float32 (their
default) and float64: the output's structure, non-conflict, permutation invariance, linearity
under scaling, strong stationarity, and the autograd behaviour (jacobite's contract: exact
gradients, or a typed error where the weights come from a solver)."""

from __future__ import annotations

import pytest
import torch

from jacobite.errors import UnsupportedOperationError
from jacobite.multiobjective.aggregators import IMTLG, MGDA, CAGrad, DualProj, NashMTL, UPGrad
from tests.multiobjective.aggregator_table import MAKERS, ROWS_2

from ._matrices import family

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _cases(names, families, *, min_rows=1):
    return [pytest.param(a, J, id=f"{a}-{k}") for a in names for fam in families
            for k, J in family(fam, min_rows=min_rows)]


# TorchJD runs NashMTL on its own list of matrices only (its cvxpy loop fails on one row and on
# scaled ones); jacobite's Newton solve answers them all, so NashMTL runs on every family here.
STRUCTURE = _cases(sorted(MAKERS), ["scaled", "typical", "nash"]) + \
    _cases(sorted(ROWS_2), ["scaled", "typical"], min_rows=2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "J"), STRUCTURE)
def test_expected_structure(name, J, dtype) -> None:
    J = J.to(dtype)
    make = {**MAKERS, **ROWS_2}[name]
    if name == "Krum" and J.shape[0] < 4:
        pytest.skip("Krum(n_byzantine=1) needs 4 rows; tested in test_validation")
    d = make(J)(J)
    assert d.shape == (J.shape[1],) and d.dtype == dtype
    assert bool(torch.isfinite(d).all())


def _non_conflicting(d, J, tol):
    # TorchJD's measure: the norm of J d's non-negative part equals the norm of J d
    Jd = J @ d
    return abs(float(Jd.clamp_min(0).norm()) - float(Jd.norm())) <= tol * (1 + float(Jd.norm()))


NON_CONFLICTING = {"UPGrad": (UPGrad, 4e-4), "DualProj": (DualProj, 1e-4), "MGDA": (MGDA, 4e-4),
                   "CAGrad1": (lambda: CAGrad(c=1.0), 4e-4),
                   "CAGrad2": (lambda: CAGrad(c=2.0), 4e-4)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "J"), _cases(sorted(NON_CONFLICTING), ["typical"]))
def test_non_conflicting(name, J, dtype) -> None:
    J = J.to(dtype)
    make, tol = NON_CONFLICTING[name]
    assert _non_conflicting(make()(J), J, tol)


PERMUTATION = {"UPGrad": 5e-7, "DualProj": 2e-7, "MGDA": 1e-4, "AlignedMTL": 1e-4,
               "ConFIG": 1e-4, "IMTLG": 1e-4, "Mean": 1e-4, "Sum": 1e-4}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "J"), _cases(sorted(PERMUTATION), ["typical"]) +
                         _cases(["TrimmedMean"], ["typical"], min_rows=2))
def test_permutation_invariant(name, J, dtype) -> None:
    J = J.to(dtype)
    agg = {**MAKERS, **ROWS_2}[name](J)
    tol = PERMUTATION.get(name, 1e-4)
    d = agg(J)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        perm = torch.randperm(J.shape[0], generator=g)
        atol = tol * max(1.0, float(d.abs().max()))
        torch.testing.assert_close(agg(J[perm]), d, rtol=tol, atol=atol)


LINEAR = {"UPGrad": 6e-2, "ConFIG": 1e-4, "Constant": 1e-4, "Mean": 1e-4, "Sum": 1e-4}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "J"), _cases(sorted(LINEAR), ["typical"]))
def test_linear_under_scaling(name, J, dtype) -> None:
    # A(diag(a c1 + b c2) J) = a A(diag(c1) J) + b A(diag(c2) J) for positive c1, c2, a, b
    J = J.to(dtype)
    agg = MAKERS[name](J)
    g = torch.Generator().manual_seed(2)
    tol = LINEAR[name]
    for _ in range(5):
        c1, c2 = (torch.rand(J.shape[0], generator=g, dtype=dtype) for _ in range(2))
        a, b = (torch.rand((), generator=g, dtype=dtype) for _ in range(2))
        left = agg(torch.diag(a * c1 + b * c2) @ J)
        right = a * agg(torch.diag(c1) @ J) + b * agg(torch.diag(c2) @ J)
        torch.testing.assert_close(left, right, rtol=tol, atol=tol)


STATIONARY = {"UPGrad": 5e-3, "DualProj": 3e-3, "Constant": 5e-3, "Mean": 5e-3, "Sum": 5e-3,
              "Random": 5e-3}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "J"), _cases(sorted(STATIONARY), ["non_strong"]))
def test_strongly_stationary(name, J, dtype) -> None:
    # not strongly stationary (no w > 0 with Jᵀw = 0), so the update must not vanish
    J = J.to(dtype)
    assert float(MAKERS[name](J)(J).norm()) > STATIONARY[name]


SOLVER_BASED = ["UPGrad", "DualProj", "CAGrad", "NashMTL", "MGDA"]
EXACT = ["ConFIG", "GradDrop", "IMTLG", "PCGrad"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SOLVER_BASED)
def test_solver_based_output_refuses_backward(name, dtype) -> None:
    # TorchJD raises NonDifferentiableError here; jacobite's typed error is
    # UnsupportedOperationError (MGDA included: TorchJD differentiates its Frank–Wolfe loop)
    J = torch.ones(3, 5, dtype=dtype, requires_grad=True)
    d = MAKERS[name](J)(J)
    with pytest.raises(UnsupportedOperationError):
        d.backward(torch.ones_like(d))


@pytest.mark.parametrize("name", EXACT)
def test_other_outputs_are_exactly_differentiable(name) -> None:
    # TorchJD refuses these four too; jacobite keeps their whole graph (see test_contract)
    J = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    agg = MAKERS[name](J)

    def f(M):
        torch.manual_seed(0)
        return agg(M)

    ok = torch.autograd.gradcheck(f, (J,), eps=1e-6, atol=1e-5)
    assert ok


def test_imtlg_of_zeros_is_zero() -> None:
    for dtype in DTYPES:
        torch.testing.assert_close(IMTLG()(torch.zeros(2, 3, dtype=dtype)),
                                   torch.zeros(3, dtype=dtype))


def test_nash_mtl_reset_replays_the_same_sequence() -> None:
    g = torch.Generator().manual_seed(3)
    matrices = [torch.randn(3, 5, generator=g) for _ in range(4)]
    agg = NashMTL(n_tasks=3, update_weights_every=3)
    first = [agg(J) for J in matrices]
    agg.reset()
    for J, expected in zip(matrices, first, strict=True):
        torch.testing.assert_close(agg(J), expected)
