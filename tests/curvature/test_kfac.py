"""kfac: each Linear or Conv2d layer's block equals G ⊗ A built densely from its definition
(per-sample output gradients from torch.func or autograd, inputs and patches from the network,
every position a row), equals the Fisher's block exactly
for one sample, tends to the Gauss–Newton matrix for a linear model; solve, slogdet and the
inverse square root agree with the dense damped matrix."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from jacobite.curvature import fisher, ggn, kfac
from jacobite.errors import InvalidOptionError, UnsupportedOperationError

from ._laplace_dense import data as _data
from ._laplace_dense import layout as _layout
from ._laplace_dense import mlp as _mlp

F64 = torch.float64


def dense_kfac(model: nn.Sequential, loss_name: str, X: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
    """The definition: per layer (c Σ g gᵀ) ⊗ (1/N Σ ã ãᵀ) with g the gradient of sample n's
    sum-reduced loss in the layer's output (the per-sample bias gradient, by torch.func) and
    ã the layer's input with a 1, permuted to the parameter layout; block diagonal."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    N = len(X)

    def sample_loss(p: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor):
        out = torch.func.functional_call(model, p, (x[None],))
        if loss_name.startswith("ce"):
            return F.cross_entropy(out, t[None], reduction="sum")
        return ((out - t[None]) ** 2).sum()

    grads = [torch.func.grad(sample_loss)(params, X[n], y[n]) for n in range(N)]
    c = {"ce-mean": 1 / N, "mse-mean": 1 / y.numel()}.get(loss_name, 1.0)
    inputs = [X, torch.tanh(model[0](X)).detach()]
    blocks = []
    for idx, a in zip(("0", "2"), inputs, strict=True):
        g = torch.stack([gr[f"{idx}.bias"] for gr in grads])  # (N, d_out)
        at = torch.cat([a, torch.ones(N, 1, dtype=F64)], dim=1)
        K = torch.kron(c * g.T @ g, at.T @ at / N)
        perm = _layout(g.shape[1], a.shape[1])
        blocks.append(K[perm][:, perm])
    return torch.block_diag(*blocks)


