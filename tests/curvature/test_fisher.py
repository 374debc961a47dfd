"""fisher: the empirical Fisher equals c Σ_n g_n g_nᵀ of per-sample gradients computed with
torch.func; the Monte Carlo Fisher's mean over many draws tends to the exact Fisher, which for
cross-entropy and MSE is the dense Gauss–Newton matrix."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from jacobite.curvature import fisher, ggn
from jacobite.errors import InvalidOptionError, UnsupportedOperationError

from ._oracle import batches, dense_ggn, flat_model, make, targets

LOSSES = {"ce-mean": lambda: nn.CrossEntropyLoss(), "ce-sum": lambda: nn.CrossEntropyLoss(
    reduction="sum"), "mse-mean": lambda: nn.MSELoss(), "mse-sum": lambda: nn.MSELoss(
    reduction="sum")}


def _setup(name: str, loss_name: str, dtype: torch.dtype = torch.float64):
    model, X = make(name, dtype)
    with torch.no_grad():
        out = model(X)
    y = targets(loss_name[:3].rstrip("-"), tuple(out.shape), dtype)
    return model, LOSSES[loss_name](), X, y


def dense_empirical_fisher(model: nn.Module, loss_name: str, X: torch.Tensor,
                           y: torch.Tensor) -> torch.Tensor:
    """``c Σ_n g_n g_nᵀ`` with ``g_n`` the gradient of sample n's sum-reduced loss."""
    theta, f = flat_model(model)

    def sample_loss(th: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = f(th, x[None])
        if loss_name.startswith("ce"):
            return F.cross_entropy(out, t[None], reduction="sum")
        return ((out - t[None]) ** 2).sum()

    g = torch.stack([torch.func.grad(sample_loss)(theta, X[i], y[i]) for i in range(len(X))])
    n = len(X)
    c = {"ce-mean": 1 / n, "mse-mean": 1 / y.numel()}.get(loss_name, 1.0)
    return c * g.T @ g


@pytest.mark.parametrize("name", ["mlp", "cnn", "layernorm", "batchnorm", "attention"])
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_empirical_fisher_equals_per_sample_gradient_outer_products(name, loss_name):
    model, loss, X, y = _setup(name, loss_name)
    ref = dense_empirical_fisher(model, loss_name, X, y)
    for data in ((X, y), batches(X, y, (2, 3, 1))):
        for cache in (False, True):
            Fm = fisher(model, loss, data, kind="empirical", cache=cache)
            assert Fm.shape == ref.shape and Fm.is_symmetric() and Fm.is_psd()
            torch.testing.assert_close(Fm.to_dense(), ref, rtol=1e-9, atol=1e-11)


def test_empirical_fisher_of_one_sample_is_the_outer_product_of_the_loss_gradient():
    # one sample: c = 1 for a mean cross-entropy, so F = ∇L ∇Lᵀ
    model, loss, X, y = _setup("mlp", "ce-mean")
    theta, f = flat_model(model)
    g = torch.func.grad(lambda th: F.cross_entropy(f(th, X[:1]), y[:1]))(theta)
    Fm = fisher(model, loss, (X[:1], y[:1])).to_dense()
    torch.testing.assert_close(Fm, torch.outer(g, g), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_exact_fisher_is_the_gauss_newton_matrix(loss_name):
    model, loss, X, y = _setup("mlp", loss_name)
    Fm = fisher(model, loss, batches(X, y, (4, 2)), kind="exact")
    torch.testing.assert_close(Fm.to_dense(), dense_ggn(model, loss, X, y), rtol=1e-9,
                               atol=1e-11)


@pytest.mark.parametrize("loss_name", ["ce-mean", "ce-sum", "mse-mean", "mse-sum"])
def test_mc_fisher_with_many_samples_tends_to_the_exact_fisher(loss_name):
    model, loss, X, y = _setup("mlp", loss_name)
    G = dense_ggn(model, loss, X, y)
    S = 40000
    Fm = fisher(model, loss, batches(X, y, (4, 2)), kind="mc", samples=S, seed=3).to_dense()
    # each entry is a mean of S i.i.d. terms: a few standard errors of the largest entry
    err = (Fm - G).abs().max() / G.abs().max()
    assert err < 0.05, err
    torch.testing.assert_close(Fm, Fm.T, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(Fm).min() > -1e-10


def test_mc_fisher_mean_over_seeds_tends_to_the_exact_fisher():
    model, loss, X, y = _setup("mlp", "ce-sum")
    G = dense_ggn(model, loss, X, y)
    V = torch.randn(G.shape[1], 4, dtype=torch.float64)
    seeds = 400
    mean = sum(fisher(model, loss, (X, y), kind="mc", seed=s).mm(V) for s in range(seeds))
    mean = mean / seeds
    ref = G @ V
    assert (mean - ref).abs().max() / ref.abs().max() < 0.15
    # one draw is far from it: the average is what converges
    one = fisher(model, loss, (X, y), kind="mc", seed=0).mm(V)
    assert (one - ref).abs().max() > 2 * (mean - ref).abs().max()


def test_mc_fisher_is_a_fixed_operator_for_a_seed():
    model, loss, X, y = _setup("mlp", "ce-mean")
    A = fisher(model, loss, (X, y), kind="mc", samples=3, seed=5)
    B = fisher(model, loss, (X, y), kind="mc", samples=3, seed=5, cache=True)
    C = fisher(model, loss, (X, y), kind="mc", samples=3, seed=6)
    v = torch.randn(A.shape[1], dtype=torch.float64)
    torch.testing.assert_close(A.mv(v), A.mv(v), rtol=0, atol=0)
    torch.testing.assert_close(A.mv(v), B.mv(v), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(A.mv(v), C.mv(v))
    # with samples S the matrix has rank at most N * S = 18
    assert torch.linalg.matrix_rank(A.to_dense()) <= 18


def test_mc_fisher_of_a_linear_model_with_mse_is_gaussian_noise_outer_products():
    # a linear model y = W x + b: the per-sample gradient is r ⊗ [x, 1] whatever θ is, so the
    # MC Fisher's expectation is 2 Σ (x̃ x̃ᵀ ⊗ I)
    model = nn.Linear(3, 2).double()
    X, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    Fm = fisher(model, nn.MSELoss(reduction="sum"), (X, y), kind="mc", samples=50000).to_dense()
    G = ggn(model, nn.MSELoss(reduction="sum"), (X, y)).to_dense()
    assert (Fm - G).abs().max() / G.abs().max() < 0.05


def test_fisher_refuses_a_loss_without_a_predictive_and_unknown_kinds():
    model, loss, X, y = _setup("mlp", "ce-mean")
    with pytest.raises(UnsupportedOperationError, match=r"nn\.CrossEntropyLoss"):
        fisher(model, nn.HuberLoss(), (X, y))
    with pytest.raises(InvalidOptionError, match="kind"):
        fisher(model, loss, (X, y), kind="true")
    with pytest.raises(InvalidOptionError, match="samples"):
        fisher(model, loss, (X, y), kind="mc", samples=0)


def test_ignored_targets_in_a_mean_cross_entropy_count_as_torch_counts_them():
    # torch's mean divides by the samples whose class is not ignore_index: the empirical Fisher
    # is (1/kept) Σ_kept g gᵀ and the MC Fisher tends to the Gauss–Newton matrix of that loss
    model, loss, X, _ = _setup("mlp", "ce-mean")
    y = torch.tensor([0, -100, 2, 1, -100, 0])
    theta, f = flat_model(model)
    kept = [i for i in range(6) if y[i] != -100]
    g = torch.stack([torch.func.grad(lambda th, i=i: F.cross_entropy(
        f(th, X[i:i + 1]), y[i:i + 1], reduction="sum"))(theta) for i in kept])
    Fe = fisher(model, loss, (X, y)).to_dense()
    torch.testing.assert_close(Fe, g.T @ g / len(kept), rtol=1e-9, atol=1e-11)
    G = dense_ggn(model, loss, X, y)
    Fm = fisher(model, loss, (X, y), kind="mc", samples=40000).to_dense()
    assert (Fm - G).abs().max() / G.abs().max() < 0.05


@pytest.mark.parametrize("name", ["mlp", "cnn", "layernorm", "attention"])
@pytest.mark.parametrize("loss_name", ["ce-mean", "mse-sum"])
@pytest.mark.parametrize("kind", ["empirical", "mc"])
def test_fisher_diagonal_is_exact(name, loss_name, kind):
    model, loss, X, y = _setup(name, loss_name)
    data = batches(X, y, (2, 4))
    Fm = fisher(model, loss, data, kind=kind, samples=3, seed=2)
    dense = Fm.to_dense()
    torch.testing.assert_close(Fm.diagonal(), dense.diagonal(), rtol=1e-9, atol=1e-12)
    if kind == "empirical":
        ref = dense_empirical_fisher(model, loss_name, X, y).diagonal()
        torch.testing.assert_close(Fm.diagonal(), ref, rtol=1e-9, atol=1e-12)



@given(cuts=st.sets(st.integers(1, 5), max_size=4), seed=st.integers(0, 2**16),
       cache=st.booleans())
@settings(max_examples=25, deadline=None)
def test_a_mean_loss_empirical_fisher_does_not_depend_on_the_batches(cuts, seed, cache):
    model, loss, X, y = _setup("layernorm", "ce-mean")
    edges = [0, *sorted(cuts), 6]
    sizes = tuple(b - a for a, b in itertools.pairwise(edges))
    one = fisher(model, loss, (X, y))
    split = fisher(model, loss, batches(X, y, sizes), cache=cache)
    v = torch.randn(one.shape[1], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(split.mv(v), one.mv(v), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(split.diagonal(), one.diagonal(), rtol=1e-10, atol=1e-13)
    # vᵀ F v = c Σ_n (g_nᵀ v)² ≥ 0, and it is the sum of the one-sample operators' forms / N
    per = [fisher(model, loss, (X[i:i + 1], y[i:i + 1])).mv(v) @ v for i in range(6)]
    assert all(float(q) >= -1e-14 for q in per)
    torch.testing.assert_close(one.mv(v) @ v, torch.stack(per).sum() / 6, rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_fisher_of_logits_with_positions(reduction):
    # outputs (n, C, L): a sample's loss sums over its L positions; a mean divides by N L
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 3, 2), nn.Tanh(), nn.Conv1d(3, 3, 1)).double()
    X, y = torch.randn(4, 2, 5, dtype=torch.float64), torch.randint(0, 3, (4, 4))
    loss = nn.CrossEntropyLoss(reduction=reduction)
    theta, f = flat_model(model)
    g = torch.stack([torch.func.grad(lambda th, i=i: F.cross_entropy(
        f(th, X[i:i + 1]), y[i:i + 1], reduction="sum"))(theta) for i in range(4)])
    c = 1 / 16 if reduction == "mean" else 1.0
    Fe = fisher(model, loss, batches(X, y, (3, 1)))
    torch.testing.assert_close(Fe.to_dense(), c * g.T @ g, rtol=1e-9, atol=1e-12)
    G = dense_ggn(model, loss, X, y)
    Fm = fisher(model, loss, (X, y), kind="mc", samples=40000).to_dense()
    assert (Fm - G).abs().max() / G.abs().max() < 0.05
