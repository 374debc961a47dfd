"""laplace against laplace-torch where the definitions coincide: the exact Gauss–Newton
diagonal and the dense matrix for any MLP; K-FAC and the last layer's Kronecker factors for
layers without a bias (laplace-torch gives a bias a block of its own, jacobite joins it to the
weight as a column of ones); the same functional variance, probit predictive and Laplace
evidence."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from jacobite.curvature import laplace

peer = pytest.importorskip("laplace", reason="laplace-torch is not installed")

F64 = torch.float64
CASES = [("diag", "all", "diag", True), ("full", "all", "full", True),
         ("kron", "all", "kron", False), ("last_layer", "last_layer", "kron", False)]


@pytest.mark.parametrize("kind", ["classification", "regression"])
@pytest.mark.parametrize(("ours", "subset", "hessian", "bias"), CASES,
                         ids=[c[0] for c in CASES])
def test_functional_variance_probit_and_evidence_agree_with_laplace_torch(
        kind, ours, subset, hessian, bias):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5, bias=bias), nn.Tanh(),
                          nn.Linear(5, 3, bias=bias)).to(F64)
    X, Xt = torch.randn(20, 4, dtype=F64), torch.randn(6, 4, dtype=F64)
    y = torch.randint(0, 3, (20,)) if kind == "classification" else torch.randn(20, 3,
                                                                                dtype=F64)
    sigma = 0.7 if kind == "regression" else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        la = peer.Laplace(model, kind, subset_of_weights=subset, hessian_structure=hessian,
                          prior_precision=0.5, temperature=1.5, sigma_noise=sigma)
        la.fit(DataLoader(TensorDataset(X, y), batch_size=20))
        ref_var = la._glm_predictive_distribution(Xt)[1]
        ref_lml = la.log_marginal_likelihood(torch.tensor(0.5, dtype=F64))
        ref_p = la(Xt, link_approx="probit") if kind == "classification" else None
    loss = nn.CrossEntropyLoss() if kind == "classification" else nn.MSELoss()
    post = laplace(model, loss, (X, y), structure=ours, prior_precision=0.5, temperature=1.5,
                   sigma_noise=sigma)
    # laplace-torch builds its dense matrix from float32 identity columns: ~1e-7 apart
    tol = {"rtol": 1e-5, "atol": 1e-6} if ours == "full" else {"rtol": 1e-9, "atol": 1e-11}
    torch.testing.assert_close(post.functional_variance(Xt), ref_var.detach(), **tol)
    torch.testing.assert_close(post.log_marginal_likelihood(), ref_lml.detach(), **tol)
    if ref_p is not None:
        torch.testing.assert_close(post.predictive(Xt).mean, ref_p.detach(), **tol)
