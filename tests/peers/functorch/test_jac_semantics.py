"""What a Jacobian means for functions with randomness, gradient-free regions and in-place
writes, and what ``chunk_size`` promises: the behaviour functorch pins for jacrev and jacfwd.

Oracle: ``torch.func.jacrev`` (float64) or a value written out by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.func import jacrev

import jacobite
from jacobite.errors import UnsupportedOperationError

from ._common import MODES, D, close, configs, diag, jac, modes, randn

# ---------------------------------------------------------------------------------------------
# randomness


def _consistent_dropout(value: torch.Tensor, J: torch.Tensor, x: torch.Tensor, p: float) -> None:
    """J is the Jacobian of ONE dropout draw: diagonal, entries 0 or 1/(1-p), and J x = f(x)."""
    close(J - torch.diag(J.diagonal()), torch.zeros_like(J))
    assert set(J.diagonal().tolist()) <= {0.0, 1 / (1 - p)}
    close(value, J @ x)


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_dropout_jacobian_is_one_draw(mode, chunk):
    """Every column comes from the same draw, or jacobite refuses with a typed error (forward
    mode, which evaluates f once per chunk); never a mix of draws, never a bare RuntimeError."""
    x = randn(16) + 3  # no zero entries: a kept entry shows in value
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            value, J = jacobite.value_and_jacobian(lambda v: F.dropout(v, 0.5), x, mode=mode,
                                                   chunk_size=chunk)
        except UnsupportedOperationError as exc:
            assert "random" in str(exc)
            return
    _consistent_dropout(value, J, x, 0.5)
    assert 0 < int((J.diagonal() != 0).sum()) < 16  # the draw dropped some entries, not all


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_seed_reset_inside_f(mode, chunk):
    """f reseeds the global generator before drawing: the draw is a constant of f."""
    def f(v):
        torch.manual_seed(0)
        return v * torch.randn_like(v)

    x = randn(3)
    with torch.random.fork_rng(devices=[]):
        expected = jacrev(f)(x)
        try:
            J = jac(f, x, mode=mode, chunk=chunk)
        except UnsupportedOperationError as exc:
            assert "random" in str(exc)
            return
    close(J, expected)


# ---------------------------------------------------------------------------------------------
# regions without gradients


def _half_frozen(v):
    with torch.no_grad():
        frozen = v ** 2
    return v ** 2 - frozen


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_no_grad_region_is_a_constant(mode, chunk):
    """reverse (and auto) honour torch.no_grad like torch.autograd; forward mode, which cannot,
    refuses with a typed error instead of giving the other answer."""
    x = randn(3)
    expected = diag(2 * x)
    close(jacrev(_half_frozen)(x), expected)
    if mode == "forward":
        with pytest.raises(UnsupportedOperationError, match="mode='reverse'"):
            jac(_half_frozen, x, mode=mode, chunk=chunk)
        return
    close(jac(_half_frozen, x, mode=mode, chunk=chunk), expected)


def _half_frozen_cube(v):
    with torch.no_grad():
        frozen = (v ** 3).sum()
    return (v ** 3).sum() - frozen


def test_no_grad_region_in_every_entry_point():
    """jvp, hvp, hessian, linearize and batch_jacobian give the reverse-mode answer too (where
    torch.func.jvp differentiates through the region and returns zeros)."""
    x, t = randn(3), randn(3, seed=1)
    close(jacobite.jvp(_half_frozen, (x,), (t,))[1], 2 * x * t)
    close(jacobite.linearize(_half_frozen, x).mv(t), 2 * x * t)
    close(jacobite.hessian(_half_frozen_cube, x), diag(6 * x))
    close(jacobite.hvp(_half_frozen_cube, (x,), (t,)), 6 * x * t)
    close(jacobite.batch_jacobian(_half_frozen, x[None]), diag(2 * x)[None])


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_detach_is_a_constant_in_every_mode(mode, chunk):
    x = randn(3)
    close(jac(lambda v: v ** 2 - v.detach() ** 2, x, mode=mode, chunk=chunk), diag(2 * x))


# ---------------------------------------------------------------------------------------------
# in-place operations


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_in_place_on_a_clone(mode, chunk):
    x = randn(3)
    close(jac(lambda v: v.clone().sin_(), x, mode=mode, chunk=chunk), diag(x.cos()))


def _sin_first_through_view(v):
    y = v.clone()
    y[0].sin_()
    return y


def _view_of_sined_base(v):
    y = v.clone()
    first = y[0]
    y.sin_()
    return first


@pytest.mark.parametrize("f", [_sin_first_through_view, _view_of_sined_base],
                         ids=["write_through_view", "read_view_of_written_base"])
@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_in_place_through_views(mode, chunk, f):
    x = randn(3)
    close(jac(f, x, mode=mode, chunk=chunk), jacrev(f)(x))


@pytest.mark.parametrize("mode", modes())
def test_writing_into_the_differentiated_input_is_refused(mode):
    """torch.func refuses too (a bare RuntimeError); jacobite's error names the fix and the
    caller's tensor is left unchanged."""
    x = randn(3)
    before = x.clone()
    with pytest.raises(UnsupportedOperationError, match="in place"):
        jac(lambda v: v.mul_(2), x, mode=mode)
    assert torch.equal(x, before)