LOSSES = {"ce-mean": nn.CrossEntropyLoss, "ce-sum": lambda: nn.CrossEntropyLoss(reduction="sum"),
          "mse-mean": nn.MSELoss, "mse-sum": lambda: nn.MSELoss(reduction="sum")}


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("split", [False, True], ids=["one-batch", "two-batches"])
def test_empirical_kfac_equals_its_dense_definition(loss_name, split):
    model = _mlp()
    X, y = _data(loss_name[:3].rstrip("-"))
    data = [(X[:3], y[:3]), (X[3:], y[3:])] if split else (X, y)
    K = kfac(model, LOSSES[loss_name](), data, kind="empirical")
    ref = dense_kfac(model, loss_name, X, y)
    assert K.is_symmetric() and K.is_psd()
    torch.testing.assert_close(K.to_dense(), ref, rtol=1e-9, atol=1e-11)
    v = torch.randn(ref.shape[0], dtype=F64)
    torch.testing.assert_close(K.mv(v), ref @ v, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(K.diagonal(), ref.diagonal(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("kind", ["empirical", "mc"])
def test_one_sample_kfac_blocks_equal_the_fisher_blocks(loss_name, kind):
    # one sample: (g gᵀ) ⊗ (ã ãᵀ) is the sample's Fisher block exactly (the same draws)
    model = _mlp()
    X, y = _data(loss_name[:3].rstrip("-"), n=1)
    loss = LOSSES[loss_name]()
    K = kfac(model, loss, (X, y), kind=kind, samples=3, seed=4).to_dense()
    Fd = fisher(model, loss, (X, y), kind=kind, samples=3, seed=4).to_dense()
    for sl in (slice(0, 25), slice(25, 43)):
        torch.testing.assert_close(K[sl, sl], Fd[sl, sl], rtol=1e-9, atol=1e-12)
    assert K[:25, 25:].abs().max() == 0


def test_mc_kfac_of_a_linear_model_with_mse_tends_to_the_gauss_newton_matrix():
    # linear model: G = (c Σ_s r rᵀ / S) → 2 c N I and the GGN is 2 c I ⊗ Σ ã ãᵀ
    torch.manual_seed(0)
    model = nn.Linear(3, 2).to(F64)
    X, y = torch.randn(6, 3, dtype=F64), torch.randn(6, 2, dtype=F64)
    loss = nn.MSELoss(reduction="sum")
    K = kfac(model, loss, (X, y), kind="mc", samples=20000).to_dense()
    G = ggn(model, loss, (X, y)).to_dense()
    assert (K - G).abs().max() / G.abs().max() < 0.05


@pytest.mark.parametrize("damping", [0.1, 1.0])
def test_solve_slogdet_and_inverse_square_root_equal_the_dense_damped_matrix(damping):
    model = _mlp()
    X, y = _data("ce")
    K = kfac(model, nn.CrossEntropyLoss(), (X, y), damping=damping, samples=2)
    D = K.to_dense()
    eye = torch.eye(D.shape[0], dtype=F64)
    und = kfac(model, nn.CrossEntropyLoss(), (X, y), samples=2).to_dense()
    torch.testing.assert_close(D, und + damping * eye, rtol=1e-10, atol=1e-12)
    b = torch.randn(D.shape[0], 2, dtype=F64)
    torch.testing.assert_close(K.solve(b), torch.linalg.solve(D, b), rtol=1e-7, atol=1e-9)
    sign, lad = K.slogdet()
    ref = torch.linalg.slogdet(D)
    assert float(sign) == 1.0
    torch.testing.assert_close(lad, ref[1], rtol=1e-9, atol=1e-9)
    R = K.inv_sqrt().to_dense()
    torch.testing.assert_close(R @ D @ R, eye, rtol=1e-7, atol=1e-7)


def test_parameter_subsets_and_frozen_biases():
    # the weight alone: A from the inputs without the 1; its block is the weight-weight part
    # of the full block, and the bias alone the bias-bias part
    model = _mlp()
    X, y = _data("ce")
    loss = nn.CrossEntropyLoss()
    full_op = kfac(model, loss, (X, y), kind="empirical")
    full = full_op.to_dense()
    K = kfac(model, loss, (X, y), ["2.weight"], kind="empirical")
    a = torch.tanh(model[0](X)).detach()
    name, A, G = K.factors[0]
    assert name == "2"
    torch.testing.assert_close(A, a.T @ a / len(X), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(G, full_op.factors[1][2], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(K.to_dense(), torch.kron(G, A), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(K.to_dense(), full[25:40, 25:40], rtol=1e-10, atol=1e-12)
    bias_only = kfac(model, loss, (X, y), ["2.bias"], kind="empirical").to_dense()
    torch.testing.assert_close(bias_only, full[40:43, 40:43], rtol=1e-10, atol=1e-12)


def test_kfac_refuses_other_layers_and_bad_options():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 3)).to(F64)
    X, y = _data("ce")
    with pytest.raises(UnsupportedOperationError, match="params="):
        kfac(model, nn.CrossEntropyLoss(), (X, y))
    K = kfac(model, nn.CrossEntropyLoss(), (X, y), ["0.weight", "0.bias", "2.weight"])
    assert K.shape == (40, 40)
    with pytest.raises(UnsupportedOperationError, match="CrossEntropyLoss"):
        kfac(model, nn.HuberLoss(), (X, y), ["2.weight"])
    with pytest.raises(InvalidOptionError, match="kind"):
        kfac(model, nn.CrossEntropyLoss(), (X, y), kind="exact")
    with pytest.raises(InvalidOptionError, match="damping"):
        kfac(model, nn.CrossEntropyLoss(), (X, y), ["2.weight"], damping=-1.0)


def _patches(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """(n, T, C_in kh kw) by explicit indexing of the padded input (no unfold)."""
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = conv.kernel_size, conv.stride, conv.dilation, \
        conv.padding
    xp = F.pad(x, (pw, pw, ph, ph))
    H = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    W = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    rows = [torch.stack([xp[:, :, oh * sh + i * dh, ow * sw + j * dw]
                         for i in range(kh) for j in range(kw)], dim=2).reshape(len(x), -1)
            for oh in range(H) for ow in range(W)]
    return torch.stack(rows, dim=1)


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(),
                         nn.Conv2d(3, 2, 2, stride=2, dilation=1), nn.Flatten(),
                         nn.Linear(8, 3)).to(F64)


@pytest.mark.parametrize("loss_name", ["ce-mean", "mse-sum"])
def test_conv_kfac_equals_its_dense_definition_over_positions(loss_name):
    model = _cnn()
    torch.manual_seed(2)
    N = 5
    X = torch.randn(N, 2, 5, 5, dtype=F64)
    y = torch.randn(N, 3, dtype=F64) if loss_name == "mse-sum" else torch.randint(0, 3, (N,))
    outs: dict[int, torch.Tensor] = {}
    hooks = [model[k].register_forward_hook(lambda m, a, o, k=k: outs.__setitem__(k, o))
             for k in (0, 2, 4)]
    out = model(X)
    for h in hooks:
        h.remove()
    total = (F.cross_entropy(out, y, reduction="sum") if loss_name == "ce-mean"
             else ((out - y) ** 2).sum())
    grads = torch.autograd.grad(total, [outs[0], outs[2], outs[4]])  # per-sample: no mixing
    c = 1 / N if loss_name == "ce-mean" else 1.0
    inputs = [X, torch.tanh(model[0](X)).detach(), model[:4](X).detach()]
    blocks = []
    for k, x, g in zip((0, 2, 4), inputs, grads, strict=True):
        layer = model[k]
        if isinstance(layer, nn.Conv2d):
            a, g2 = _patches(x, layer), g.flatten(2).transpose(1, 2)
        else:
            a, g2 = x[:, None], g[:, None]
        a = torch.cat([a, torch.ones(*a.shape[:2], 1, dtype=F64)], dim=2).reshape(-1,
                                                                                a.shape[2] + 1)
        g2 = g2.reshape(-1, g2.shape[-1])
        K = torch.kron(c * g2.T @ g2, a.T @ a / a.shape[0])
        perm = _layout(g2.shape[1], a.shape[1] - 1)
        blocks.append(K[perm][:, perm])
    ref = torch.block_diag(*blocks)
    loss = nn.CrossEntropyLoss() if loss_name == "ce-mean" else nn.MSELoss(reduction="sum")
    K = kfac(model, loss, [(X[:2], y[:2]), (X[2:], y[2:])], kind="empirical")
    torch.testing.assert_close(K.to_dense(), ref, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("kind", ["empirical", "mc"])
def test_one_sample_conv_with_one_output_position_equals_the_fisher_block(kind):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Tanh(), nn.Linear(3, 2)).to(F64)
    X, y = torch.randn(1, 2, 3, 3, dtype=F64), torch.tensor([1])
    K = kfac(model, nn.CrossEntropyLoss(), (X, y), kind=kind, samples=2, seed=1).to_dense()
    Fd = fisher(model, nn.CrossEntropyLoss(), (X, y), kind=kind, samples=2, seed=1).to_dense()
    for sl in (slice(0, 57), slice(57, 65)):
        torch.testing.assert_close(K[sl, sl], Fd[sl, sl], rtol=1e-9, atol=1e-12)


def test_conv_layers_kfac_cannot_take_are_refused_naming_params():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Flatten(), nn.Linear(2, 2)).to(F64)
    X, y = torch.randn(3, 2, 3, 3, dtype=F64), torch.randint(0, 2, (3,))
    with pytest.raises(UnsupportedOperationError, match="groups"):
        kfac(model, nn.CrossEntropyLoss(), (X, y))
    assert kfac(model, nn.CrossEntropyLoss(), (X, y), ["2.weight"]).shape == (4, 4)


def test_linear_layer_on_positions_counts_each_position_as_a_row():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 2)).to(F64)
    X, y = torch.randn(5, 2, 4, dtype=F64), torch.randint(0, 2, (5,))
    outs: dict[int, torch.Tensor] = {}
    hooks = [model[k].register_forward_hook(lambda m, a, o, k=k: outs.__setitem__(k, o))
             for k in (0, 3)]
    total = F.cross_entropy(model(X), y, reduction="sum")
    for h in hooks:
        h.remove()
    g0, g3 = torch.autograd.grad(total, [outs[0], outs[3]])
    blocks = []
    for a, g in ((X.reshape(-1, 4), g0.reshape(-1, 3)),
                 (torch.tanh(model[0](X)).detach().reshape(5, 6), g3)):
        at = torch.cat([a, torch.ones(len(a), 1, dtype=F64)], dim=1)
        K = torch.kron(g.T @ g / 5, at.T @ at / len(a))  # mean loss: c = 1/N
        perm = _layout(g.shape[1], a.shape[1])
        blocks.append(K[perm][:, perm])
    K = kfac(model, nn.CrossEntropyLoss(), (X, y), kind="empirical")
    torch.testing.assert_close(K.to_dense(), torch.block_diag(*blocks), rtol=1e-9, atol=1e-11)


@given(cuts=st.sets(st.integers(1, 6), max_size=4), damping=st.sampled_from([0.0, 0.5]))
@settings(max_examples=20, deadline=None)
def test_empirical_factors_do_not_depend_on_the_batches(cuts, damping):
    model = _mlp()
    X, y = _data("ce")
    edges = [0, *sorted(cuts), 7]
    data = [(X[a:b], y[a:b]) for a, b in itertools.pairwise(edges)]
    one = kfac(model, nn.CrossEntropyLoss(), (X, y), kind="empirical", damping=damping)
    split = kfac(model, nn.CrossEntropyLoss(), data, kind="empirical", damping=damping)
    for (n1, A1, G1), (n2, A2, G2) in zip(one.factors, split.factors, strict=True):
        assert n1 == n2
        torch.testing.assert_close(A2, A1, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(G2, G1, rtol=1e-10, atol=1e-13)


def test_float32_factors_from_many_rows_are_exactly_symmetric():
    # Gram matrices from tens of thousands of rows: the damped blocks need symmetric factors
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 4))
    X, y = torch.randn(64, 3, 32, 32) * 10, torch.randint(0, 4, (64,))
    K = kfac(model, nn.CrossEntropyLoss(), (X, y), ["0.weight", "0.bias"], damping=1e-3)
    _, A, G = K.factors[0]
    assert torch.equal(A, A.T) and torch.equal(G, G.T)
    assert K.is_symmetric() and torch.isfinite(K.slogdet()[1])
