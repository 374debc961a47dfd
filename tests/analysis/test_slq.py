"""``spectral_density``: stochastic Lanczos quadrature against the exact spectrum of small dense
matrices: ``tr f(A)`` within the stated error bars, the broadened density against the broadened
eigenvalue histogram, Gauss quadrature's exactness, and one ``mm`` per Lanczos step."""

from __future__ import annotations

import math

import pytest
import torch

from jacobite.analysis import SpectralDensity, spectral_density
from jacobite.curvature import ggn, ggn_diagonal
from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.operators import FunctionOperator
from tests.analysis._spectra import with_spectrum
from tests.curvature._oracle import make

F64 = torch.float64


LAM = torch.cat([torch.linspace(0.0, 2.0, 110, dtype=F64), torch.tensor([5.0, 6.0], dtype=F64)])


@pytest.mark.parametrize(("name", "f"), [
    ("tr log(A + I)", torch.log1p),
    ("tr A", lambda t: t),
    ("tr A²", torch.square),
    ("tr exp(-A)", lambda t: torch.exp(-t)),
])
def test_trace_of_f_within_the_error_bars(name: str, f: object) -> None:
    """Over 20 seeds: every estimate within 4.5 standard errors of the exact trace, and most
    (≥ 14 of 20, about 95 % expected) within 2."""
    A = with_spectrum(LAM)
    exact = float(f(LAM).sum())  # type: ignore[operator]
    z = []
    for seed in range(20):
        est = spectral_density(A, probes=24, steps=25, seed=seed).trace(f)  # type: ignore[arg-type]
        assert est.stderr > 0 and len(est.samples) == 24
        z.append(abs(est.value - exact) / est.stderr)
    assert max(z) <= 4.5, name
    assert sum(v <= 2 for v in z) >= 14, name


def test_polynomials_below_twice_the_steps_are_exact_per_probe() -> None:
    """Gauss quadrature: each probe's ``n Σ w_i θ_i²`` is ``zᵀ A² z`` exactly (3 steps)."""
    A = with_spectrum(LAM, seed=1)
    sd = spectral_density(A, probes=6, steps=3, seed=4)
    g = torch.Generator().manual_seed(4)
    Z = torch.stack([torch.randint(0, 2, (len(LAM),), generator=g).to(F64) * 2 - 1
                     for _ in range(6)])
    want = ((Z @ A) ** 2).sum(1)
    torch.testing.assert_close(torch.tensor(sd.trace(torch.square).samples, dtype=F64), want)
    torch.testing.assert_close(torch.tensor(sd.trace(lambda t: t ** 5).samples, dtype=F64),
                               torch.einsum("pi,ij,pj->p", Z, torch.linalg.matrix_power(A, 5), Z))


def test_enough_steps_give_the_exact_eigenvalues_as_nodes() -> None:
    lam = torch.tensor([-2.0, -0.5, 1.0, 3.0, 4.0, 7.5], dtype=F64)
    sd = spectral_density(with_spectrum(lam), probes=3, steps=10, seed=0)
    assert sd.nodes.shape == (3, 6)  # steps capped at n
    for th, w in zip(sd.nodes, sd.weights, strict=True):
        torch.testing.assert_close(th, lam)
        assert bool((w > 1e-6).all())
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-14)


def test_density_matches_the_broadened_eigenvalue_histogram() -> None:
    A = with_spectrum(LAM, seed=2)
    sd = spectral_density(A, probes=64, steps=30, seed=1)
    grid = torch.linspace(-1.0, 7.0, 801, dtype=F64)
    sigma = 0.15
    exact = (torch.exp(-0.5 * ((grid[:, None] - LAM) / sigma) ** 2)
             / (sigma * math.sqrt(2 * math.pi))).mean(1)
    got = sd.density(grid, sigma)
    dx = float(grid[1] - grid[0])
    assert float(got.sum()) * dx == pytest.approx(1.0, abs=1e-3)  # a probability density
    assert float((got - exact).abs().sum()) * dx <= 0.1  # L1 distance of the two densities
    # the two isolated eigenvalues carry 2/112 of the mass near t = 5.5
    near = (grid > 4.4) & (grid < 6.6)
    assert float(got[near].sum()) * dx == pytest.approx(2 / 112, rel=0.5)


def _recording(A: torch.Tensor) -> tuple[FunctionOperator, list[int]]:
    """``A`` as a symmetric operator that records the width of every ``mm``."""
    widths: list[int] = []

    def mv(v: torch.Tensor) -> torch.Tensor:
        return A @ v

    def mm(V: torch.Tensor) -> torch.Tensor:
        widths.append(V.shape[1])
        return A @ V

    op = FunctionOperator(tuple(A.shape), mv, mv, dtype=A.dtype, tags=("symmetric",), mm=mm,
                          rmm=mm)
    return op, widths


def test_each_lanczos_step_is_one_mm_with_a_column_per_probe() -> None:
    A = with_spectrum(LAM, seed=3)
    op, widths = _recording(A)
    sd = spectral_density(op, probes=5, steps=7, seed=0)
    assert widths == [5] * 7 and sd.matvecs == 35
    ref = spectral_density(A, probes=5, steps=7, seed=0)
    torch.testing.assert_close(sd.nodes, ref.nodes)


def test_float32_ggn_trace_against_its_exact_diagonal() -> None:
    model, X = make("cnn", torch.float32)
    y = torch.randint(0, 3, (X.shape[0],), generator=torch.Generator().manual_seed(0))
    loss = torch.nn.CrossEntropyLoss()
    G = ggn(model, loss, (X, y))
    exact = float(ggn_diagonal(model, loss, (X, y)).sum())
    est = spectral_density(G, probes=32, steps=12, seed=0).trace(lambda t: t)
    assert abs(est.value - exact) <= 4 * est.stderr
    assert est.stderr < 0.5 * exact


def test_bad_arguments_raise_typed_errors() -> None:
    A = with_spectrum(LAM[:10])
    with pytest.raises(UnsupportedOperationError, match="assume_symmetric"):
        spectral_density(torch.triu(A))
    with pytest.raises(InvalidOptionError):
        spectral_density(A, probes=0)
    with pytest.raises(ArgumentTypeError):
        spectral_density(A, steps=2.5)  # type: ignore[arg-type]
    sd = spectral_density(A, probes=2, steps=4)
    assert isinstance(sd, SpectralDensity)
    with pytest.raises(InvalidOptionError):
        sd.density(torch.zeros(3), 0.0)
    with pytest.raises(ShapeError):
        sd.density(torch.zeros(3, 2), 0.1)
    with pytest.raises(ArgumentTypeError):
        sd.trace(lambda t: float(t.sum()))  # type: ignore[arg-type, return-value]
    with pytest.raises(ArgumentTypeError):
        sd.trace("log")  # type: ignore[arg-type]
    one = spectral_density(A, probes=1, steps=4).trace(torch.square)
    assert one.stderr == math.inf


def test_a_small_memory_budget_changes_the_chunks_not_the_result() -> None:
    from jacobite import config

    A = with_spectrum(LAM, seed=5)
    op, widths = _recording(A)
    whole = spectral_density(op, probes=6, steps=5, seed=3)
    widths.clear()
    with config.memory_budget(2 * 8 * 112 * 8):  # two probes' Lanczos vectors at a time
        parts = spectral_density(op, probes=6, steps=5, seed=3)
    assert widths == [2] * 15
    torch.testing.assert_close(parts.nodes, whole.nodes)
    torch.testing.assert_close(parts.weights, whole.weights)
