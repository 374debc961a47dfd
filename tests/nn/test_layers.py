"""Layer Jacobians (diag(σ'(z)) W, the chain rule, the linearize fallback) against jacrev."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from jacobite.errors import DtypeError, ModuleStateError, ShapeError
from jacobite.nn import RepeatedBlockDiagonal, layer_jacobian, linear_layer_jacobian
from jacobite.operators import (
    Composed,
    DenseOperator,
    DiagonalOperator,
    FunctionOperator,
    ScaledIdentity,
)

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _dense(f, x: torch.Tensor) -> torch.Tensor:
    y = f(x)
    return tf.jacrev(f)(x).reshape(y.numel(), x.numel())


@pytest.mark.parametrize("act", [None, "tanh", "sigmoid", "relu", nn.GELU(), torch.tanh])
@pytest.mark.parametrize("batch", [None, 1, 3])
def test_linear_layer_jacobian(act, batch: int | None) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3).double()
    x = torch.randn((4,) if batch is None else (batch, 4), dtype=DT, generator=_gen(1))
    funcs = {None: lambda v: v, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "relu": torch.relu}
    f = funcs[act] if isinstance(act, str) or act is None else act
    J = linear_layer_jacobian(layer, x, act)
    ref = _dense(lambda v: f(layer(v)), x)
    torch.testing.assert_close(J.to_dense(), ref, rtol=1e-13, atol=1e-15)
    u = torch.randn(ref.shape[0], dtype=DT, generator=_gen(2))
    torch.testing.assert_close(J.rmv(u), ref.T @ u, rtol=1e-13, atol=1e-15)
    if act is not None:
        assert isinstance(J, Composed)
        assert isinstance(J.A, DiagonalOperator)
        assert isinstance(J.B, DenseOperator if batch is None else RepeatedBlockDiagonal)
    elif batch is None:
        assert isinstance(J, DenseOperator)


def test_linear_from_weight_and_bias() -> None:
    W = torch.randn(2, 3, dtype=DT, generator=_gen(3))
    b = torch.randn(2, dtype=DT, generator=_gen(4))
    x = torch.randn(3, dtype=DT, generator=_gen(5))
    J = linear_layer_jacobian(W, x, "sigmoid", bias=b)
    z = W @ x + b
    s = torch.sigmoid(z)
    torch.testing.assert_close(J.to_dense(), torch.diag(s * (1 - s)) @ W, rtol=1e-14, atol=0)


@pytest.mark.parametrize("batch", [None, 2])
def test_sequential_is_the_chain_rule(batch: int | None) -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid(),
                        nn.Linear(4, 3), nn.Softmax(dim=-1)).double()
    x = torch.randn((5,) if batch is None else (batch, 5), dtype=DT, generator=_gen(6))
    J = layer_jacobian(net, x)
    assert isinstance(J, Composed) and len(J.factors) == 6
    # innermost on the right: the first Linear is the last factor
    names = [type(f).__name__ for f in J.factors]
    assert names[-1] in ("DenseOperator", "RepeatedBlockDiagonal")
    assert names[0] in ("SoftmaxJacobian", "BatchedSoftmaxJacobian")
    torch.testing.assert_close(J.to_dense(), _dense(net, x), rtol=1e-12, atol=1e-15)


def test_fallback_uses_linearize() -> None:
    torch.manual_seed(2)
    norm = nn.LayerNorm(4).double()
    x = torch.randn(2, 4, dtype=DT, generator=_gen(7))
    J = layer_jacobian(norm, x)
    assert isinstance(J, FunctionOperator)
    torch.testing.assert_close(J.to_dense(), _dense(norm, x), rtol=1e-12, atol=1e-14)
    net = nn.Sequential(nn.Linear(4, 4), norm, nn.ReLU()).double()
    torch.testing.assert_close(layer_jacobian(net, x).to_dense(), _dense(net, x), rtol=1e-12,
                               atol=1e-14)


def test_identity_like_and_legacy_softmax_dim() -> None:
    x = torch.randn(3, 4, dtype=DT, generator=_gen(8))
    for m in (nn.Identity(), nn.Flatten(), nn.Dropout(0.5).eval()):
        J = layer_jacobian(m, x)
        assert isinstance(J, ScaledIdentity) and J.is_identity()
    sm = nn.Softmax()  # dim=None: torch picks dim 1 for 2-D input
    with pytest.warns(UserWarning):
        ref = _dense(sm, x)
    torch.testing.assert_close(layer_jacobian(sm, x).to_dense(), ref, rtol=0, atol=1e-15)
    assert layer_jacobian(nn.Sequential(), x).is_identity()


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 1000))
def test_repeated_block_diagonal(copies: int, m: int, n: int, seed: int) -> None:
    W = torch.randn(m, n, dtype=DT, generator=_gen(seed))
    J = RepeatedBlockDiagonal(DenseOperator(W), copies)
    ref = torch.block_diag(*([W] * copies))
    torch.testing.assert_close(J.to_dense(), ref)
    V = torch.randn(copies * n, 2, dtype=DT, generator=_gen(seed + 1))
    U = torch.randn(copies * m, 2, dtype=DT, generator=_gen(seed + 2))
    torch.testing.assert_close(J.mm(V), ref @ V)
    torch.testing.assert_close(J.rmm(U), ref.T @ U)
    torch.testing.assert_close(J.T.to_dense(), ref.T)
    if m == n:
        A = W @ W.T + torch.eye(n, dtype=DT)
        S = RepeatedBlockDiagonal(DenseOperator(A, tags=("psd",)), copies)
        big = torch.block_diag(*([A] * copies))
        assert S.is_psd()
        torch.testing.assert_close(S.slogdet()[1], torch.linalg.slogdet(big)[1])
        torch.testing.assert_close(S.solve(V), torch.linalg.solve(big, V))
        torch.testing.assert_close(S.diagonal(), big.diagonal())


def test_bad_inputs_name_the_fix() -> None:
    layer = nn.Linear(3, 2).double()
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        linear_layer_jacobian(layer, torch.zeros(4, dtype=DT))
    with pytest.raises(DtypeError, match="convert"):
        linear_layer_jacobian(layer, torch.zeros(3, dtype=torch.float32))
    with pytest.raises(DtypeError, match="layer_jacobian"):
        linear_layer_jacobian("W", torch.zeros(3))
    with pytest.raises(ShapeError, match="bias"):
        linear_layer_jacobian(torch.zeros(2, 3), torch.zeros(3), bias=torch.zeros(3))
    with pytest.raises(ModuleStateError, match="eval"):
        layer_jacobian(nn.Dropout(0.5), torch.zeros(3))
    with pytest.raises(ModuleStateError, match="eval"):
        layer_jacobian(nn.BatchNorm1d(3), torch.zeros(2, 3))
    with pytest.raises(DtypeError, match="linearize"):
        layer_jacobian(torch.tanh, torch.zeros(3))


def test_activation_subclass_falls_back_to_linearize() -> None:
    class Doubled(nn.Tanh):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(2 * x)

    x = torch.randn(3, dtype=DT, generator=_gen(9))
    J = layer_jacobian(Doubled(), x)
    assert isinstance(J, FunctionOperator)
    torch.testing.assert_close(J.to_dense(), _dense(Doubled(), x))


def test_layer_jacobian_names_a_module_that_rejects_x() -> None:
    from jacobite.errors import ShapeError
    from jacobite.nn import layer_jacobian

    with pytest.raises(ShapeError, match="module accepts") as info:
        layer_jacobian(torch.nn.Conv1d(2, 2, 1), torch.ones(3, 5, dtype=torch.float64))
    assert isinstance(info.value.__cause__, RuntimeError)
