"""Hostile values for the dense entry points: jacobian, hessian, jvp/vjp/hvp, batch_jacobian,
linearize, module_jacobian, jacobian_plan and check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import hessian as func_hessian
from torch.func import jacfwd, jacrev, vmap

import jacobite
from jacobite.errors import (
    ArgnumsError,
    DtypeError,
    JacobianTooLarge,
    ModuleStateError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64
X = torch.tensor([0.3, -0.2, 0.5], dtype=F64)


def f_mix(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([v[0] ** 2 * v[1], torch.sin(v).sum(), v.prod()])


NONFINITE = [float("nan"), float("inf"), float("-inf")]


# ---- NaN / Inf --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", NONFINITE)
@pytest.mark.parametrize("call", [
    lambda x: jacobite.jacobian(torch.sin, x),
    lambda x: jacobite.jacobian(torch.sin, x, mode="forward"),
    lambda x: jacobite.hessian(lambda v: (v ** 2).sum(), x),
    lambda x: jacobite.value_and_jacobian(torch.sin, x),
    lambda x: jacobite.check(torch.sin, x),
], ids=["jacobian", "forward", "hessian", "value_and_jacobian", "check"])
def test_nonfinite_input_is_refused_naming_the_switch(call, bad):
    x = torch.tensor([0.5, bad], dtype=F64)
    with refuses(NonFiniteInputError, "check_finite=False", "nan_to_num"):
        call(x)


@pytest.mark.parametrize("bad", NONFINITE)
def test_batch_jacobian_nonfinite_sample_is_refused(bad):
    with refuses(NonFiniteInputError, "check_finite=False"):
        jacobite.batch_jacobian(torch.sin, torch.tensor([[0.1, 0.2], [bad, 0.3]], dtype=F64))


@pytest.mark.parametrize(("mode", "oracle"), [("forward", jacfwd), ("reverse", jacrev)])
def test_nan_with_check_off_flows_as_nan_never_a_finite_number(mode, oracle):
    # each mode spreads a NaN along its own basis vectors (columns / rows), as torch.func does
    x = torch.tensor([0.5, float("nan")], dtype=F64)
    with within():
        J = jacobite.jacobian(torch.sin, x, mode=mode, check_finite=False)
    assert_close(J, oracle(torch.sin)(x))  # equal_nan: NaN exactly where torch.func has it
    assert bool(torch.isnan(J[1, 1]))


# ---- empty, 0-d and degenerate shapes ---------------------------------------------------------

@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize(("f", "shape"), [
    (torch.sin, (0,)),
    (torch.sin, (0, 3)),
    (lambda v: v[:0], (3,)),
    (lambda v: v.sum(0), (0, 2)),
], ids=["n0", "n0x3", "m0", "sum-over-empty"])
def test_empty_jacobians_have_the_reference_shape(f, shape, mode):
    x = torch.zeros(shape, dtype=F64)
    with within():
        J = jacobite.jacobian(f, x, mode=mode)
    assert J.shape == jacrev(f)(x).shape
    assert J.numel() == 0 or bool((J == 0).all())


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("f", [torch.sin, torch.exp, lambda v: v ** 3 - v])
def test_zero_dim_input_gives_a_zero_dim_derivative(f, mode):
    x = torch.tensor(0.7, dtype=F64)
    with within():
        J = jacobite.jacobian(f, x, mode=mode)
    assert J.shape == ()
    assert_close(J, jacfwd(f)(x))


def test_zero_dim_hessian_is_the_second_derivative():
    x = torch.tensor(2.0, dtype=F64)
    with within():
        H = jacobite.hessian(lambda v: v ** 3, x)
    assert_close(H, 12.0)


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (1, 1), (1, 1, 4)])
def test_degenerate_shapes_match_jacrev(shape):
    x = torch.linspace(-1, 1, int(np.prod(shape)), dtype=F64).reshape(shape)
    f = lambda v: torch.tanh(v).cumsum(-1)  # noqa: E731
    with within():
        J = jacobite.jacobian(f, x)
    assert_close(J, jacrev(f)(x))


def test_empty_hessian_and_value_and_jacobian():
    with within():
        H = jacobite.hessian(lambda v: v.sum(), torch.zeros(0, dtype=F64))
        y, J = jacobite.value_and_jacobian(torch.sin, torch.zeros(0, dtype=F64))
    assert H.shape == (0, 0) and J.shape == (0, 0) and y.shape == (0,)


def test_empty_batch_is_refused_naming_the_fix():
    with refuses(ShapeError, "at least one sample"):
        jacobite.batch_jacobian(torch.sin, torch.zeros(0, 3, dtype=F64))


# ---- magnitudes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1e300, -1e300, 1e-300, 5e-324, 2.2e-308])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_extreme_magnitudes_of_a_linear_map_are_exact(scale, mode):
    A = torch.tensor([[2.0, -1.0], [0.5, 3.0]], dtype=F64)
    x = torch.tensor([scale, -scale], dtype=F64)
    with within():
        J = jacobite.jacobian(lambda v: A @ v, x, mode=mode)
    assert torch.equal(J, A)


def test_huge_square_derivative_is_exact():
    x = torch.tensor([1e150, -1e150], dtype=F64)
    with within():
        J = jacobite.jacobian(lambda v: v ** 2, x)
    assert_close(J, torch.diag(2 * x), rtol=1e-15)


def test_overflowing_output_keeps_its_finite_derivative():
    x = torch.tensor([1e200], dtype=F64)  # x² overflows to Inf, 2x does not
    with within():
        J = jacobite.jacobian(lambda v: v ** 2, x)
    assert_close(J, [[2e200]], rtol=1e-15)


# ---- dtypes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dtype", "rtol"), [
    (torch.float16, 2e-3), (torch.bfloat16, 2e-2), (torch.float32, 1e-6), (torch.float64, 1e-14),
])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_floating_dtypes_are_kept_and_match_the_float64_oracle(dtype, rtol, mode):
    x = torch.tensor([0.25, -0.5, 1.0], dtype=dtype)
    with within():
        J = jacobite.jacobian(torch.sin, x, mode=mode)
    assert J.dtype == dtype
    assert_close(J, torch.diag(torch.cos(x.double())), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_input_is_refused_naming_view_as_real(dtype):
    with refuses(DtypeError, "view_as_real"):
        jacobite.jacobian(torch.sin, torch.ones(2, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8, torch.uint8, torch.bool])
@pytest.mark.parametrize("call", [
    lambda x: jacobite.jacobian(torch.sin, x),
    lambda x: jacobite.hessian(lambda v: v.sum(), x),
    lambda x: jacobite.batch_jacobian(torch.sin, x.reshape(1, -1)),
], ids=["jacobian", "hessian", "batch_jacobian"])
def test_integer_and_bool_inputs_are_refused_naming_the_conversion(call, dtype):
    with refuses(DtypeError, "x.float()"):
        call(torch.ones(2, dtype=dtype))


# ---- views and autograd state -------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: torch.arange(6, dtype=F64).reshape(2, 3).t(),
    lambda: torch.tensor([0.4], dtype=F64).expand(3),
    lambda: torch.arange(10, dtype=F64)[::3],
    lambda: torch.arange(12, dtype=F64).reshape(3, 4)[:, 1],
    lambda: torch.arange(6, dtype=F64).reshape(2, 3).unsqueeze(0).permute(2, 0, 1),
], ids=["transposed", "expanded", "strided", "column", "permuted"])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_non_contiguous_views_match_jacrev(make, mode):
    x = make() / 7
    f = lambda v: torch.sin(v) * v.sum()  # noqa: E731
    with within():
        J = jacobite.jacobian(f, x, mode=mode)
    assert_close(J, jacrev(f)(x.contiguous()))


def test_requires_grad_input_gives_a_differentiable_jacobian():
    x = X.clone().requires_grad_()
    with within():
        J = jacobite.jacobian(lambda v: v ** 3, x)
        (g,) = torch.autograd.grad(J.sum(), x)
    assert_close(g, 6 * X)  # d/dx Σ diag(3x²) = 6x


def test_meta_input_gives_a_meta_jacobian_of_the_reference_shape():
    x = torch.ones(2, 3, device="meta")
    with within():
        J = jacobite.jacobian(torch.sin, x)
    assert J.is_meta and J.shape == (2, 3, 2, 3)


# ---- functions that ignore their input, return constants or other types ------------------------

@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("f", [
    lambda v: torch.ones(2, dtype=F64),
    lambda v: torch.zeros_like(v),
    lambda v: v.detach() * 2,
    lambda v: torch.tensor(3.0, dtype=F64),
], ids=["ones", "zeros_like", "detached", "scalar-constant"])
def test_functions_that_ignore_their_input_have_zero_jacobians(f, mode):
    with within():
        J = jacobite.jacobian(f, X, mode=mode)
    assert J.shape == f(X).shape + X.shape and bool((J == 0).all())


@pytest.mark.parametrize("f", [
    lambda v: 3.0, lambda v: None, lambda v: "x", lambda v: [1.0, 2.0], lambda v: {"a": 1},
], ids=["float", "None", "str", "list-of-floats", "dict-of-int"])
def test_non_tensor_outputs_are_refused(f):
    with refuses(OutputTypeError, "return torch tensors"):
        jacobite.jacobian(f, X)


def test_numpy_escape_is_refused_naming_numeric():
    with refuses(UnsupportedOperationError, "jacobite.numeric.jacobian"):
        jacobite.jacobian(lambda v: torch.as_tensor(v.numpy()), X)


def test_raising_function_propagates_its_own_error():
    def boom(v: torch.Tensor) -> torch.Tensor:
        raise KeyError("user error")
    with pytest.raises(KeyError, match="user error"):
        jacobite.jacobian(boom, X)


@pytest.mark.parametrize("arg", [0.5, [0.5, 1.0], np.ones(3), (1.0, 2.0)],
                         ids=["float", "list", "numpy", "tuple"])
def test_non_tensor_inputs_are_refused_naming_torch_tensor(arg):
    with refuses(ArgnumsError, "torch.tensor"):
        jacobite.jacobian(torch.sin, arg)


@pytest.mark.parametrize("argnums", [2, -3, (0, 2)])
def test_argnums_past_the_arguments_are_refused(argnums):
    with refuses(ArgnumsError, "pick positions"):
        jacobite.jacobian(lambda a, b: a * b, X, X, argnums=argnums)


@pytest.mark.parametrize("f", [torch.sin, lambda v: (v, v, v), lambda v: (v,)],
                         ids=["no-pair", "triple", "single"])
def test_has_aux_without_a_pair_is_refused(f):
    with refuses(OutputTypeError, "pair (output, aux)"):
        jacobite.jacobian(f, X, has_aux=True)


# ---- no_grad, randomness, in-place, module state ------------------------------------------------

def _no_grad_scale(v: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        s = v.sum()
    return v * s


def test_no_grad_region_is_a_constant_in_auto_mode():
    with within():
        J = jacobite.jacobian(_no_grad_scale, X)
    assert_close(J, torch.autograd.functional.jacobian(_no_grad_scale, X))


def test_no_grad_region_in_forward_mode_is_refused():
    with refuses(UnsupportedOperationError, "reverse"):
        jacobite.jacobian(_no_grad_scale, X, mode="forward")


def test_random_function_in_forward_mode_is_refused():
    with refuses(UnsupportedOperationError, "mode='reverse'"):
        jacobite.jacobian(lambda v: v * torch.rand(3, dtype=F64), X, mode="forward")


def test_random_function_in_auto_mode_is_the_jacobian_of_one_draw():
    def noisy(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = torch.rand(3, dtype=F64)
        return v * r, r  # the draw goes out as aux: the Jacobian must be diag of that same draw
    with within():
        J, r = jacobite.jacobian(noisy, X, has_aux=True)
    assert_close(J, torch.diag(r))


def test_dropout_in_train_mode_forward_is_refused_naming_eval():
    with refuses(UnsupportedOperationError, "eval()"):
        jacobite.jacobian(torch.nn.Dropout(0.5).train(), X, mode="forward")


def test_in_place_write_into_the_input_is_refused_and_leaves_it_untouched():
    x = X.clone()
    with refuses(UnsupportedOperationError, "out of place"):
        jacobite.jacobian(lambda v: v.mul_(2), x)
    assert torch.equal(x, X)


@pytest.mark.parametrize("call", [
    lambda m, x: jacobite.jacobian(m, x),
    lambda m, x: jacobite.module_jacobian(m, x),
    lambda m, x: jacobite.batch_jacobian(m, x),
], ids=["jacobian", "module_jacobian", "batch_jacobian"])
def test_batchnorm_in_train_mode_is_refused_naming_eval_and_its_stats_kept(call):
    bn = torch.nn.BatchNorm1d(3).double().train()
    before = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    with refuses(ModuleStateError, "eval()"):
        call(bn, torch.randn(4, 3, dtype=F64))
    assert torch.equal(bn.running_mean, before[0])
    assert torch.equal(bn.num_batches_tracked, before[1])


def test_batchnorm_in_eval_mode_matches_jacrev():
    bn = torch.nn.BatchNorm1d(3).double().eval()
    bn.running_var.fill_(4.0)
    x = torch.randn(2, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    with within():
        J = jacobite.jacobian(bn, x)
    assert_close(J, jacrev(bn)(x))


# ---- sizes over the budget are refused before allocation ---------------------------------------

@pytest.mark.parametrize("call", [
    lambda: jacobite.jacobian(torch.sin, torch.zeros(200_000)),
    lambda: jacobite.jacobian(torch.sin, torch.zeros(200_000), mode="forward"),
    lambda: jacobite.jacobian(torch.sin, torch.zeros(200_000), chunk_size=1),
    lambda: jacobite.jacobian_plan(torch.sin, torch.zeros(200_000)),
    lambda: jacobite.hessian(lambda v: v.sum(), torch.zeros(60_000)),
    lambda: jacobite.batch_jacobian(lambda v: v.expand(100_000, 3), torch.zeros(1000, 3)),
    lambda: jacobite.jacobian(torch.sin, torch.zeros(100), memory_budget=1000),
    lambda: jacobite.jacobian(lambda v: v.expand(10**6, 10), torch.zeros(10, dtype=F64),
                              memory_budget="1 MiB"),
], ids=["reverse", "forward", "loop", "plan", "hessian", "batch", "tiny-budget", "wide-output"])
def test_results_over_the_budget_are_refused_before_allocation(call):
    with refuses(JacobianTooLarge, "memory_budget", "linearize", seconds=3.0):
        call()


def test_a_huge_input_is_fine_matrix_free():
    x = torch.linspace(-1, 1, 200_000)
    with within(5.0):
        op = jacobite.linearize(torch.sin, x)
        y = op.mv(torch.ones_like(x))
    assert_close(y, torch.cos(x), rtol=1e-6, atol=1e-7)


# ---- products ----------------------------------------------------------------------------------

def test_jvp_tangent_of_the_wrong_shape_is_refused():
    with refuses(ShapeError, "tangents must match primals"):
        jacobite.jvp(torch.sin, (X,), (torch.ones(2, dtype=F64),))


def test_hessian_of_a_vector_function_is_refused_naming_nested_jacobian():
    with refuses(ShapeError, "jacobian(lambda x: jacobian(f, x), x)"):
        jacobite.hessian(torch.sin, X)


@pytest.mark.parametrize("v", [
    torch.tensor([1e300, 0.0, 0.0], dtype=F64), torch.tensor([0.0, 5e-324, 0.0], dtype=F64),
    torch.zeros(3, dtype=F64),
], ids=["huge", "subnormal", "zero"])
def test_hvp_with_extreme_tangents_matches_the_hessian(v):
    f = lambda u: (u ** 3).sum() + u[0] * u[1]  # noqa: E731
    with within():
        got = jacobite.hvp(f, (X,), (v,))
    assert_close(got, func_hessian(f)(X) @ v, rtol=1e-14, atol=1e-323)  # subnormals round


def test_vjp_with_a_nan_cotangent_is_nan_where_it_reaches():
    _, pull = jacobite.vjp(f_mix, X)
    (g,) = pull(torch.tensor([0.0, float("nan"), 0.0], dtype=F64))
    assert bool(torch.isnan(g).all())


def test_batch_jacobian_of_a_sample_mixing_function_is_per_sample():
    xb = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    f = lambda v: v * v.sum()  # noqa: E731
    with within():
        J = jacobite.batch_jacobian(f, xb)
    assert_close(J, vmap(jacrev(f))(xb))


def test_check_passes_on_a_constant_function():
    with within():
        res = jacobite.check(lambda v: torch.ones(2, dtype=F64), X)
    assert res.ok
