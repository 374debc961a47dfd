"""ggn_diagonal equals the diagonal of the dense Gauss–Newton matrix built with torch.func, on
every small model (including LayerNorm, BatchNorm in eval mode, a grouped convolution and
attention), for cross-entropy and MSE, whatever the chunking of the samples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jacobite.config import memory_budget
from jacobite.curvature import ggn, ggn_diagonal
from jacobite.errors import ShapeError, UnsupportedOperationError

from ._oracle import batches, dense_ggn, make, targets

LOSSES = {"ce-mean": lambda: nn.CrossEntropyLoss(), "ce-sum": lambda: nn.CrossEntropyLoss(
    reduction="sum"), "mse-mean": lambda: nn.MSELoss(), "mse-sum": lambda: nn.MSELoss(
    reduction="sum")}


@pytest.mark.parametrize("name", ["mlp", "cnn", "layernorm", "batchnorm", "attention"])
@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_diagonal_equals_the_dense_diagonal(name, loss_name):
    model, X = make(name, torch.float64)
    loss = LOSSES[loss_name]()
    with torch.no_grad():
        out = model(X)
    y = targets(loss_name[:3].rstrip("-"), tuple(out.shape), torch.float64)
    ref = dense_ggn(model, loss, X, y).diagonal()
    d = ggn_diagonal(model, loss, batches(X, y, (4, 2)))
    torch.testing.assert_close(d, ref, rtol=1e-9, atol=1e-12)
    with memory_budget(1):  # one sample per chunk
        torch.testing.assert_close(ggn_diagonal(model, loss, (X, y)), ref, rtol=1e-9,
                                   atol=1e-12)


def test_diagonal_in_float32_with_probability_targets_and_ignored_samples():
    model, X = make("layernorm", torch.float32)
    t = torch.softmax(torch.randn(6, 3), dim=1)
    loss = nn.CrossEntropyLoss(label_smoothing=0.2)
    ref = dense_ggn(model.double(), loss, X.double(), t.double()).diagonal()
    model.float()
    d = ggn_diagonal(model, loss, (X, t))
    assert d.dtype == torch.float32
    torch.testing.assert_close(d.double(), ref, rtol=1e-4, atol=1e-6)
    y = torch.tensor([0, -100, 2, 1, -100, 0])
    loss = nn.CrossEntropyLoss(reduction="sum")
    ref = dense_ggn(model.double(), loss, X.double(), y).diagonal()
    torch.testing.assert_close(ggn_diagonal(model.double(), loss, (X.double(), y)), ref,
                               rtol=1e-9, atol=1e-12)


def test_diagonal_refuses_what_it_cannot_do():
    model, X = make("mlp", torch.float64)
    with pytest.raises(UnsupportedOperationError, match=r"ggn\(\.\.\.\)\.diagonal\(\)"):
        ggn_diagonal(model, nn.HuberLoss(), (X, torch.zeros(6, 3, dtype=torch.float64)))
    seq = nn.Sequential(nn.Conv1d(1, 3, 1)).double()  # outputs (n, C, L)
    Xs, ys = torch.randn(4, 1, 5, dtype=torch.float64), torch.randint(0, 3, (4, 5))
    with pytest.raises(ShapeError, match=r"\(n, C\)"):
        ggn_diagonal(seq, nn.CrossEntropyLoss(), (Xs, ys))


class _Twice(nn.Module):
    """A Linear called twice and one whose weight another Linear shares: the outer-product
    shortcut does not hold there, so those parameters take the per-sample route."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3)
        self.c.weight = self.b.weight
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.a(torch.tanh(self.a(x))))
        return self.head(torch.tanh(self.c(torch.tanh(self.b(h)))))


def test_layers_called_twice_or_sharing_weights():
    torch.manual_seed(0)
    model = _Twice().double()
    X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
    loss = nn.CrossEntropyLoss()
    ref = dense_ggn(model, loss, X, y).diagonal()
    torch.testing.assert_close(ggn_diagonal(model, loss, (X, y)), ref, rtol=1e-9, atol=1e-12)
    only = ["b.weight", "head.bias"]
    ref = dense_ggn(model, loss, X, y, only).diagonal()
    torch.testing.assert_close(ggn_diagonal(model, loss, (X, y), params=only), ref, rtol=1e-9,
                               atol=1e-12)


def test_the_ggn_operators_diagonal_is_exact():
    model, X = make("layernorm", torch.float64)
    y = torch.randint(0, 3, (6,))
    targets_mse = torch.rand(6, 3, dtype=torch.float64)
    for loss, t in ((nn.CrossEntropyLoss(), y), (nn.HuberLoss(), targets_mse)):
        G = ggn(model, loss, batches(X, t, (2, 4)), params=["1.weight", "3.weight"])
        ref = dense_ggn(model, loss, X, t, ["1.weight", "3.weight"]).diagonal()
        torch.testing.assert_close(G.diagonal(), ref, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(G.trace(), ref.sum(), rtol=1e-9, atol=1e-12)


def test_layer_shortcuts_with_strides_dilations_and_subsets():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2),
                          nn.Tanh(), nn.Conv2d(3, 2, 2, bias=False), nn.Flatten(),
                          nn.LayerNorm(2), nn.Linear(2, 3)).double()
    X, y = torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (5,))
    with torch.no_grad():
        assert model(X).shape == (5, 3)
    loss = nn.CrossEntropyLoss(reduction="sum")
    for names in (None, ["0.weight", "4.bias"], ["2.weight", "4.weight", "5.bias"]):
        every = names or [k for k, _ in model.named_parameters()]
        ref = dense_ggn(model, loss, X, y, every).diagonal()
        torch.testing.assert_close(ggn_diagonal(model, loss, (X, y), params=names), ref,
                                   rtol=1e-9, atol=1e-12)
