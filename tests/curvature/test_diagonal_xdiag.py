"""XDiag on explicit symmetric matrices of known spectrum, through the operator interface it
uses (``mm``): unbiased, a variance that matches on a flat spectrum and errs on the safe side
where the spectrum decays, and exact on every matrix whose rank is below its test vectors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.curvature._diag_estimate import _xdiag

F64 = torch.float64
D, DRAWS = 24, 600


def _run(A: torch.Tensor, nprobe: int, seed: int):
    op = SimpleNamespace(mm=lambda V: A @ V)
    ps = SimpleNamespace(size=A.shape[0], dtype=A.dtype, device=A.device)
    return _xdiag(op, nprobe, ps, torch.Generator().manual_seed(seed))


def _matrix(spectrum: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    Q = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=F64)).Q
    i = torch.arange(D, dtype=F64)
    ev = {"flat": 1 + 0.1 * torch.randn(D, generator=g, dtype=F64), "decay 0.7": 0.7 ** i,
          "indefinite": 0.8 ** i * (1 - 2 * (i % 2))}[spectrum]
    return Q * ev @ Q.T


@pytest.mark.parametrize("spectrum", ["flat", "decay 0.7", "indefinite"])
def test_unbiased_with_a_variance_that_does_not_understate(spectrum):
    A = _matrix(spectrum)
    runs = [_run(A, 10, s) for s in range(DRAWS)]
    err = torch.stack([r.value for r in runs]) - A.diagonal()
    se2 = torch.stack([r.stderr for r in runs]).square()
    sem = err.std(0) / DRAWS ** 0.5
    assert (err.mean(0).abs() <= 4.5 * sem).all()  # the largest of 24 entries
    a, b = err.square().sum(1), se2.sum(1)  # pooled over the entries, one number per draw
    ratio = a.mean() / b.mean()
    tol = 4 * ratio * (a.std() / a.mean() + b.std() / b.mean()) / DRAWS ** 0.5
    assert 0.45 <= ratio <= 1 + tol, (float(ratio), float(tol))
    if spectrum == "flat":  # where the leave-one-out estimates correlate most
        assert abs(ratio - 1) <= tol, (float(ratio), float(tol))


@settings(max_examples=25, deadline=None)
@given(rank=st.integers(0, 6), extra=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_exact_below_the_number_of_test_vectors(rank, extra, seed):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(D, rank, generator=g, dtype=F64)
    A = B @ B.T  # rank `rank`
    s = rank + extra
    est = _run(A, 2 * s, seed)
    torch.testing.assert_close(est.value, A.diagonal(), rtol=1e-9, atol=1e-10)
    assert float(est.stderr.max()) <= 1e-8 * max(1.0, float(A.abs().max()))
    assert est.dof == s - 1