@pytest.mark.parametrize("mode", modes())
def test_writing_into_a_captured_tensor_is_refused(mode):
    captured = randn(3, seed=1)

    def f(v):
        captured.copy_(v)
        return v * captured

    with pytest.raises(UnsupportedOperationError, match=r"captured \("):
        jac(f, randn(3), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_writing_into_an_argument_outside_argnums_is_refused(mode):
    """torch.func lets f write into such an argument on every evaluation; jacobite evaluates f
    an unspecified number of times, so it refuses, names has_aux, and leaves the tensor as it
    was. (functorch's example: y.copy_(x); the Jacobian would be the identity.)"""
    def copy_into(x, y):
        y.copy_(x)
        return y

    x, y = randn(2), randn(2, seed=1)
    before = y.clone()
    with pytest.raises(UnsupportedOperationError, match=r"argument 1 in place.*has_aux=True"):
        jac(copy_into, x, y, argnums=0, mode=mode)
    assert torch.equal(y, before)

    def overwrite_head(x, y, z):
        x[:2] = y
        return torch.vstack([(x ** 2).sum(), (z ** 3).sum()])

    x = randn(3)
    before = x.clone()
    with pytest.raises(UnsupportedOperationError, match="argument 0 in place"):
        jac(overwrite_head, x, randn(2, seed=1), randn(2, seed=2), argnums=(1, 2), mode=mode)
    assert torch.equal(x, before)


@pytest.mark.parametrize("mode", modes())
def test_new_value_of_an_argument_comes_out_through_aux(mode):
    """The has_aux way to write functorch's overwrite example: the updated tensor is returned."""
    def overwrite_head(x, y, z):
        x = torch.cat([y, x[2:]])
        return torch.vstack([(x ** 2).sum(), (z ** 3).sum()]), x

    x, y, z = randn(3), randn(2, seed=1), randn(2, seed=2)
    (Jy, Jz), new_x = jac(overwrite_head, x, y, z, argnums=(1, 2), has_aux=True, mode=mode)
    expected_y, expected_z = torch.zeros(2, 1, 2, dtype=D), torch.zeros(2, 1, 2, dtype=D)
    expected_y[0, 0] = 2 * y
    expected_z[1, 0] = 3 * z ** 2
    close((Jy, Jz), (expected_y, expected_z))
    close(new_x, torch.cat([y, x[2:]]))


# ---------------------------------------------------------------------------------------------
# chunk_size


def _pytree_map(x, y):
    return (x.sin(), x + y), (x + 2, x.sum())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk", [None, "auto", 1, 2, 3, 4, 7, 10, 1000], ids=str)
def test_chunked_equals_unchunked(mode, chunk):
    x, y = randn(10, 2), randn(1, 2, seed=1)
    got = jac(_pytree_map, x, y, argnums=(0, 1), mode=mode, chunk=chunk)
    close(got, jacrev(_pytree_map, argnums=(0, 1))(x, y))


@given(rows=st.integers(0, 6), cols=st.integers(1, 3), mode=st.sampled_from(MODES),
       chunk=st.one_of(st.none(), st.just("auto"), st.integers(1, 20)))
def test_chunking_never_changes_the_jacobian(rows, cols, mode, chunk):
    """Any shape (empty included), any mode, any chunk size: the same Jacobian as jacrev."""
    x = randn(rows, cols)
    y = randn(1, cols, seed=1)
    got = jac(_pytree_map, x, y, argnums=(0, 1), mode=mode, chunk=chunk)
    close(got, jacrev(_pytree_map, argnums=(0, 1))(x, y))


@pytest.mark.parametrize("mode", MODES)
def test_auto_chunks_under_a_small_budget(mode):
    x = randn(40)
    f = lambda v: torch.tanh(v[:, None] * v[None, :]).sum(0)  # noqa: E731
    plan = jacobite.jacobian_plan(f, x, mode=mode, memory_budget="64 KiB")
    assert plan.num_chunks > 1
    got = jacobite.jacobian(f, x, mode=mode, chunk_size="auto", memory_budget="64 KiB")
    close(got, jacrev(f)(x))


class _IdentityWithDynamicShapes(torch.autograd.Function):
    """The identity whose backward and JVP call ``nonzero``, which vmap cannot batch."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, g):
        g.nonzero()
        return g

    @staticmethod
    def jvp(ctx, t):
        t.nonzero()
        return t


@pytest.mark.parametrize("mode", modes())
def test_chunk_size_one_is_a_plain_loop(mode):
    x = randn(3, 3)
    J = jac(_IdentityWithDynamicShapes.apply, x, mode=mode, chunk=1)
    close(J, torch.eye(9, dtype=D).reshape(3, 3, 3, 3))
    with pytest.raises(UnsupportedOperationError, match=r"chunk_size=1|shape depends"):
        jac(_IdentityWithDynamicShapes.apply, x, mode=mode, chunk=2)


class _Square(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.x = inputs[0]

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g

    @staticmethod
    def jvp(ctx, t):
        return 2 * ctx.x * t


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_custom_autograd_function(mode, chunk):
    x = randn(4)
    close(jac(_Square.apply, x, mode=mode, chunk=chunk), diag(2 * x))
