"""Functions that torch.func cannot transform: functorch pins a ``RuntimeError`` for each; jacobite
must raise :class:`~jacobite.errors.UnsupportedOperationError` (a ``RuntimeError`` too) whose
message names the cause, in every mode, for jacobian, hessian, jvp and vjp alike.
"""

from __future__ import annotations

import pytest
import torch

import jacobite
from jacobite.errors import UnsupportedOperationError

from ._common import MODES, close, diag, jac, modes, randn


# Neutral names: a message that names f must not match the expected cause by accident.
def _turns_on_grad(v):
    v.requires_grad_()
    return v.sin()


def _legacy_inner_jacobian(v):
    return torch.autograd.functional.jacobian(lambda u: u.sin().sum(), v)


def _keeps_intermediate_grad(v):
    y = v.sin()
    y.retain_grad()
    return y


@pytest.mark.parametrize("mode", MODES)
def test_requires_grad_inside_f(mode):
    with pytest.raises(UnsupportedOperationError, match=r"requires_grad_\(\)"):
        jac(_turns_on_grad, randn(3), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_autograd_functional_inside_f(mode):
    with pytest.raises(UnsupportedOperationError, match=r"torch\.autograd\.functional"):
        jac(_legacy_inner_jacobian, randn(3), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_retain_grad_inside_f(mode):
    with pytest.raises(UnsupportedOperationError, match=r"retain_grad\(\)"):
        jac(_keeps_intermediate_grad, randn(3), mode=mode)


class _OldStyleSin(torch.autograd.Function):
    """forward takes ctx: torch.func needs a separate setup_context."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.cos()


@pytest.mark.parametrize("mode", modes())
def test_old_style_autograd_function(mode):
    with pytest.raises(UnsupportedOperationError, match="setup_context"):
        jac(_OldStyleSin.apply, randn(3), mode=mode)


def test_old_style_autograd_function_in_hessian():
    with pytest.raises(UnsupportedOperationError, match="setup_context"):
        jacobite.hessian(lambda v: _OldStyleSin.apply(v).sum(), randn(3))


def _sin_with_hooks(v):
    with torch.autograd.graph.save_on_cpu():
        return v.sin()


@pytest.mark.parametrize("mode", modes())
def test_saved_tensor_hooks_inside_f(mode):
    """Forward mode saves nothing for a backward pass, so hooks are harmless there (torch.func's
    jvp accepts them); reverse mode cannot run with them."""
    x = randn(3)
    if mode == "forward":
        close(jac(_sin_with_hooks, x, mode=mode), diag(x.cos()))
        return
    with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
        jac(_sin_with_hooks, x, mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_saved_tensor_hooks_around_the_call(mode):
    x = randn(3)
    with torch.autograd.graph.save_on_cpu():
        if mode == "forward":
            close(jac(torch.sin, x, mode=mode), diag(x.cos()))
            return
        with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
            jac(torch.sin, x, mode=mode)


def test_saved_tensor_hooks_in_hessian_vjp_and_jvp():
    x = randn(3)
    with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
        jacobite.hessian(lambda v: _sin_with_hooks(v).sum(), x)
    with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
        jacobite.vjp(_sin_with_hooks, x)
    close(jacobite.jvp(_sin_with_hooks, (x,), (x,)), (x.sin(), x.cos() * x))


def test_custom_function_using_jvp_inside():
    """jacobite.jvp inside a custom autograd.Function's forward and backward."""

    class Sin(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            _, neg_sin = jacobite.jvp(torch.cos, (v,), (torch.ones_like(v),))
            ctx.save_for_backward(v)
            return -neg_sin

        @staticmethod
        def backward(ctx, g):
            (v,) = ctx.saved_tensors
            _, cos = jacobite.jvp(torch.sin, (v,), (torch.ones_like(v),))
            return g * cos

    x = randn().requires_grad_()
    y = Sin.apply(x)
    close(y, x.detach().sin())
    (g,) = torch.autograd.grad(y, x)
    close(g, x.detach().cos())
