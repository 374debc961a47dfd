"""The log-series estimators of jacobite.logdet on maps far from the identity: the scale ``c``
(``log det J = D log c + log det(J/c)``) against dense ``slogdet`` of ``torch.func.jacrev``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from jacobite.analysis import _logdet_est as est
from jacobite.analysis import logdet

F64 = torch.float64
Map = Callable[[torch.Tensor], torch.Tensor]


def _scaled_residual(D: int, seed: int, s: float, lip: float = 0.3) -> Map:
    """``z ↦ s (z + tanh(z Wᵀ + b))`` with ``‖W‖₂ = lip``: ``J = s (I + G)``, ``‖G‖₂ ≤ lip``, so
    the eigenvalues of ``J`` lie in the disc of radius ``s·lip`` around ``s``."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, D, generator=g, dtype=F64)
    W = W * (lip / torch.linalg.matrix_norm(W, ord=2))
    b = torch.randn(D, generator=g, dtype=F64)
    return lambda z: s * (z + torch.tanh(z @ W.T + b))


def _diagonal(d: list[float]) -> Map:
    J = torch.tensor(d, dtype=F64)
    return lambda z: z * J


def _dense(f: Map, x: torch.Tensor) -> torch.Tensor:
    J = torch.func.vmap(torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0]))(x)
    return torch.linalg.slogdet(J)[1]


@settings(max_examples=15, deadline=None)
@given(s=st.floats(0.2, 10.0), seed=st.integers(0, 10**6))
def test_a_full_hutch_pp_sketch_matches_dense_slogdet_at_any_scale(s: float, seed: int) -> None:
    # 3D probes: the sketch spans R^D, so only the truncated series separates the value from
    # slogdet; without the scale it diverges for s ≥ 2 and needs hundreds of terms near 0.2
    D = 4
    f = _scaled_residual(D, seed, s)
    x = torch.randn(3, D, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # converges: no warning
        r = logdet(f, x, method="hutch++", nprobe=3 * D, terms=40)
    torch.testing.assert_close(r.value, _dense(f, x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("plus", [False, True])
@pytest.mark.parametrize("s", [0.25, 4.0])
def test_the_stderr_is_calibrated_far_from_the_identity(plus: bool, s: float) -> None:
    # N copies of B points in one call: every sample draws its own probes, so each copy is an
    # independent run of the estimator
    D, B, N, P = 8, 4, 200, 12
    f = _scaled_residual(D, 3, s, lip=0.6)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(4), dtype=F64)
    X = x.repeat(N, 1)
    Z = est.probes(P, X, torch.Generator().manual_seed(0))
    value, se = est.series(f, X, Z, terms=30, plus=plus)
    err = value - _dense(f, x).repeat(N)
    sq_err, sq_se = err.square(), se.square()
    ratio = sq_err.mean() / sq_se.mean()
    # four standard errors of the ratio over the N·B draws (delta method)
    tol = 4 * (sq_err.std() / sq_err.mean() + sq_se.std() / sq_se.mean()) / math.sqrt(N * B)
    assert abs(float(ratio) - 1) <= float(tol), (float(ratio), float(tol))
    dof = est.dof("hutch++" if plus else "hutchinson", P, D)
    assert dof is not None
    cover = (err.abs() <= stats.t.ppf(0.975, dof) * se).double().mean()
    assert float(cover) >= 0.90, float(cover)  # nominal 0.95; binomial noise ±0.011


def test_scale_is_one_near_the_identity_and_deepest_in_the_disc_far_from_it() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    for d, want in (([0.8, 1.0, 1.2], 1.0),  # already inside: kept
                    ([3.0, 3.0, 3.0], 2 ** (6 / 4)),  # |3/c − 1| = 0.06 at the nearest step
                    ([0.01, 0.01, 0.01], 2 ** (-27 / 4)),
                    ([2.0, 3.0, 4.0], 2 ** (7 / 4)),  # max |λ/c − 1| = 0.41, the minimax step
                    ([2.0, -1.0, 1.0], 1.0)):  # no c > 0 brings −1 inside
        c = est.scale(est.pullback_of(_diagonal(d), x)[1], x)
        assert c.tolist() == pytest.approx([want, want], rel=1e-12), (d, c)


def test_gradient_through_a_rescaled_estimate_matches_dense_slogdet() -> None:
    D = 3
    f = _scaled_residual(D, 11, 6.0)
    x = torch.randn(2, D, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_()
    g = torch.autograd.grad(logdet(f, x, method="hutch++", nprobe=3 * D, terms=40).value.sum(),
                            x)[0]
    g_ref = torch.autograd.grad(_dense(f, x).sum(), x)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-7, atol=1e-9)


def test_rescale_off_keeps_the_plain_series() -> None:
    x = torch.zeros(2, 3, dtype=F64)
    Z = est.probes(6, x, torch.Generator().manual_seed(0))
    with pytest.warns(match="diverges"):
        est.series(lambda z: 3.0 * z, x, Z, terms=20, rescale=False)
    v, _ = est.series(lambda z: 3.0 * z, x, Z, terms=20)
    torch.testing.assert_close(v, torch.full((2,), 3 * math.log(3.0), dtype=F64))


def test_logdet_reports_the_dof_of_its_stderr() -> None:
    f, x = _scaled_residual(8, 1, 2.0), torch.randn(2, 8, dtype=F64)
    for method, want in (("hutchinson", 15), ("hutch++", 5), ("slq", 15)):
        r = logdet(f, x, method=method, nprobe=16)  # type: ignore[arg-type]
        assert r.dof == want and logdet(f, x[0], batch=False, method=method).dof == want  # type: ignore[arg-type]
    assert logdet(f, x, method="hutch++", nprobe=24).dof is None  # the sketch spans R^8
    assert logdet(f, x, method="exact").dof is None
