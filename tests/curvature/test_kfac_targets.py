"""kfac with cross-entropy's ``ignore_index``, ``label_smoothing`` and probability targets: the
factors equal K-FAC's definition built densely from per-sample gradients (torch.func) of the
loss torch computes, on the samples the loss counts; the empirical Fisher, the Gauss–Newton
matrix and its diagonal, and the Hessian follow the same targets (a mean over batches is the
mean over the counted samples); laplace refuses smoothing and probability targets."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from jacobite.curvature import diagonal_estimate, fisher, ggn, ggn_diagonal, hessian, kfac, laplace
from jacobite.errors import ShapeError, UnsupportedOperationError

from ._laplace_dense import layout, mlp
from ._oracle import flat_model

F64 = torch.float64


def _sample_grads(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor,
                  smoothing: float) -> list[dict[str, torch.Tensor]]:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample_loss(p: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor):
        out = torch.func.functional_call(model, p, (x[None],))
        return F.cross_entropy(out, t[None], reduction="sum", label_smoothing=smoothing)

    return [torch.func.grad(sample_loss)(params, X[n], y[n]) for n in range(len(X))]


def dense_kfac(model: nn.Sequential, X: torch.Tensor, y: torch.Tensor, mean: bool,
               smoothing: float = 0.0) -> torch.Tensor:
    """K-FAC of a cross-entropy over the samples given: per layer
    ``(c Σ g gᵀ) ⊗ (1/N Σ ã ãᵀ)``, ``c = 1/N`` for a mean, block diagonal."""
    N = len(X)
    grads = _sample_grads(model, X, y, smoothing)
    c = 1.0 / N if mean else 1.0
    blocks = []
    for idx, a in zip(("0", "2"), [X, torch.tanh(model[0](X)).detach()], strict=True):
        g = torch.stack([gr[f"{idx}.bias"] for gr in grads])
        at = torch.cat([a, torch.ones(N, 1, dtype=F64)], dim=1)
        perm = layout(g.shape[1], a.shape[1])
        blocks.append(torch.kron(c * g.T @ g, at.T @ at / N)[perm][:, perm])
    return torch.block_diag(*blocks)


@pytest.mark.parametrize("ignore", [-100, 2], ids=["default", "class-2"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_samples_whose_target_is_ignored_count_for_nothing(ignore, reduction):
    model = mlp()
    torch.manual_seed(1)
    X = torch.randn(9, 4, dtype=F64)
    y = torch.randint(0, 2, (9,))  # classes 0 and 1: class 2 only where it is ignored
    y[[0, 1, 5]] = ignore  # the first batch loses 2 of 4 samples, the second 1 of 5
    keep = y != ignore
    loss = nn.CrossEntropyLoss(ignore_index=ignore, reduction=reduction)
    ref = dense_kfac(model, X[keep], y[keep], reduction == "mean")
    for data in ((X, y), [(X[:4], y[:4]), (X[4:], y[4:])]):
        K = kfac(model, loss, data, kind="empirical")
        torch.testing.assert_close(K.to_dense(), ref, rtol=1e-10, atol=1e-12)
        # drawn labels: A is the same (no draw enters it)
        Kmc = kfac(model, loss, data, kind="mc", samples=2)
        for (_, A, _), (_, Amc, _) in zip(K.factors, Kmc.factors, strict=True):
            torch.testing.assert_close(Amc, A, rtol=1e-12, atol=1e-14)
    with pytest.raises(ShapeError, match="ignore_index"):
        kfac(model, loss, [(X[:4], torch.full_like(y[:4], ignore)),
                           (X[4:], torch.full_like(y[4:], ignore))])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("soft", [False, True], ids=["classes", "probabilities"])
def test_label_smoothing_and_probability_targets_follow_the_loss(smoothing, soft):
    model = mlp()
    torch.manual_seed(2)
    X = torch.randn(6, 4, dtype=F64)
    # probabilities that do not sum to 1, so that the Hessian's factor Σ t shows
    y = torch.rand(6, 3, dtype=F64) * 0.6 if soft else torch.randint(0, 3, (6,))
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)
    data = [(X[:2], y[:2]), (X[2:], y[2:])]
    K = kfac(model, loss, data, kind="empirical")
    torch.testing.assert_close(K.to_dense(), dense_kfac(model, X, y, True, smoothing),
                               rtol=1e-10, atol=1e-12)
    # the empirical Fisher: (1/N) Σ g gᵀ of the per-sample gradients of torch's loss
    grads = _sample_grads(model, X, y, smoothing)
    g = torch.stack([torch.cat([gr[k].reshape(-1) for k in gr]) for gr in grads])
    torch.testing.assert_close(fisher(model, loss, data).to_dense(), g.T @ g / 6,
                               rtol=1e-10, atol=1e-12)
    # the Gauss–Newton matrix: (1/N) Σ J_nᵀ ∇²_z ℓ_n J_n with torch.func's Hessian of the loss
    theta, flat = flat_model(model)

    def f(th: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat(th, x[None])[0]

    ref = torch.zeros(len(theta), len(theta), dtype=F64)
    for n in range(6):
        J = torch.func.jacrev(f)(theta, X[n])
        H = torch.func.hessian(lambda z, n=n: F.cross_entropy(
            z[None], y[n][None], reduction="sum", label_smoothing=smoothing))(f(theta, X[n]))
        ref += J.T @ H @ J / 6
    torch.testing.assert_close(ggn(model, loss, data).to_dense(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ggn_diagonal(model, loss, data), ref.diagonal(), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("structure", ["last_layer", "kron", "diag", "full"])
def test_laplace_refuses_label_smoothing_and_probability_targets(structure):
    # neither is the categorical likelihood of class labels that the posterior is built on
    model = mlp()
    X, y = torch.randn(6, 4, dtype=F64), torch.randint(0, 3, (6,))
    with pytest.raises(UnsupportedOperationError, match=r"plain nn\.CrossEntropyLoss\(\)"):
        laplace(model, nn.CrossEntropyLoss(label_smoothing=0.1), (X, y), structure=structure)
    soft = torch.softmax(torch.randn(6, 3, dtype=F64), dim=1)
    with pytest.raises(UnsupportedOperationError, match="class indices"):
        laplace(model, nn.CrossEntropyLoss(), (X, soft), structure=structure)
    # a later batch with probabilities: refused too (by the likelihood's pass)
    with pytest.raises(UnsupportedOperationError, match="class indices"):
        laplace(model, nn.CrossEntropyLoss(), [(X[:3], y[:3]), (X[3:], soft[3:])],
                structure=structure, prior_precision=1.0)


@pytest.mark.parametrize("ignore", [-100, 2], ids=["default", "class-2"])
def test_a_mean_over_batches_with_ignored_targets_is_the_mean_over_the_counted_samples(ignore):
    # batches that lose different shares of their samples: the mean is torch's over the data
    # as one batch (the counted targets of all batches), whatever the split; a batch with every
    # target ignored counts for nothing
    model = mlp()
    torch.manual_seed(3)
    X = torch.randn(11, 4, dtype=F64)
    y = torch.randint(0, 2, (11,))
    y[[0, 1, 5, 9, 10]] = ignore
    keep = y != ignore
    loss = nn.CrossEntropyLoss(ignore_index=ignore)
    data = [(X[:4], y[:4]), (X[4:9], y[4:9]), (X[9:], y[9:])]  # the last: all ignored
    theta, f = flat_model(model)

    Xk, yk = X[keep], y[keep]
    H = torch.func.hessian(lambda th: F.cross_entropy(f(th, Xk), yk))(theta)
    J = torch.func.jacrev(f)(theta, Xk)  # (n, C, P)
    p = torch.softmax(f(theta, Xk), dim=1)
    Hz = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    G = torch.einsum("ncp,ncd,ndq->pq", J, Hz, J) / len(Xk)
    grads = _sample_grads(model, Xk, yk, 0.0)
    g = torch.stack([torch.cat([gr[k].reshape(-1) for k in gr]) for gr in grads])
    tol = {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(hessian(model, loss, data).to_dense(), H, **tol)
    torch.testing.assert_close(ggn(model, loss, data).to_dense(), G, **tol)
    torch.testing.assert_close(ggn(model, loss, data, cache=True).to_dense(), G, **tol)
    torch.testing.assert_close(ggn_diagonal(model, loss, data), G.diagonal(), **tol)
    torch.testing.assert_close(fisher(model, loss, data).to_dense(), g.T @ g / len(Xk), **tol)
    est = diagonal_estimate(model, loss, data, nprobe=400, seed=0)  # unbiased: within 5 SE
    assert ((est.value - G.diagonal()).abs() <= 5 * est.stderr + 1e-12).all()
    torch.testing.assert_close(kfac(model, loss, data, kind="empirical").to_dense(),
                               dense_kfac(model, Xk, yk, True), **tol)


def test_smoothing_with_ignored_targets_and_drawn_labels():
    # smoothing and ignore_index together: the empirical Fisher of torch's loss on the counted
    # samples; drawn labels (probability targets, smoothing): their mean is the Gauss–Newton
    model = mlp()
    torch.manual_seed(4)
    X = torch.randn(6, 4, dtype=F64)
    y = torch.tensor([0, -100, 2, 1, -100, 1])
    keep = y != -100
    loss = nn.CrossEntropyLoss(label_smoothing=0.3)
    grads = _sample_grads(model, X[keep], y[keep], 0.3)
    g = torch.stack([torch.cat([gr[k].reshape(-1) for k in gr]) for gr in grads])
    torch.testing.assert_close(fisher(model, loss, [(X[:3], y[:3]), (X[3:], y[3:])]).to_dense(),
                               g.T @ g / 4, rtol=1e-10, atol=1e-12)
    soft = torch.rand(6, 3, dtype=F64) * 0.6
    G = ggn(model, loss, (X, soft)).to_dense()
    Fm = fisher(model, loss, (X, soft), kind="mc", samples=20000).to_dense()
    assert (Fm - G).abs().max() / G.abs().max() < 0.05
    Km = kfac(model, loss, (X[:1], soft[:1]), kind="mc", samples=20000).to_dense()
    Gk = ggn(model, loss, (X[:1], soft[:1])).to_dense()
    for sl in (slice(0, 25), slice(25, 43)):  # one sample: K-FAC's blocks are the Fisher's
        assert (Km[sl, sl] - Gk[sl, sl]).abs().max() / Gk[sl, sl].abs().max() < 0.05
