"""laplace: the posterior precision, functional variance, predictive and Laplace evidence of
every structure equal dense references built from the definitions with torch.func on a tiny
MLP (cross-entropy and squared error); the automatic prior maximises the evidence."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from jacobite.curvature import laplace
from jacobite.errors import (
    InvalidOptionError,
    ShapeError,
    UnsupportedOperationError,
)

from . import _laplace_dense as D

F64 = torch.float64
STRUCTURES = ("last_layer", "kron", "diag", "full")
LOSSES = {"ce": nn.CrossEntropyLoss(), "mse": nn.MSELoss()}
TOL = {"rtol": 1e-8, "atol": 1e-10}


def _setup(kind: str, structure: str, delta: list[float], T: float = 1.0, sigma: float = 1.0):
    model = D.mlp()
    X, y = D.data(kind)
    prior = torch.tensor(delta, dtype=F64) if len(delta) > 1 else delta[0]
    post = laplace(model, LOSSES[kind], (X, y), structure=structure, prior_precision=prior,
                   temperature=T, sigma_noise=sigma)
    groups = 1 if structure == "last_layer" else 2
    d = torch.tensor(delta * (groups if len(delta) == 1 else 1), dtype=F64)
    Lam = D.precision(model, kind, structure, X, y, d, T, sigma)
    return model, X, y, post, Lam


@pytest.mark.parametrize("kind", ["ce", "mse"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_functional_variance_equals_the_dense_reference(kind, structure):
    model, _, _, post, Lam = _setup(kind, structure, [0.7], T=2.0, sigma=0.5)
    Xt = torch.randn(4, 4, dtype=F64, generator=torch.Generator().manual_seed(5))
    ref = D.functional_variance(model, structure, Xt, Lam)
    torch.testing.assert_close(post.functional_variance(Xt), ref, **TOL)
    torch.testing.assert_close(post.functional_variance(Xt, diagonal=True),
                               ref.diagonal(dim1=1, dim2=2), **TOL)
    batches = [Xt[:1], Xt[1:]]  # an iterable of batches: their samples in order
    torch.testing.assert_close(post.functional_variance(batches), ref, **TOL)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_posterior_precision_log_det_and_solve_equal_the_dense_matrix(structure):
    _, _, _, post, Lam = _setup("ce", structure, [0.3] if structure == "last_layer"
                                else [0.3, 2.0])
    P = post.posterior_precision
    torch.testing.assert_close(P.to_dense(), Lam, **TOL)
    b = torch.randn(Lam.shape[0], 2, dtype=F64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(P.solve(b), torch.linalg.solve(Lam, b), **TOL)
    torch.testing.assert_close(P.slogdet()[1], torch.linalg.slogdet(Lam)[1], **TOL)


@pytest.mark.parametrize("kind", ["ce", "mse"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_log_marginal_likelihood_equals_the_dense_formula(kind, structure):
    delta = [0.4] if structure == "last_layer" else [0.4, 3.0]
    model, X, y, post, Lam = _setup(kind, structure, delta, T=1.5, sigma=0.8)
    per_param = Lam.diagonal() - D.curvature(model, kind, structure, X, y, 0.8).diagonal() / 1.5
    ref = D.evidence(model, kind, structure, X, y, Lam, per_param, T=1.5, sigma=0.8)
    torch.testing.assert_close(post.log_marginal_likelihood(), ref, **TOL)
    # at another δ, given as a number: the same formula with the new Λ
    Lam2 = Lam - torch.diag(per_param) + 5.0 * torch.eye(Lam.shape[0], dtype=F64)
    ref2 = D.evidence(model, kind, structure, X, y, Lam2,
                      torch.full_like(per_param, 5.0), T=1.5, sigma=0.8)
    torch.testing.assert_close(post.log_marginal_likelihood(5.0), ref2, **TOL)


@pytest.mark.parametrize("kind", ["ce", "mse"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_auto_prior_maximises_the_evidence_over_a_grid(kind, structure):
    model = D.mlp()
    X, y = D.data(kind, n=12)
    post = laplace(model, LOSSES[kind], (X, y), structure=structure)
    best = post.log_marginal_likelihood()
    grid = torch.logspace(-4, 6, 401, dtype=F64)
    values = torch.stack([post.log_marginal_likelihood(float(d)) for d in grid])
    assert float(best) >= float(values.max()) - 1e-9
    assert bool((post.prior_precision == post.prior_precision[0]).all())


@pytest.mark.parametrize("structure", STRUCTURES)
def test_probit_predictive_is_the_softmax_of_scaled_logits(structure):
    model, X, _, post, Lam = _setup("ce", structure, [1.0])
    var = D.functional_variance(model, structure, X, Lam)
    kappa = 1 / torch.sqrt(1 + math.pi / 8 * var.diagonal(dim1=1, dim2=2))
    ref = torch.softmax(kappa * model(X).detach(), dim=1)
    pred = post.predictive(X)
    torch.testing.assert_close(pred.mean, ref, **TOL)
    torch.testing.assert_close(pred.variance, var, **TOL)
    torch.testing.assert_close(post.predictive(X, diagonal=True).mean, ref, **TOL)


@pytest.mark.parametrize("structure", ["last_layer", "kron"])
def test_mc_predictive_agrees_with_sampling_the_dense_functional_variance(structure):
    model, X, _, post, Lam = _setup("ce", structure, [0.2])
    var = D.functional_variance(model, structure, X, Lam)
    g = torch.Generator().manual_seed(9)
    L = torch.linalg.cholesky(var + 1e-12 * torch.eye(3, dtype=F64))
    f = model(X).detach()
    draws = f + torch.einsum("nij,snj->sni", L, torch.randn(40000, *f.shape, dtype=F64,
                                                            generator=g))
    ref = torch.softmax(draws, dim=2).mean(0)
    got = post.predictive(X, link="mc", samples=40000, seed=3).mean
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-2)
    again = post.predictive(X, link="mc", samples=40000, seed=3).mean
    assert torch.equal(got, again)


def test_regression_predictive_mean_is_the_model_output():
    model, X, _, post, Lam = _setup("mse", "full", [1.0], sigma=0.3)
    pred = post.predictive(X)
    torch.testing.assert_close(pred.mean, model(X).detach(), **TOL)
    torch.testing.assert_close(pred.variance, D.functional_variance(model, "full", X, Lam),
                               **TOL)


def test_last_layer_covers_the_last_linear_only():
    post = _setup("ce", "last_layer", [1.0])[3]
    assert post.names == ("2.weight", "2.bias") and post.n_params == 18
    assert post.groups == ["2"]


def test_kron_and_diag_agree_for_a_single_linear_layer_on_one_sample():
    # one sample: K-FAC is exact, so its diagonal is the exact diagonal
    model = nn.Linear(3, 2).double()
    X, y = torch.randn(1, 3, dtype=F64), torch.tensor([1])
    k = laplace(model, nn.CrossEntropyLoss(), (X, y), structure="kron", prior_precision=1.0)
    d = laplace(model, nn.CrossEntropyLoss(), (X, y), structure="diag", prior_precision=1.0)
    torch.testing.assert_close(k.posterior_precision.diagonal(),
                               d.posterior_precision.diagonal(), **TOL)


def test_bad_arguments_raise_typed_errors_naming_the_fix():
    model = D.mlp()
    X, y = D.data("ce")
    with pytest.raises(InvalidOptionError, match="structure"):
        laplace(model, nn.CrossEntropyLoss(), (X, y), structure="dense")
    with pytest.raises(InvalidOptionError, match="> 0"):
        laplace(model, nn.CrossEntropyLoss(), (X, y), prior_precision=-1.0)
    with pytest.raises(ShapeError, match="per layer"):
        laplace(model, nn.CrossEntropyLoss(), (X, y), structure="kron",
                prior_precision=torch.ones(3, dtype=F64))
    with pytest.raises(UnsupportedOperationError, match="CrossEntropyLoss"):
        laplace(model, nn.HuberLoss(), (X, y))
    with pytest.raises(UnsupportedOperationError, match=r"nn\.Linear"):
        laplace(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten()).double(), nn.MSELoss(),
                (torch.randn(4, 1, 5, dtype=F64), torch.randn(4, 6, dtype=F64)))
    post = laplace(model, nn.CrossEntropyLoss(), (X, y), prior_precision=1.0)
    with pytest.raises(InvalidOptionError, match="link"):
        post.predictive(X, link="bridge")


@pytest.mark.parametrize("kind", ["ce", "mse"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_batches_give_the_posterior_of_the_whole_dataset(kind, structure):
    model = D.mlp()
    X, y = D.data(kind)
    whole = laplace(model, LOSSES[kind], (X, y), structure=structure)
    parts = laplace(model, LOSSES[kind], [(X[:3], y[:3]), (X[3:], y[3:])], structure=structure)
    torch.testing.assert_close(parts.prior_precision, whole.prior_precision, rtol=1e-6,
                               atol=0)
    torch.testing.assert_close(parts.log_marginal_likelihood(1.0),
                               whole.log_marginal_likelihood(1.0), **TOL)
    torch.testing.assert_close(parts.functional_variance(X), whole.functional_variance(X),
                               **TOL)


def test_kron_covers_convolutions_exactly_for_one_sample_at_one_position():
    # one sample, the kernel covering the whole image (one output position): every K-FAC
    # block is that layer's exact Gauss–Newton block
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3, 4)).to(F64)
    X, y = torch.randn(1, 2, 3, 3, dtype=F64), torch.tensor([2])
    post = laplace(model, nn.CrossEntropyLoss(), (X, y), structure="kron", prior_precision=0.5)
    J = D.dense_jacobian(model, X)
    p = torch.softmax(model(X).detach()[0], dim=0)
    G = J.T @ (torch.diag(p) - torch.outer(p, p)) @ J
    Lam = post.posterior_precision.to_dense()
    for sl in (slice(0, 57), slice(57, 73)):  # conv (54 + 3), linear (12 + 4)
        block = G[sl, sl] + 0.5 * torch.eye(sl.stop - sl.start, dtype=F64)
        torch.testing.assert_close(Lam[sl, sl], block, **TOL)
    Xt = torch.randn(3, 2, 3, 3, dtype=F64)
    Jt = D.dense_jacobian(model, Xt).reshape(3, 4, -1)
    torch.testing.assert_close(post.functional_variance(Xt),
                               Jt @ torch.linalg.solve(Lam, Jt.transpose(1, 2)), **TOL)


def test_setting_the_prior_precision_changes_the_posterior_and_is_checked():
    _, X, _, post, _ = _setup("ce", "kron", [1.0])
    _, _, _, other, Lam = _setup("ce", "kron", [0.2, 3.0])
    post.prior_precision = torch.tensor([0.2, 3.0], dtype=F64)
    torch.testing.assert_close(post.posterior_precision.to_dense(), Lam, **TOL)
    torch.testing.assert_close(post.functional_variance(X), other.functional_variance(X), **TOL)
    with pytest.raises(InvalidOptionError, match="> 0"):
        post.prior_precision = 0.0


@pytest.mark.parametrize("structure", ["diag", "full"])
def test_layers_beyond_linear_take_the_jacobian_route(structure):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 3)).to(F64)
    X, y = torch.randn(6, 4, dtype=F64), torch.randint(0, 3, (6,))
    post = laplace(model, nn.CrossEntropyLoss(), (X, y), structure=structure,
                   prior_precision=0.5)
    J = D.dense_jacobian(model, X).reshape(6, 3, -1)
    p = torch.softmax(model(X).detach(), dim=1)
    G = torch.einsum("nci,ncd,ndj->ij", J, torch.diag_embed(p) - p[:, :, None] * p[:, None], J)
    G = torch.diag(G.diagonal()) if structure == "diag" else G
    Lam = G + 0.5 * torch.eye(G.shape[0], dtype=F64)
    torch.testing.assert_close(post.functional_variance(X),
                               J @ torch.linalg.solve(Lam, J.transpose(1, 2)), **TOL)


@pytest.mark.parametrize("bias", [True, False])
def test_last_layer_jacobian_is_the_dense_phi_kron_identity(bias):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3, bias=bias)).to(F64)
    X, y = D.data("ce")
    post = laplace(model, nn.CrossEntropyLoss(), (X, y), prior_precision=0.6)
    Xt = torch.randn(4, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    J = post.last_layer_jacobian(Xt)
    perm = post.feature_major
    dense = D.dense_jacobian(model, Xt, list(post.names))  # (n C, P), parameter order
    torch.testing.assert_close(J.to_dense(), dense[:, perm], **TOL)
    phi = torch.cat([torch.tanh(model[0](Xt)).detach()]
                    + ([torch.ones(4, 1, dtype=F64)] if bias else []), dim=1)
    torch.testing.assert_close(J.to_dense(), torch.kron(phi, torch.eye(3, dtype=F64)), **TOL)
    # the functional variance through the operator, Λ read feature-major
    Lam = post.posterior_precision.to_dense()[perm][:, perm]
    full = J.to_dense() @ torch.linalg.solve(Lam, J.to_dense().T)
    blocks = torch.stack([full[3 * i:3 * i + 3, 3 * i:3 * i + 3] for i in range(4)])
    torch.testing.assert_close(post.functional_variance(Xt), blocks, **TOL)
    with pytest.raises(UnsupportedOperationError, match="last_layer"):
        laplace(model, nn.CrossEntropyLoss(), (X, y), structure="diag",
                prior_precision=1.0).last_layer_jacobian(Xt)


@settings(max_examples=15, deadline=None)
@given(structure=st.sampled_from(STRUCTURES), low=st.floats(0.01, 10.0),
       factor=st.floats(1.01, 100.0), T=st.floats(0.2, 5.0))
def test_a_stronger_prior_shrinks_and_a_hotter_posterior_widens_the_variance(
        structure, low, factor, T):
    # Λ = G / T + δ I grows with δ and shrinks with T (Loewner order), so J Λ⁻¹ Jᵀ moves the
    # other way: the differences below are positive semi-definite
    model = D.mlp()
    X, y = D.data("ce")
    post = laplace(model, nn.CrossEntropyLoss(), (X, y), structure=structure,
                   prior_precision=low, temperature=T)
    before = post.functional_variance(X)
    post.prior_precision = low * factor
    after = post.functional_variance(X)
    assert float(torch.linalg.eigvalsh(before - after).min()) >= -1e-10
    hotter = laplace(model, nn.CrossEntropyLoss(), (X, y), structure=structure,
                     prior_precision=low, temperature=T * factor).functional_variance(X)
    assert float(torch.linalg.eigvalsh(hotter - before).min()) >= -1e-10


@pytest.mark.parametrize("delta", [[0.5], [0.5, 2.0]], ids=["one", "per-layer"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_samples_have_the_posterior_mean_and_covariance(structure, delta):
    if structure == "last_layer" and len(delta) > 1:
        delta = delta[:1]
    _, _, _, post, Lam = _setup("ce", structure, delta)
    draws = post.sample(100000, seed=4)
    cov = torch.linalg.inv(Lam).detach()
    assert draws.shape == (100000, Lam.shape[0])
    centred = draws - post.mean
    torch.testing.assert_close(centred.mean(0), torch.zeros_like(post.mean), rtol=0,
                               atol=5 * float(cov.diagonal().max().sqrt()) / 100000**0.5)
    torch.testing.assert_close(centred.T @ centred / 100000, cov, rtol=0,
                               atol=0.03 * float(cov.diagonal().max()))
    assert torch.equal(post.sample(3, seed=1), post.sample(3, seed=1))


@pytest.mark.parametrize("ignore", [-100, 3], ids=["default", "class-3"])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_samples_whose_target_is_ignored_count_for_nothing(structure, ignore):
    """With ``ignore_index``, the posterior and the evidence are those of the other samples
    alone (as the loss leaves them out), against the dense references on those samples; the
    data come in two batches."""
    model = D.mlp()
    X, y = D.data("ce", n=9)
    skip = torch.tensor([1, 4, 5])
    y_ign = y.clone()
    y_ign[skip] = ignore
    keep = y_ign != ignore
    delta = [0.7] if structure == "last_layer" else [0.7, 1.5]
    loss = nn.CrossEntropyLoss(ignore_index=ignore)
    post = laplace(model, loss, [(X[:5], y_ign[:5]), (X[5:], y_ign[5:])], structure=structure,
                   prior_precision=torch.tensor(delta, dtype=F64) if len(delta) > 1
                   else delta[0])
    Xk, yk = X[keep], y[keep]
    Lam = D.precision(model, "ce", structure, Xk, yk, torch.tensor(delta, dtype=F64))
    torch.testing.assert_close(post.posterior_precision.to_dense(), Lam, **TOL)
    per_param = Lam.diagonal() - D.curvature(model, "ce", structure, Xk, yk).diagonal()
    ref = D.evidence(model, "ce", structure, Xk, yk, Lam, per_param)
    torch.testing.assert_close(post.log_marginal_likelihood(), ref, **TOL)
    if structure in ("last_layer", "kron"):  # the mean of the features needs a sample
        with pytest.raises(ShapeError, match="ignore_index"):
            laplace(model, loss, (X, torch.full_like(y, ignore)), structure=structure)


def test_feature_major_belongs_to_the_last_layer_structure():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                torch.nn.Linear(4, 2)).double()
    X, y = torch.randn(12, 3, dtype=torch.float64), torch.randint(0, 2, (12,))
    for structure in ("kron", "diag", "full"):
        post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure=structure,
                       prior_precision=1.0)
        with pytest.raises(UnsupportedOperationError, match="structure='last_layer'"):
            post.feature_major  # noqa: B018


def test_seed_none_draws_from_the_global_generator():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    X, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="diag",
                   prior_precision=1.0)
    torch.manual_seed(5)
    a = post.sample(4, seed=None)
    torch.manual_seed(5)
    b = post.sample(4, seed=None)
    c = post.sample(4, seed=None)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(7)
    p1 = post.predictive(X, link="mc", samples=20, seed=None).mean
    torch.manual_seed(7)
    p2 = post.predictive(X, link="mc", samples=20, seed=None).mean
    assert torch.equal(p1, p2)


def test_mc_predictive_with_the_diagonal_equals_the_full_one():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(),
                                torch.nn.Linear(5, 3)).double()
    X, y = torch.randn(16, 3, dtype=torch.float64), torch.randint(0, 3, (16,))
    post = laplace(model, torch.nn.CrossEntropyLoss(), (X, y), structure="kron",
                   prior_precision=1.0)
    full = post.predictive(X, link="mc", samples=30, seed=3)
    diag = post.predictive(X, link="mc", samples=30, seed=3, diagonal=True)
    torch.testing.assert_close(diag.mean, full.mean)
    torch.testing.assert_close(diag.variance, full.variance.diagonal(dim1=1, dim2=2))
