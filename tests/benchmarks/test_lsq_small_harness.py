"""The small least-squares benchmark's analytic residuals and Jacobians (SymPy from the torch
models) agree with the torch residuals and their AD Jacobians, for all 27 NIST models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import bench_lsq_small, nist


@pytest.mark.parametrize("name", nist.PROBLEMS)
def test_analytic_jacobian_matches_ad(name: str) -> None:
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    k = nist.N_PARAMS[name]
    x = rng.uniform(2.0, 4.0, size=(12, 2) if name == "Nelson" else 12)
    prob = SimpleNamespace(name=name, x=x, y=rng.uniform(1.0, 2.0, size=12), n_params=k)
    r_np, J_np = bench_lsq_small._analytic(prob)  # type: ignore[arg-type]
    r_t = nist.residual(prob)  # type: ignore[arg-type]
    b = rng.uniform(0.5, 1.5, size=k)
    bt = torch.as_tensor(b)
    np.testing.assert_allclose(r_np(b), r_t(bt).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(J_np(b), torch.func.jacrev(r_t)(bt).numpy(), rtol=1e-10,
                               atol=1e-12)


def test_exponential_fit_forms_agree() -> None:
    fit = bench_lsq_small.exponential_fit()
    p = np.array([2.0, 1.1, 0.3])
    pt = torch.as_tensor(p)
    np.testing.assert_allclose(fit.r_np(p), fit.r_torch(pt).numpy(), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(fit.J_np(p), torch.func.jacrev(fit.r_torch)(pt).numpy(),
                               rtol=1e-14, atol=1e-14)
    assert fit.m == 50 and fit.x0.tolist() == [1.0, 1.0, 0.0]
