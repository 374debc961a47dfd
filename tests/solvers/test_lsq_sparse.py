"""Sparse Jacobians in least_squares: a 1-D Bratu problem solved with a SciPy sparse, a torch
sparse and a planned (jacobite.sparse.prepare) Jacobian, against the dense solution."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from jacobite.errors import InvalidOptionError
from jacobite.solvers import least_squares

N = 40
H = 1.0 / (N + 1)


def bratu(u):
    up = torch.nn.functional.pad(u, (1, 1))
    return (2 * up[1:-1] - up[:-2] - up[2:]) / H ** 2 - torch.exp(u)


def jac_scipy(u):
    main = 2 / H ** 2 - torch.exp(u).numpy()
    off = -np.ones(N - 1) / H ** 2
    return sp.diags([main, off, off], [0, -1, 1], format="csr")


def jac_torch(u):
    return torch.as_tensor(jac_scipy(u).toarray()).to_sparse()


@pytest.fixture(scope="module")
def dense_solution():
    res = least_squares(bratu, torch.zeros(N, dtype=torch.float64))
    assert res.success and res.method == "lm" and res.cost < 1e-20
    return res.x


@pytest.mark.parametrize("jac", [jac_scipy, jac_torch, "sparse"], ids=["scipy", "torch", "plan"])
@pytest.mark.parametrize("method", ["auto", "lm", "trf", "gauss-newton"])
def test_sparse_jacobian_matches_dense(jac, method, dense_solution):
    res = least_squares(bratu, torch.zeros(N), jac=jac, method=method)
    assert res.success and res.cost < 1e-20
    assert sp.issparse(res.jac) and res.jac.nnz == 3 * N - 2
    assert res.method == ("lm" if method == "auto" else method)  # lm: sparse LU steps
    torch.testing.assert_close(res.x, dense_solution, rtol=1e-10, atol=1e-12)
    assert res.nfev + res.njev < 60


def test_sparse_robust_loss_and_bounds(dense_solution):
    lb = torch.zeros(N)
    res = least_squares(bratu, torch.full((N,), 0.01), jac=jac_scipy, bounds=(lb, np.inf),
                        loss="soft_l1", f_scale=10.0)
    assert res.success and sp.issparse(res.jac)
    torch.testing.assert_close(res.x, dense_solution, rtol=1e-8, atol=1e-10)


def test_lm_refuses_bounds_also_with_a_sparse_jacobian():
    with pytest.raises(InvalidOptionError, match="trf"):
        least_squares(bratu, torch.full((N,), 0.01), jac="sparse", method="lm",
                      bounds=(0.0, np.inf))
