"""The trace estimators' reported standard errors against their spread over independent draws.

Each sample of one batched call is its own draw (the probes of different samples are
independent), so a batch of ``N`` copies of five matrices gives ``N`` runs of each estimator on
each matrix at once. Calibration means ``mean(stderr²) ≈`` the variance of the values over the
draws; the tolerance is four standard errors of that ratio, measured from the same draws.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from jacobite.analysis import _trace_est as te
from jacobite.analysis import divergence
from jacobite.errors import InvalidOptionError

F64 = torch.float64
D, N, NPROBE = 12, 1000, 12
SPECTRA = ("flat", "decay 0.6", "decay 0.2", "indefinite", "nonsymmetric")


def _matrices() -> torch.Tensor:
    """Five ``D × D`` matrices: eigenvalues 1 ± 0.1, 0.6ⁱ, 0.2ⁱ, ±0.8ⁱ (alternating signs) on
    random eigenvectors, and a nonsymmetric one with decaying columns."""
    g = torch.Generator().manual_seed(5)
    i = torch.arange(D, dtype=F64)
    Q = torch.linalg.qr(torch.randn(4, D, D, generator=g, dtype=F64)).Q
    ev = torch.stack([1 + 0.1 * torch.randn(D, generator=g, dtype=F64), 0.6 ** i, 0.2 ** i,
                      0.8 ** i * (1 - 2 * (i % 2))])
    sym = Q * ev[:, None, :] @ Q.transpose(1, 2)
    nonsym = torch.randn(D, D, generator=g, dtype=F64) * 0.7 ** i / D ** 0.5
    return torch.cat([sym, nonsym[None]])


def _named(*columns: torch.Tensor) -> dict[str, list[float]]:
    """Each spectrum's entries of ``columns``, for an assertion's message."""
    return {name: [float(c[i]) for c in columns] for i, name in enumerate(SPECTRA)}


def _draws(method: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values and stderrs ``(N, 5)`` of ``N`` independent runs, and the exact traces ``(5,)``."""
    A = _matrices()
    batch = A.repeat(N, 1, 1)  # (N·5, D, D), draw-major

    def apply(V: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bij,kbj->kbi", batch, V)

    fn = {"hutchinson": te.hutchinson, "hutch++": te.hutch_pp, "xtrace": te.xtrace}[method]
    value, stderr, _ = fn(apply, NPROBE, (N * 5, D), F64, "cpu", torch.Generator().manual_seed(0))
    exact = torch.diagonal(A, dim1=1, dim2=2).sum(-1)
    return value.reshape(N, 5), stderr.reshape(N, 5), exact


def _ratio_and_tolerance(value: torch.Tensor, stderr: torch.Tensor, exact: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """``variance / mean(stderr²)`` per matrix, and four standard errors of it (delta method:
    the relative standard errors of the two means of squares, added)."""
    sq_err = (value - exact).square()  # the truth is known: the variance is a mean of squares
    sq_se = stderr.square()
    var, ms2 = sq_err.mean(0), sq_se.mean(0)
    rel = (sq_err.std(0) / var.clamp_min(1e-300) + sq_se.std(0) / ms2.clamp_min(1e-300)) / N ** 0.5
    ratio = var / ms2
    return ratio, 4 * rel * ratio


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_hutchinson_and_hutch_pp_report_the_variance_on_average(method: str) -> None:
    value, stderr, exact = _draws(method)
    ratio, tol = _ratio_and_tolerance(value, stderr, exact)
    assert ((ratio - 1).abs() <= tol).all(), _named(ratio, tol)


def test_xtrace_stderr_does_not_understate_the_variance() -> None:
    # the error estimate of the XTrace paper treats the leave-one-out estimates as independent
    # and understates the variance ~3x on the flat spectrum; with their covariance it does not
    value, stderr, exact = _draws("xtrace")
    ratio, tol = _ratio_and_tolerance(value, stderr, exact)
    report = _named(ratio, tol)
    assert (ratio <= 1 + tol).all(), report
    # clipping the covariance at 0 overstates where it is near 0, at most about 2.5x measured
    assert (ratio >= 0.35).all(), report


@pytest.mark.parametrize("method", ["hutchinson", "hutch++", "xtrace"])
def test_student_t_intervals_with_the_reported_dof_cover_the_trace(method: str) -> None:
    value, stderr, exact = _draws(method)
    q = stats.t.ppf(0.975, te.dof(method, NPROBE, D))
    cover = ((value - exact).abs() <= q * stderr).double().mean(0)
    # nominal 0.95; the heavy tails of the quadratic forms (0.2ⁱ: one eigenvalue dominates)
    # cost a few points, more than the binomial noise of 1000 draws (±0.014)
    assert (cover >= 0.84).all(), _named(cover)
    assert (cover[[0, 3, 4]] >= 0.88).all(), _named(cover)


def test_dof_counts_the_probes_behind_the_spread() -> None:
    assert te.dof("hutchinson", 12, 32) == 11
    assert te.dof("hutch++", 12, 32) == 3  # 4 sketch, 4 exact, 4 residual probes
    assert te.dof("xtrace", 12, 32) == 5  # 6 test vectors
    assert te.dof("xtrace", 12, 3) == 2  # at most D test vectors
    with pytest.raises(InvalidOptionError, match="hutchinson"):
        te.dof("exact", 12, 32)


def test_divergence_reports_the_dof_of_its_stderr() -> None:
    x = torch.randn(3, 32, dtype=F64)
    for method, want in (("hutchinson", 11), ("hutch++", 3), ("xtrace", 5)):
        assert divergence(torch.tanh, x, method=method, nprobe=12).dof == want  # type: ignore[arg-type]
    assert divergence(torch.tanh, x).dof is None


def _hutch_pp_dense(A: torch.Tensor, Om: torch.Tensor, test: int, sketch: list[int]
                    ) -> torch.Tensor:
    """``tr(A P) + ωᵀ(I − P)A(I − P)ω`` with ``P`` the projector on ``range(A Ω[:, sketch])``
    (a basis from the SVD, so that dependent columns add no direction)."""
    P = torch.zeros_like(A)
    if sketch:
        U, sig, _ = torch.linalg.svd(A @ Om[:, sketch], full_matrices=False)
        Q = U[:, sig > 1e-10 * sig[0]]
        P = Q @ Q.T
    w = Om[:, test] - P @ Om[:, test]
    return torch.trace(A @ P) + w @ A @ w


@pytest.mark.parametrize("D,s", [(9, 4), (12, 2), (6, 6), (16, 5)])
def test_xtrace_value_and_stderr_match_explicit_leave_out_projections(D: int, s: int) -> None:
    # (6, 6) draws two equal test vectors for the first sample: the value still matches, the
    # stderr's pair removals are those of independent products (module doc), so it is skipped
    A = torch.randn(2, D, D, generator=torch.Generator().manual_seed(D + s), dtype=F64)

    def apply(V: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bij,kbj->kbi", A, V)

    value, stderr, used = te.xtrace(apply, 2 * s, (2, D), F64, "cpu",
                                    torch.Generator().manual_seed(1))
    Om = te.rademacher(s, (2, D), F64, "cpu", torch.Generator().manual_seed(1))  # same draw
    assert used == 2 * s
    for b in range(2):
        Ob, idx = Om[:, b].T, list(range(s))
        t = torch.stack([_hutch_pp_dense(A[b], Ob, i, [k for k in idx if k != i]) for i in idx])
        cov = torch.zeros((), dtype=F64)
        for i in idx:
            for j in idx:
                if i != j:
                    t2 = _hutch_pp_dense(A[b], Ob, i, [k for k in idx if k not in (i, j)])
                    rest = (t.sum() - t[i] - t[j]) / (s - 2) if s > 2 else t.mean()
                    cov = cov + (t[i] - t2) * (t[j] - rest)
        var = t.var() / s + (cov / (s * (s - 1))).clamp_min(0)
        torch.testing.assert_close(value[b], t.mean(), rtol=1e-10, atol=1e-10)
        if torch.linalg.matrix_rank(Ob) == s:
            torch.testing.assert_close(stderr[b], var.sqrt(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("case", ["rank 2", "dependent test vectors"])
def test_xtrace_is_unbiased_where_the_products_are_rank_deficient(case: str) -> None:
    # rank 2 with 4 test vectors: a leave-one-out sketch is range(A) and its estimate exact;
    # D = 6 with 6 Rademacher vectors: about half the draws repeat a vector (up to sign)
    g = torch.Generator().manual_seed(3)
    if case == "rank 2":
        D, s = 8, 4
        A = torch.randn(D, 2, generator=g, dtype=F64) @ torch.randn(2, D, generator=g, dtype=F64)
    else:
        D, s = 6, 6
        A = torch.randn(D, D, generator=g, dtype=F64)
    batch = A.expand(4000, D, D)

    def apply(V: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bij,kbj->kbi", batch, V)

    value, stderr, _ = te.xtrace(apply, 2 * s, (4000, D), F64, "cpu",
                                 torch.Generator().manual_seed(0))
    err = value - torch.trace(A)
    assert abs(float(err.mean())) <= 4 * float(err.std()) / 4000 ** 0.5 + 1e-9, float(err.mean())
    if case == "rank 2":  # exact unless the other three products span less than range(A)
        exact = err.abs() < 1e-8
        assert float(exact.double().mean()) > 0.99
        assert float(stderr[exact].max()) < 1e-6


def test_xtrace_gradient_with_fixed_probes_is_the_estimate_s_on_a_low_rank_field() -> None:
    g = torch.Generator().manual_seed(0)
    U, V = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(2, 6, generator=g, dtype=F64)

    def f(z: torch.Tensor) -> torch.Tensor:  # rank-2 Jacobian: every sketch of 3 holds it
        return torch.tanh(z @ V.T) @ U.T

    x = torch.randn(3, 6, generator=g, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(divergence(f, x, method="xtrace", nprobe=8, seed=1).value.sum(),
                                  x)
    # the estimate is exact here, so its gradient is that of the trace by jacrev
    def trace(z: torch.Tensor) -> torch.Tensor:
        J = torch.func.vmap(torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0]))(z)
        return J.diagonal(dim1=1, dim2=2).sum()

    torch.testing.assert_close(grad, torch.autograd.grad(trace(x), x)[0], rtol=1e-8, atol=1e-10)
