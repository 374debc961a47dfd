"""Finiteness checks on arguments cannot read values under ``torch.func.vmap``: they pass there,
so entry points that check their point still run under vmap (a non-finite entry propagates)."""

from __future__ import annotations

import torch

import jacobite
from jacobite import _validate


def _f(x: torch.Tensor) -> torch.Tensor:
    return x + 0.3 * torch.tanh(x)


def test_all_finite_passes_under_vmap_and_still_checks_outside() -> None:
    seen = torch.func.vmap(lambda t: torch.tensor(_validate.all_finite(t)))(torch.ones(3, 2))
    assert bool(seen.all())
    assert not _validate.all_finite(torch.tensor([1.0, float("nan")]))


def test_exact_logdet_runs_under_vmap() -> None:
    X = torch.randn(4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = torch.func.vmap(lambda x: jacobite.logdet(_f, x, method="exact").value)(X)
    J = torch.func.vmap(torch.func.vmap(torch.func.jacrev(_f)))(X)
    torch.testing.assert_close(got, torch.linalg.slogdet(J)[1])


def test_a_nan_sample_under_vmap_gives_nan_for_that_sample_only() -> None:
    X = torch.randn(3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    X[1, 0, 0] = float("nan")
    got = torch.func.vmap(lambda x: jacobite.logdet(_f, x, method="exact").value)(X)
    assert torch.isnan(got[1, 0]) and torch.isfinite(got[0]).all() and torch.isfinite(got[2]).all()
