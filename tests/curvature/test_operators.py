"""ggn, hessian and jacobian equal dense matrices built independently with torch.func, on small
models (MLP, CNN with a grouped convolution, LayerNorm, BatchNorm in eval mode, attention), for
cross-entropy and MSE with mean and sum reduction, one batch and several; every product of the
operator contract agrees with the matrix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jacobite.curvature import ggn, hessian, jacobian

from ._oracle import batches, dense_ggn, dense_hessian, dense_jacobian, make, targets

MODELS = ["mlp", "cnn", "layernorm", "batchnorm", "attention"]
LOSSES = {"ce-mean": lambda: nn.CrossEntropyLoss(), "ce-sum": lambda: nn.CrossEntropyLoss(
    reduction="sum"), "mse-mean": lambda: nn.MSELoss(), "mse-sum": lambda: nn.MSELoss(
    reduction="sum")}
TOL = {torch.float64: {"rtol": 1e-9, "atol": 1e-10}, torch.float32: {"rtol": 1e-4, "atol": 1e-5}}


def _setup(name: str, loss_name: str, dtype: torch.dtype):
    model, X = make(name, dtype)
    loss = LOSSES[loss_name]()
    with torch.no_grad():
        out = model(X)
    y = targets(loss_name[:3].rstrip("-"), tuple(out.shape), dtype)
    return model, loss, X, y


def _check_products(op, dense: torch.Tensor, tol: dict[str, float]) -> None:
    torch.manual_seed(2)
    m, n = dense.shape
    v, u = torch.randn(n, dtype=dense.dtype), torch.randn(m, dtype=dense.dtype)
    V = torch.randn(n, 3, dtype=dense.dtype)
    torch.testing.assert_close(op.mv(v), dense @ v, **tol)
    torch.testing.assert_close(op.rmv(u), dense.T @ u, **tol)
    torch.testing.assert_close(op.mm(V), dense @ V, **tol)
    torch.testing.assert_close(op.T.mv(u), dense.T @ u, **tol)
    torch.testing.assert_close(op @ v, dense @ v, **tol)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("sizes", [(6,), (2, 3, 1)], ids=["one-batch", "three-batches"])
def test_ggn_equals_the_dense_gauss_newton_matrix(name, loss_name, sizes):
    dtype = torch.float64
    model, loss, X, y = _setup(name, loss_name, dtype)
    G_ref = dense_ggn(model, loss, X, y)
    data = (X, y) if len(sizes) == 1 else batches(X, y, sizes)
    for cache in (False, True):
        G = ggn(model, loss, data, cache=cache)
        assert G.shape == G_ref.shape and G.dtype == dtype
        assert G.is_symmetric() and G.is_psd()
        dense = G.to_dense()
        torch.testing.assert_close(dense, G_ref, **TOL[dtype])
        torch.testing.assert_close(dense, dense.T, rtol=0, atol=1e-12)
        _check_products(G, G_ref, TOL[dtype])


@pytest.mark.parametrize("name", ["mlp", "cnn", "attention"])
@pytest.mark.parametrize("loss_name", ["ce-mean", "mse-sum"])
def test_ggn_in_float32(name, loss_name):
    model, loss, X, y = _setup(name, loss_name, torch.float32)
    G_ref = dense_ggn(model.double(), loss, X.double(), y.double() if y.is_floating_point()
                      else y)
    model.float()
    G = ggn(model, loss, batches(X, y, (4, 2)), cache=False)
    assert G.dtype == torch.float32
    torch.testing.assert_close(G.to_dense().double(), G_ref, **TOL[torch.float32])
    Gc = ggn(model, loss, batches(X, y, (4, 2)), cache=True)
    torch.testing.assert_close(Gc.to_dense().double(), G_ref, **TOL[torch.float32])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss_name", ["ce-mean", "ce-sum", "mse-mean"])
def test_hessian_equals_the_dense_hessian(name, loss_name):
    dtype = torch.float64
    model, loss, X, y = _setup(name, loss_name, dtype)
    H_ref = dense_hessian(model, loss, X, y)
    H = hessian(model, loss, batches(X, y, (5, 1)))
    assert H.is_symmetric() and not H.is_psd()
    torch.testing.assert_close(H.to_dense(), H_ref, **TOL[dtype])
    _check_products(H, H_ref, TOL[dtype])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_jacobian_equals_jacrev_of_the_stacked_outputs(name, dtype):
    model, X = make(name, dtype)
    J_ref = dense_jacobian(model, X)
    for data in (X, (X, None), [X[:4], X[4:]], [(X[:1], 0), (X[1:], 0)]):
        J = jacobian(model, data)
        assert J.shape == J_ref.shape and J.dtype == dtype
        torch.testing.assert_close(J.to_dense(), J_ref, **TOL[dtype])
    _check_products(jacobian(model, [X[:4], X[4:]]), J_ref, TOL[dtype])


def test_ggn_is_the_jacobian_composed_with_the_loss_hessian():
    # G = Jᵀ H J with the Jacobian operator and, for a sum of MSE terms, H = 2 I
    model, X = make("layernorm", torch.float64)
    y = torch.randn(6, 3, dtype=torch.float64)
    G = ggn(model, nn.MSELoss(reduction="sum"), (X, y))
    J = jacobian(model, X)
    torch.testing.assert_close(G.to_dense(), 2 * (J.T @ J).to_dense(), rtol=1e-10, atol=1e-12)


def test_a_subset_of_parameters_and_frozen_ones():
    model, X = make("mlp", torch.float64)
    y = torch.randint(0, 3, (6,))
    loss = nn.CrossEntropyLoss()
    names = ["2.weight", "0.bias"]  # given out of order: columns follow named_parameters
    order = ["0.bias", "2.weight"]
    G = ggn(model, loss, (X, y), params=names)
    torch.testing.assert_close(G.to_dense(), dense_ggn(model, loss, X, y, order),
                               rtol=1e-10, atol=1e-12)
    model[0].weight.requires_grad_(False)
    H = hessian(model, loss, (X, y))
    keep = [k for k, p in model.named_parameters() if p.requires_grad]
    assert H.shape[0] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    torch.testing.assert_close(H.to_dense(), dense_hessian(model, loss, X, y, keep),
                               rtol=1e-10, atol=1e-12)


def test_any_other_loss_by_automatic_differentiation():
    # a plain callable: batch losses add up; the loss Hessian comes from torch.func
    model, X = make("mlp", torch.float64)
    y = torch.rand(6, 3, dtype=torch.float64)

    def loss(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (torch.nn.functional.softplus(out - t) ** 2).sum()

    G = ggn(model, loss, batches(X, y, (3, 3)), cache=True)
    assert G.is_symmetric() and not G.is_psd()
    torch.testing.assert_close(G.to_dense(), dense_ggn(model, loss, X, y),
                               rtol=1e-10, atol=1e-12)
    # a loss module without a closed form, mean reduction: the mean over the dataset
    huber = nn.HuberLoss(delta=0.3)
    G = ggn(model, huber, batches(X, y, (3, 3)))
    torch.testing.assert_close(G.to_dense(), dense_ggn(model, huber, X, y),
                               rtol=1e-10, atol=1e-12)
    # huber_loss has no forward-over-reverse derivative: the Hessian goes reverse over reverse
    H = hessian(model, huber, batches(X, y, (3, 3)))
    torch.testing.assert_close(H.to_dense(), dense_hessian(model, huber, X, y),
                               rtol=1e-10, atol=1e-12)


def test_cross_entropy_with_probability_targets_and_ignored_samples():
    model, X = make("mlp", torch.float64)
    t = torch.softmax(torch.randn(6, 3, dtype=torch.float64), dim=1)
    for loss in (nn.CrossEntropyLoss(label_smoothing=0.1), nn.CrossEntropyLoss(reduction="sum")):
        torch.testing.assert_close(ggn(model, loss, (X, t)).to_dense(),
                                   dense_ggn(model, loss, X, t), rtol=1e-10, atol=1e-12)
    y = torch.tensor([0, 1, -100, 2, 1, -100])  # ignored samples count for nothing
    loss = nn.CrossEntropyLoss(reduction="sum")
    torch.testing.assert_close(ggn(model, loss, (X, y)).to_dense(),
                               dense_ggn(model, loss, X, y), rtol=1e-10, atol=1e-12)


def test_functional_losses_are_means():
    model, X = make("mlp", torch.float64)
    y = torch.randint(0, 3, (6,))
    G = ggn(model, torch.nn.functional.cross_entropy, batches(X, y, (2, 4)))
    torch.testing.assert_close(G.to_dense(), dense_ggn(model, nn.CrossEntropyLoss(), X, y),
                               rtol=1e-10, atol=1e-12)


def test_the_model_is_left_unchanged():
    model, X = make("batchnorm", torch.float64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    y = torch.randint(0, 3, (6,))
    ggn(model, nn.CrossEntropyLoss(), (X, y), cache=True).to_dense()
    hessian(model, nn.CrossEntropyLoss(), (X, y)).mv(torch.ones(sum(
        p.numel() for p in model.parameters()), dtype=torch.float64))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("params", [None, ["0.weight"], ["0.weight", "2.bias"]])
def test_first_layer_weight_without_its_bias_or_with_none(params):
    # the data enters a Linear whose weight carries the tangent and whose bias may not
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.Tanh(), nn.Linear(5, 3)).double()
    if params is not None:
        model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    X, y = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    loss = nn.CrossEntropyLoss()
    names = params or [k for k, _ in model.named_parameters()]
    ref = dense_ggn(model, loss, X, y, names)
    torch.testing.assert_close(ggn(model, loss, (X, y), params=params).to_dense(), ref,
                               rtol=1e-10, atol=1e-12)


class _Functional(nn.Module):
    """Layers called through torch.nn.functional with keyword arguments, the data entering a
    1-D convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 1, 3))
        self.b = nn.Parameter(torch.randn(2))
        self.v = nn.Parameter(torch.randn(3, 2 * 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.conv1d(x, self.w, bias=self.b, padding=1)
        return torch.nn.functional.linear(torch.tanh(h).flatten(1), self.v, bias=None)


@pytest.mark.parametrize("params", [None, ["w"], ["b", "v"]])
def test_functional_layers_with_keywords(params):
    torch.manual_seed(0)
    model = _Functional().double()
    X, y = torch.randn(4, 1, 5, dtype=torch.float64), torch.randint(0, 3, (4,))
    loss = nn.CrossEntropyLoss(reduction="sum")
    names = params or ["w", "b", "v"]
    torch.testing.assert_close(ggn(model, loss, (X, y), params=params).to_dense(),
                               dense_ggn(model, loss, X, y, names), rtol=1e-10, atol=1e-12)
