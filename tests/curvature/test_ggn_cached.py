"""The cached Gauss–Newton product: a traced JVP that takes the tangent as views of the vector
(no copy per product), the sum over batches started at the first batch's vector, the scale of
a mean applied on the output side. Checked against dense matrices built with torch.func, on
parameters of any memory layout, columns of any stride, and any split of the data."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from jacobite.curvature import fisher, ggn
from jacobite.curvature._ggn import _Linearized
from jacobite.curvature._setup import Params

from ._oracle import batches, dense_ggn, make, targets


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


class _Transposed(nn.Module):
    """A weight stored transposed (not contiguous) beside an ordinary layer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 4, dtype=torch.float64).t())  # (4, 3), strided
        self.head = nn.Linear(3, 3, dtype=torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(x @ self.w))


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_parameter_stored_transposed_and_strided_columns(cache: bool, reduction: str) -> None:
    torch.manual_seed(0)
    model = _Transposed()
    assert not model.w.is_contiguous()
    X = torch.randn(7, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (7,))
    loss = nn.CrossEntropyLoss(reduction=reduction)
    G_ref = dense_ggn(model, loss, X, y)
    G = ggn(model, loss, batches(X, y, (3, 4)), cache=cache)
    P = G.shape[0]
    v = torch.randn(P, dtype=torch.float64)
    W = torch.randn(3, P, dtype=torch.float64).T  # columns of stride 3
    _close(G.mv(v), G_ref @ v)
    _close(G.mm(W), G_ref @ W)
    _close(G.mv(W[:, 1]), G_ref @ W[:, 1])


def test_the_traced_jvp_copies_no_tangent() -> None:
    model, X = make("mlp", torch.float64)
    ps = Params.of(model, None)
    lin = _Linearized(model, ps, X)
    ops = {str(n.target) for n in lin._jvp.graph.nodes if n.op == "call_function"}
    assert not any("copy" in op or "new_zeros" in op for op in ops), ops
    v = torch.randn(ps.size, dtype=torch.float64)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(th: torch.Tensor) -> torch.Tensor:
        parts = torch.split(th, [p.numel() for p in ps.values])
        p = {k: t.view(q.shape) for k, t, q in zip(ps.names, parts, ps.values, strict=True)}
        return torch.func.functional_call(model, p, (X,))

    _close(lin.jvp(v), torch.func.jvp(f, (theta,), (v,))[1])


@pytest.mark.parametrize("op", ["ggn", "fisher"])
@pytest.mark.parametrize("cache", [False, True])
def test_products_leave_their_vector_alone_and_repeat(op: str, cache: bool) -> None:
    model, X = make("mlp", torch.float64)
    y = targets("ce", (6, 3), torch.float64)
    loss = nn.CrossEntropyLoss()
    data = batches(X, y, (2, 1, 3))
    A = ggn(model, loss, data, cache=cache) if op == "ggn" else \
        fisher(model, loss, data, cache=cache)
    v = torch.randn(A.shape[0], dtype=torch.float64)
    held = v.clone()
    first = A.mv(v)
    second = A.mv(v)
    assert torch.equal(v, held)
    assert torch.equal(first, second) and first.data_ptr() != second.data_ptr()


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 5), min_size=1, max_size=6).filter(lambda c: sum(c) <= 12),
       reduction=st.sampled_from(["mean", "sum"]))
def test_any_split_of_the_data_gives_the_gauss_newton_matrix_of_all(cuts: list[int],
                                                                    reduction: str) -> None:
    model, X = make("mlp", torch.float64)
    X = torch.cat([X, X.flip(0)])[: sum(cuts)]
    y = targets("ce", (len(X), 3), torch.float64)
    loss = nn.CrossEntropyLoss(reduction=reduction)
    G_ref = dense_ggn(model, loss, X, y)
    G = ggn(model, loss, batches(X, y, tuple(cuts)), cache=True)
    v = torch.randn(G.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    _close(G.mv(v), G_ref @ v)


@pytest.mark.parametrize("cache", [False, True])
def test_a_product_records_no_graph_even_of_a_vector_that_requires_grad(cache: bool) -> None:
    model, X = make("mlp", torch.float64)
    y = targets("ce", (6, 3), torch.float64)
    loss = nn.CrossEntropyLoss()
    G = ggn(model, loss, (X, y), cache=cache)
    v = torch.randn(G.shape[0], dtype=torch.float64, requires_grad=True)
    Gv = G.mv(v)
    assert not Gv.requires_grad and Gv.grad_fn is None
    _close(Gv, dense_ggn(model, loss, X, y) @ v.detach())
