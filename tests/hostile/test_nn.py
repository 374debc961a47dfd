"""Hostile values for jacobite.nn: softmax Jacobians, activations, losses, layer Jacobians,
backprop and the Jacobian penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import jacrev

import jacobite.nn as jnn
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    ModuleStateError,
    NonFiniteInputError,
    ShapeError,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64
Z = torch.tensor([2.5, 1.0, 3.0], dtype=F64)
NONFINITE = [float("nan"), float("inf"), float("-inf")]


def softmax_oracle(z: torch.Tensor) -> torch.Tensor:
    return jacrev(lambda v: torch.softmax(v, -1))(z)


# ---- softmax Jacobian --------------------------------------------------------------------------

@pytest.mark.parametrize("z", [
    [1e300, -1e300, 0.0], [1e300, 1e300], [-1e300, -1e300, -1e300], [5e-324, 0.0, -5e-324],
    [700.0, 0.0], [-745.0, 0.0, 745.0], [3.0],
], ids=["huge-spread", "huge-tie", "all-very-negative", "subnormal", "exp-overflow",
        "exp-underflow", "one-class"])
def test_softmax_jacobian_at_extreme_logits_matches_jacrev(z):
    zt = torch.tensor(z, dtype=F64)
    with within():
        J = jnn.softmax_jacobian(zt).to_dense()
    assert_close(J, softmax_oracle(zt), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("bad", NONFINITE)
@pytest.mark.parametrize("call", [
    lambda z: jnn.softmax_jacobian(z),
    lambda z: jnn.softmax_vjp(z, torch.ones_like(z)),
    lambda z: jnn.softmax_jvp(z, torch.ones_like(z)),
    lambda z: jnn.activation_derivative("tanh", z),
    lambda z: jnn.activation_jacobian("gelu", z),
    lambda z: jnn.cross_entropy_gradient(z, 0),
    lambda z: jnn.mse_gradient(z, torch.zeros_like(z)),
    lambda z: jnn.softmax_example(z),
], ids=["softmax_jacobian", "vjp", "jvp", "activation_derivative", "activation_jacobian",
        "cross_entropy_gradient", "mse_gradient", "softmax_example"])
def test_nonfinite_values_are_refused_naming_nan_to_num(call, bad):
    with refuses(NonFiniteInputError, "nan_to_num"):
        call(torch.tensor([1.0, bad, 0.5], dtype=F64))


def test_nonfinite_target_of_mse_is_refused():
    with refuses(NonFiniteInputError, "nan_to_num(target)"):
        jnn.mse_gradient(Z, torch.tensor([0.0, float("nan"), 0.0], dtype=F64))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
@pytest.mark.parametrize("call", [
    lambda z: jnn.softmax_jacobian(z),
    lambda z: jnn.activation_derivative("sigmoid", z),
    lambda z: jnn.cross_entropy_gradient(z, 0),
], ids=["softmax_jacobian", "activation_derivative", "cross_entropy_gradient"])
def test_non_floating_dtypes_are_refused_naming_the_conversion(call, dtype):
    with refuses(DtypeError, "to(torch.float64)"):
        call(torch.ones(3, dtype=dtype))


def test_zero_dim_logits_are_refused_naming_the_shape():
    with refuses(ShapeError, "shape (K,)"):
        jnn.softmax_jacobian(torch.tensor(1.0, dtype=F64))


def test_empty_logits_give_an_empty_operator():
    with within():
        J = jnn.softmax_jacobian(torch.zeros(0, dtype=F64))
    assert J.shape == (0, 0) and J.to_dense().shape == (0, 0)


@pytest.mark.parametrize("z", [[1.0, 2.0], np.array([1.0, 2.0]), (1.0, 2.0)],
                         ids=["list", "numpy", "tuple"])
def test_non_tensor_logits_are_taken_as_float64(z):
    with within():
        J = jnn.softmax_jacobian(z)
    assert J.dtype == F64
    assert_close(J.to_dense(), softmax_oracle(torch.tensor([1.0, 2.0], dtype=F64)))


@pytest.mark.parametrize("make", [
    lambda: torch.arange(6, dtype=F64).reshape(2, 3).t() / 3,
    lambda: torch.tensor([0.5], dtype=F64).expand(4),
    lambda: torch.arange(12, dtype=F64)[::4] / 5,
], ids=["transposed", "expanded", "strided"])
def test_softmax_vjp_of_non_contiguous_views_matches_autograd(make):
    z = make()
    g = torch.linspace(-1, 1, z.numel(), dtype=F64).reshape(z.shape)
    with within():
        got = jnn.softmax_vjp(z, g)
    zc = z.contiguous().requires_grad_()
    (want,) = torch.autograd.grad(torch.softmax(zc, -1), zc, g)
    assert_close(got, want)


def test_softmax_jacobian_of_a_requires_grad_input_is_differentiable():
    z = Z.clone().requires_grad_()
    with within():
        J = jnn.softmax_jacobian(z).to_dense()
        (g,) = torch.autograd.grad(J.trace(), z)
    want = jacrev(lambda v: softmax_oracle(v).trace())(Z)
    assert_close(g, want)


def test_softmax_jacobian_of_a_huge_vector_stays_lazy():
    z = torch.linspace(-3, 3, 300_000, dtype=F64)
    v = torch.ones_like(z)
    with within(5.0):
        J = jnn.softmax_jacobian(z)
        y = J.mv(v)
    assert_close(y, torch.zeros_like(z), atol=1e-15)  # rows of diag(σ) − σσᵀ sum to zero
    with refuses(JacobianTooLarge, "mv", seconds=3.0):
        J.to_dense()


@pytest.mark.parametrize("v", [
    torch.tensor([1e300, 0.0, -1e300], dtype=F64), torch.tensor([5e-324, 0.0, 0.0], dtype=F64),
    torch.zeros(3, dtype=F64),
], ids=["huge", "subnormal", "zero"])
def test_softmax_jvp_with_extreme_tangents_matches_the_dense_product(v):
    with within():
        got = jnn.softmax_jvp(Z, v)
    assert_close(got, softmax_oracle(Z) @ v, rtol=1e-12, atol=1e-323)


def test_softmax_vjp_with_a_nan_cotangent_is_nan():
    got = jnn.softmax_vjp(Z, torch.tensor([1.0, float("nan"), 0.0], dtype=F64))
    assert bool(torch.isnan(got).all())


# ---- activations --------------------------------------------------------------------------------

EXTREME = torch.tensor([1e300, -1e300, 0.0, 5e-324, -5e-324, 30.0, -30.0], dtype=F64)
TORCH_ACT = {
    "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": F.gelu,
    "softplus": F.softplus, "elu": F.elu, "mish": F.mish, "silu": F.silu, "selu": F.selu,
    "logsigmoid": F.logsigmoid, "softsign": F.softsign, "celu": F.celu,
    "hardtanh": F.hardtanh, "leaky_relu": F.leaky_relu,
}


@pytest.mark.parametrize("name", sorted(TORCH_ACT))
def test_activation_derivatives_at_extreme_points_match_autograd(name):
    z = EXTREME.clone().requires_grad_()
    (want,) = torch.autograd.grad(TORCH_ACT[name](z).sum(), z)
    with within():
        got = jnn.activation_derivative(name, EXTREME)
    finite = torch.isfinite(want)
    assert bool(finite[2:].all())  # the oracle itself is finite away from ±1e300
    assert_close(got[finite], want[finite], rtol=1e-12, atol=1e-300)


def test_hardsigmoid_derivative_is_exactly_one_sixth_inside():
    # the analytic oracle: torch's own float64 backward rounds 1/6 through float32
    with within():
        got = jnn.activation_derivative("hardsigmoid", EXTREME)
    assert_close(got, [0.0, 0.0, 1 / 6, 1 / 6, 1 / 6, 0.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 4e-3), (torch.bfloat16, 3e-2),
                                            (torch.float32, 1e-6)])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "softplus", "silu"])
def test_activation_derivatives_keep_low_precision_dtypes(name, dtype, tol):
    z = torch.linspace(-3, 3, 7, dtype=dtype)
    with within():
        got = jnn.activation_derivative(name, z)
    assert got.dtype == dtype
    zz = z.double().requires_grad_()
    (want,) = torch.autograd.grad(TORCH_ACT[name](zz).sum(), zz)
    assert_close(got, want, rtol=tol, atol=tol)


def test_empty_activation_input_gives_an_empty_derivative():
    with within():
        d = jnn.activation_derivative("tanh", torch.zeros(0, dtype=F64))
    assert d.shape == (0,)


def test_unknown_activation_is_refused_listing_the_known_ones():
    with refuses(InvalidOptionError, "relu", "tanh"):
        jnn.activation_derivative("swoosh", Z)


# ---- losses -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [0, 2, torch.tensor([0.2, 0.3, 0.5], dtype=F64),
                                    torch.tensor([0.2, 0.3, 0.9], dtype=F64)],
                         ids=["class-0", "class-2", "probabilities", "unnormalised"])
@pytest.mark.parametrize("z", [Z, torch.tensor([1e300, 0.0, -1e300], dtype=F64),
                               torch.tensor([-1e4, -1e4, -1e4], dtype=F64)],
                         ids=["plain", "huge", "very-negative"])
def test_cross_entropy_gradient_matches_autograd_of_torch_cross_entropy(z, target):
    zz = z.clone().requires_grad_()
    t = torch.tensor(target) if isinstance(target, int) else target
    (want,) = torch.autograd.grad(F.cross_entropy(zz, t, reduction="sum"), zz)
    with within():
        got = jnn.cross_entropy_gradient(z, target)
    assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_cross_entropy_loss_at_huge_logits_is_finite_and_exact():
    z = torch.tensor([1e300, 0.0, -1e300], dtype=F64)
    with within():
        loss = jnn.cross_entropy_loss(z, 2)
    assert_close(loss, 2e300, rtol=1e-15)  # logsumexp(z) − z₂ = 1e300 + 1e300


@pytest.mark.parametrize("target", [3, -1, 100])
def test_class_index_out_of_range_is_refused_naming_the_range(target):
    with refuses(InvalidOptionError, "use indices 0 to 2"):
        jnn.cross_entropy_gradient(Z, target)


@pytest.mark.parametrize("z", [torch.zeros(0, dtype=F64), torch.zeros(3, 0, dtype=F64)],
                         ids=["vector", "batch"])
def test_logits_without_classes_are_refused(z):
    with refuses(ShapeError, "at least one logit"):
        jnn.cross_entropy_gradient(z, 0 if z.ndim == 1 else torch.zeros(3, dtype=torch.long))


def test_float_class_index_is_refused_naming_the_accepted_kinds():
    with refuses(DtypeError, "class index"):
        jnn.cross_entropy_gradient(Z, 0.5)


def test_mse_gradient_shape_mismatch_is_refused():
    with refuses(ShapeError, "they must match"):
        jnn.mse_gradient(Z, torch.ones(2, dtype=F64))


def test_mse_gradient_at_huge_values_matches_autograd():
    out = torch.tensor([1e150, -1e150, 0.0], dtype=F64)
    tgt = torch.tensor([0.0, 0.0, 5e-324], dtype=F64)
    oo = out.clone().requires_grad_()
    (want,) = torch.autograd.grad(F.mse_loss(oo, tgt), oo)
    with within():
        got = jnn.mse_gradient(out, tgt)
    assert_close(got, want, rtol=1e-14, atol=1e-323)


# ---- layers, backprop, penalty ------------------------------------------------------------------

LIN = torch.nn.Linear(3, 2).double()


@pytest.mark.parametrize("x", [
    torch.tensor([1e150, -1e150, 0.0], dtype=F64), torch.tensor([5e-324, 0.0, 0.0], dtype=F64),
    torch.arange(6, dtype=F64).reshape(3, 2).t(),
], ids=["huge", "subnormal", "transposed-batch"])
@pytest.mark.parametrize("act", ["tanh", "relu", "identity"])
def test_linear_layer_jacobian_matches_jacrev(x, act):
    f = {"tanh": torch.tanh, "relu": F.relu, "identity": lambda t: t}[act]
    with within():
        J = jnn.linear_layer_jacobian(LIN, x, activation=act).to_dense()
    want = jacrev(lambda v: f(LIN(v)))(x)
    if x.ndim == 2:  # the batch: a block-diagonal (B·m, B·n) matrix
        want = torch.block_diag(*[want[b, :, b, :] for b in range(x.shape[0])])
    assert_close(J, want, rtol=1e-12, atol=1e-300)


def test_linear_layer_input_of_the_wrong_width_is_refused():
    with refuses(ShapeError, "pass x of shape (3,)"):
        jnn.linear_layer_jacobian(LIN, torch.ones(4, dtype=F64))


def test_linear_layer_dtype_mismatch_is_refused_naming_the_conversion():
    with refuses(DtypeError, "x.to(torch.float64)"):
        jnn.linear_layer_jacobian(LIN, torch.ones(3))


@pytest.mark.parametrize("module", [torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5)],
                         ids=["batchnorm", "dropout"])
def test_layer_jacobian_of_a_training_mode_module_is_refused_naming_eval(module):
    module = module.double().train()
    with refuses(ModuleStateError, "eval()"):
        jnn.layer_jacobian(module, torch.ones(2, 3, dtype=F64))


def test_layer_jacobian_of_an_unknown_layer_matches_jacrev():
    conv = torch.nn.Conv1d(1, 1, 2).double()
    x = torch.tensor([[0.5, -1.0, 2.0, 0.25]], dtype=F64)
    with within():
        J = jnn.layer_jacobian(conv, x).to_dense()
    assert_close(J, jacrev(conv)(x).reshape(3, 4))


def test_backprop_of_a_training_batchnorm_is_refused():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)).double().train()
    with refuses(ModuleStateError, "eval()"):
        jnn.backprop(net, torch.ones(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64))


def test_backprop_nonfinite_input_is_refused():
    net = torch.nn.Sequential(LIN)
    with refuses(NonFiniteInputError, "nan_to_num(x)"):
        jnn.backprop(net, torch.tensor([1.0, float("nan"), 0.0], dtype=F64), torch.zeros(2,
                     dtype=F64))


@pytest.mark.parametrize("x", [torch.tensor([1e100, -1e100, 0.0], dtype=F64),
                               torch.tensor([5e-324, 0.0, -5e-324], dtype=F64)],
                         ids=["huge", "subnormal"])
def test_backprop_at_extreme_inputs_matches_autograd(x):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 2)).double()
    target = torch.zeros(2, dtype=F64)
    with within():
        res = jnn.backprop(net, x, target)
    xx = x.clone().requires_grad_()
    params = list(net.parameters())
    grads = torch.autograd.grad(F.mse_loss(net(xx), target), [xx, *params])
    assert_close(res.gradients["input"], grads[0], rtol=1e-12, atol=1e-300)
    for (name, _), g in zip(net.named_parameters(), grads[1:], strict=True):
        assert_close(res.gradients[name], g, rtol=1e-12, atol=1e-300)


def test_jacobian_penalty_exact_matches_jacrev():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh()).double()
    x = torch.tensor([[1e-300, 0.0, 2.0], [0.5, -0.5, 0.0]], dtype=F64)
    with within():
        pen = jnn.jacobian_penalty(net, x, nproj=-1)
    J = torch.stack([jacrev(net)(xb) for xb in x])
    assert_close(pen, 0.5 * (J ** 2).sum() / 2, rtol=1e-12)


def test_jacobian_penalty_empty_batch_is_refused_naming_unsqueeze():
    with refuses(ShapeError, "unsqueeze(0)"):
        jnn.jacobian_penalty(torch.nn.Linear(3, 2).double(), torch.zeros(0, 3, dtype=F64))


def test_repeated_block_diagonal_too_large_to_densify_is_refused():
    from jacobite.operators import DenseOperator
    op = jnn.RepeatedBlockDiagonal(DenseOperator(torch.eye(2, dtype=F64)), 10**9)
    with refuses(JacobianTooLarge, "mv", seconds=3.0):
        op.to_dense()
    assert op.shape == (2 * 10**9, 2 * 10**9)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 8e-3), (torch.bfloat16, 6e-2)])
def test_softmax_jacobian_of_half_precision_logits_answers_in_their_dtype(dtype, tol):
    z = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=dtype)
    with within():
        op = jnn.softmax_jacobian(z)
        dense = op.to_dense()
        sign, lad = op.slogdet()
    want = jacrev(lambda t: torch.softmax(t, 0))(z.double())
    assert dense.dtype == dtype and lad.dtype == dtype
    assert_close(dense, want, rtol=tol, atol=tol)
    assert float(sign) == 0 and float(lad) == -np.inf  # rows of diag(σ) − σσᵀ sum to zero
