"""``eigenvalues``: extreme eigenpairs of symmetric operators by thick-restart Lanczos, against
``torch.linalg.eigh`` of the dense matrix (float64 to 1e-8), on dense matrices,
``DiagonalPlusLowRank``, curvature operators of small networks and random spectra."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.analysis import Eigenpairs, eigenvalues
from jacobite.analysis._lanczos_sym import Which
from jacobite.curvature import fisher, ggn, hessian
from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteWarning,
    NotSquareError,
    UnsupportedOperationError,
)
from jacobite.operators import (
    DenseOperator,
    DiagonalOperator,
    DiagonalPlusLowRank,
    FunctionOperator,
)
from tests.analysis._spectra import with_spectrum
from tests.curvature._oracle import make

F64 = torch.float64


def wanted(exact: torch.Tensor, k: int, which: Which) -> torch.Tensor:
    """The ``k`` eigenvalues ``eigenvalues`` must return, in its order, from all of them."""
    asc = exact.sort().values
    if which == "largest":
        return asc.flip(0)[:k]
    if which == "smallest":
        return asc[:k]
    if which == "magnitude":
        return exact[exact.abs().argsort(descending=True, stable=True)][:k]
    out: list[torch.Tensor] = []
    lo, hi = 0, len(asc) - 1
    while len(out) < k:
        out.append(asc[hi])
        hi -= 1
        if len(out) < k:
            out.append(asc[lo])
            lo += 1
    return torch.stack(out)


def check_pairs(A: torch.Tensor, r: Eigenpairs, want: torch.Tensor, atol: float) -> None:
    """Values to ``atol`` relative to ``max|λ|``; the reported residuals equal the true ones;
    unit vectors that are eigenvectors."""
    big = float(torch.linalg.eigvalsh(A).abs().max())
    torch.testing.assert_close(r.values, want, atol=atol * big, rtol=0)
    true = torch.linalg.norm(A @ r.vectors - r.vectors * r.values, dim=0)
    torch.testing.assert_close(r.residuals, true, atol=1e-10 * big, rtol=0)
    torch.testing.assert_close(r.vectors.norm(dim=0), torch.ones(len(want), dtype=F64))
    assert bool((r.relative_residuals <= 1e-8).all())


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude", "both_ends"])
def test_dense_matrix_every_end(which: Which) -> None:
    lam = torch.cat([torch.linspace(-3, 10, 95, dtype=F64),
                     torch.tensor([10.01, 10.02, 20.0, -30.0, 25.0], dtype=F64)])
    A = with_spectrum(lam)
    r = eigenvalues(A, k=5, which=which, tol=1e-10)
    assert r.converged and r.matvecs <= 100
    check_pairs(A, r, wanted(lam, 5, which), 1e-8)


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude", "both_ends"])
def test_small_basis_restarts_and_still_finds_the_wanted_end(which: Which) -> None:
    lam = torch.cat([torch.linspace(-1, 1, 290, dtype=F64),
                     torch.tensor([1.2, 1.3, -1.5, 2.0, -3.0, 3.01], dtype=F64)])
    A = with_spectrum(lam, seed=1)
    r = eigenvalues(A, k=6, which=which, basis=12, tol=1e-10, max_matvecs=2000)
    assert r.converged and r.restarts > 0
    check_pairs(A, r, wanted(lam, 6, which), 1e-8)


def test_diagonal_plus_low_rank_vs_eigh() -> None:
    g = torch.Generator().manual_seed(3)
    d = torch.rand(60, dtype=F64, generator=g) + 0.5
    U = torch.randn(60, 3, dtype=F64, generator=g)
    op = DiagonalPlusLowRank(d, U)
    assert op.is_symmetric()
    A = op.to_dense()
    for which in ("largest", "smallest"):
        r = eigenvalues(op, k=4, which=which, tol=1e-10)
        check_pairs(A, r, wanted(torch.linalg.eigvalsh(A), 4, which), 1e-8)


def test_repeated_eigenvalues_are_found_as_often_as_they_occur() -> None:
    """A diagonal with few distinct values: the Krylov space closes, Lanczos goes on from a
    fresh vector, and each copy of the top value appears."""
    d = torch.tensor([5.0] * 3 + [2.0] * 10 + [1.0] * 7, dtype=F64)
    r = eigenvalues(DiagonalOperator(d), k=4, tol=1e-12)
    assert r.converged
    torch.testing.assert_close(r.values, torch.tensor([5.0, 5.0, 5.0, 2.0], dtype=F64))
    Vt = r.vectors[:, :3]
    torch.testing.assert_close(Vt.T @ Vt, torch.eye(3, dtype=F64))  # three independent ones


def _curvature(kind: str, name: str) -> DenseOperator | FunctionOperator:
    model, X = make(name, F64)
    y = torch.randint(0, 3, (X.shape[0],), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.CrossEntropyLoss()
    builds: dict[str, Callable[..., Any]] = {"ggn": ggn, "hessian": hessian, "fisher": fisher}
    build = builds[kind]
    return build(model, loss, (X, y))


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("kind", ["ggn", "hessian", "fisher"])
def test_curvature_operators_vs_eigh(kind: str, name: str) -> None:
    op = _curvature(kind, name)
    A = op.to_dense()
    exact = torch.linalg.eigvalsh(A)
    for which in ("largest", "both_ends") if kind == "hessian" else ("largest",):
        r = eigenvalues(op, k=4, which=which, tol=1e-10)
        assert r.converged
        check_pairs(A, r, wanted(exact, 4, which), 1e-8)
    if kind == "hessian":  # indefinite: a negative eigenvalue at the bottom
        assert float(exact[0]) < 0


def test_float32_ggn_to_its_float32_accuracy() -> None:
    model, X = make("mlp", torch.float32)
    y = torch.randint(0, 3, (6,), generator=torch.Generator().manual_seed(0))
    op = ggn(model, torch.nn.CrossEntropyLoss(), (X, y), cache=True)
    A = op.to_dense().to(F64)
    r = eigenvalues(op, k=3, tol=1e-4)
    assert r.converged and r.values.dtype == F64 and r.vectors.dtype == F64
    big = float(torch.linalg.eigvalsh(A).max())
    true = torch.linalg.norm(A @ r.vectors - r.vectors * r.values, dim=0) / big
    assert float(true.max()) <= 1e-4
    torch.testing.assert_close(r.values, wanted(torch.linalg.eigvalsh(A), 3, "largest"),
                               atol=1e-4 * big, rtol=0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 40), k=st.integers(1, 6),
       which=st.sampled_from(["largest", "smallest", "magnitude", "both_ends"]),
       cluster=st.sampled_from([0.0, 1e-6, 1e-3]), negative=st.booleans(),
       seed=st.integers(0, 2**16))
def test_random_spectra_with_clusters_and_negative_values(
        n: int, k: int, which: Which, cluster: float, negative: bool, seed: int) -> None:
    """Random spectra, some with a cluster of four eigenvalues ``cluster`` apart at the top
    and a negative part (a Hessian's); the whole space fits the basis, so the values are exact
    to rounding."""
    g = torch.Generator().manual_seed(seed)
    lam = torch.rand(n, dtype=F64, generator=g) * 4 - (2 if negative else 0)
    if cluster:
        lam[:4] = 5.0 + cluster * torch.arange(4, dtype=F64)
    A = with_spectrum(lam, seed)
    k = min(k, n)
    r = eigenvalues(A, k=k, which=which, tol=1e-10, seed=seed)
    assert r.converged
    check_pairs(A, r, wanted(torch.linalg.eigvalsh(A), k, which), 1e-8)


def test_matvecs_counts_the_products_and_none_follow_convergence() -> None:
    A = with_spectrum(torch.linspace(1, 50, 80, dtype=F64) ** 2)
    calls = []

    def mv(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return A @ v

    op = FunctionOperator((80, 80), mv, mv, dtype=F64, tags=("symmetric",))
    r = eigenvalues(op, k=2, tol=1e-10)
    assert r.converged and r.matvecs == len(calls)


def test_refuses_what_is_not_known_symmetric_and_names_the_fix() -> None:
    A = torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64)
    with pytest.raises(UnsupportedOperationError, match="assume_symmetric=True"):
        eigenvalues(A, k=1)
    with pytest.raises(UnsupportedOperationError, match="top_singular"):
        eigenvalues(DenseOperator(A), k=1)
    S = A + A.T

    def mv(v: torch.Tensor) -> torch.Tensor:
        return S @ v

    untagged = FunctionOperator((2, 2), mv, mv, dtype=F64)
    with pytest.raises(UnsupportedOperationError, match="tags=\\('symmetric',\\)"):
        eigenvalues(untagged, k=1)
    r = eigenvalues(untagged, k=2, assume_symmetric=True)
    torch.testing.assert_close(r.values, torch.linalg.eigvalsh(S).flip(0))
    assert eigenvalues(DenseOperator(S), k=1).values.item() == pytest.approx(
        float(torch.linalg.eigvalsh(S)[-1]))


def test_bad_arguments_raise_typed_errors() -> None:
    A = torch.eye(4, dtype=F64)
    with pytest.raises(NotSquareError):
        eigenvalues(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ArgumentTypeError):
        eigenvalues("matrix")
    with pytest.raises(InvalidOptionError, match="at most n = 4"):
        eigenvalues(A, k=5)
    with pytest.raises(InvalidOptionError, match="at least k"):
        eigenvalues(A, k=3, max_matvecs=2)
    with pytest.raises(InvalidOptionError, match="k \\+ 2"):
        eigenvalues(torch.eye(20, dtype=F64), k=3, basis=4)
    with pytest.raises(InvalidOptionError):
        eigenvalues(A, k=1, which="top")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError):
        eigenvalues(A, k=1, tol=1.5)


def test_budget_spent_warns_and_reports_not_converged() -> None:
    lam = torch.linspace(0, 1, 400, dtype=F64)
    A = with_spectrum(lam, seed=2)
    with pytest.warns(JacobiteWarning, match="raise max_matvecs"):
        r = eigenvalues(A, k=5, tol=1e-12, max_matvecs=10)
    assert not r.converged and r.matvecs == 10 and "not converged" in r.message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = eigenvalues(A, k=1, tol=1e-3)
    assert r.converged and r.message.startswith("converged")


def test_same_seed_same_answer_and_huge_scale() -> None:
    A = with_spectrum(torch.linspace(-1, 0.9, 50, dtype=F64))
    a, b = eigenvalues(A, k=2, seed=7), eigenvalues(A, k=2, seed=7)
    assert torch.equal(a.values, b.values) and torch.equal(a.vectors, b.vectors)
    big = eigenvalues(A * 1e300, k=2, which="magnitude", tol=1e-10)
    np.testing.assert_allclose(big.values.numpy() / 1e300, wanted(
        torch.linalg.eigvalsh(A), 2, "magnitude").numpy(), rtol=1e-8)
