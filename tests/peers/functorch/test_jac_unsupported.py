"""Functions that torch.func cannot transform: functorch pins a ``RuntimeError`` for each; jacobite
must raise :class:`~jacobite.errors.UnsupportedOperationError` (a ``RuntimeError`` too) whose
message names the cause, for jacobian, hessian, jvp and vjp alike — except where it computes the
Jacobian without torch.func: a reverse (or auto) Jacobian that nothing differentiates through
(``x`` not requiring grad, no transform around) is one plain autograd backward pass, which
follows old-style autograd Functions, saved-tensor hooks and ``requires_grad_()`` inside f, and
is then checked against ``torch.autograd.functional.jacobian``.
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
    _refused_or_plain(_turns_on_grad, mode, r"requires_grad_\(\)")


def _refused_or_plain(f, mode, match):
    """Forward mode (and any mode with x requiring grad) refuses f by name; reverse and auto
    with a plain x give autograd's own Jacobian."""
    x = randn(3)
    with pytest.raises(UnsupportedOperationError, match=match):
        jac(f, x.clone().requires_grad_(), mode=mode)
    if mode == "forward":
        with pytest.raises(UnsupportedOperationError, match=match):
            jac(f, x, mode=mode)
        return
    close(jac(f, x, mode=mode), torch.autograd.functional.jacobian(f, x.clone()))


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
    _refused_or_plain(_OldStyleSin.apply, mode, "setup_context")


def test_old_style_autograd_function_in_hessian():
    with pytest.raises(UnsupportedOperationError, match="setup_context"):
        jacobite.hessian(lambda v: _OldStyleSin.apply(v).sum(), randn(3))


def _sin_with_hooks(v):
    with torch.autograd.graph.save_on_cpu():
        return v.sin()


@pytest.mark.parametrize("mode", modes())
def test_saved_tensor_hooks_inside_f(mode):
    """Forward mode saves nothing for a backward pass, so hooks are harmless there (torch.func's
    jvp accepts them); a plain reverse pass follows them; reverse through torch.func cannot."""
    x = randn(3)
    close(jac(_sin_with_hooks, x, mode=mode), diag(x.cos()))  # forward saves nothing; plain
    if mode != "forward":  # reverse follows the hooks; through torch.func it cannot
        with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
            jac(_sin_with_hooks, x.clone().requires_grad_(), mode=mode)


@pytest.mark.parametrize("mode", modes())
def test_saved_tensor_hooks_around_the_call(mode):
    x = randn(3)
    with torch.autograd.graph.save_on_cpu():
        close(jac(torch.sin, x, mode=mode), diag(x.cos()))
        if mode != "forward":
            with pytest.raises(UnsupportedOperationError, match="saved-tensor hooks"):
                jac(torch.sin, x.clone().requires_grad_(), mode=mode)


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
