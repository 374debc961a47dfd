"""Dependency rules for the backward ops a gradient runs (for Hessian sparsity detection).

:func:`jacobite.sparse.detect_hessian` traces ``f`` and its reverse-mode gradient; the gradient
runs aten ``*_backward`` ops. Elementwise ones (activation backwards) follow the pointwise rule;
softmax backwards see their whole slice; slice/select/diagonal backwards move elements and use
the index trick of :mod:`jacobite.sparse._rules`.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _rules as R

aten = torch.ops.aten

#: elementwise in every tensor argument (with broadcasting)
POINTWISE_BACKWARD = {
    getattr(aten, name)
    for name in (
        "threshold_backward", "sigmoid_backward", "tanh_backward", "softplus_backward",
        "gelu_backward", "elu_backward", "silu_backward", "hardtanh_backward",
        "hardsigmoid_backward", "hardswish_backward", "leaky_relu_backward",
        "log_sigmoid_backward", "mish_backward", "logit_backward", "softshrink_backward",
        "hardshrink_backward", "rrelu_with_noise_backward", "mse_loss_backward",
        "smooth_l1_loss_backward", "huber_loss_backward", "binary_cross_entropy_backward",
    )
    if hasattr(aten, name)
}

SOFTMAX_BACKWARD = {
    getattr(aten, name)
    for name in ("_softmax_backward_data", "_log_softmax_backward_data")
    if hasattr(aten, name)
}

#: ops that only move elements of the incoming gradient (zeros elsewhere)
INDEX_BACKWARD = {
    getattr(aten, name)
    for name in ("slice_backward", "select_backward", "diagonal_backward", "unfold_backward")
    if hasattr(aten, name)
}


def softmax_backward(args: tuple, kwargs: dict, out: torch.Tensor, deps: R.Lookup) -> R.Deps:
    """``grad``, ``output`` elementwise, then every element sees its whole slice along dim."""
    d = R.pointwise((args, kwargs), out, deps)
    if d is None:
        return None
    b = R.bind(aten._softmax_backward_data.default, args, kwargs)
    dim = int(b["dim"]) % max(out.dim(), 1)
    g = R.group_matrix(tuple(out.shape), [dim] if out.dim() else [])
    return (g.T @ (g @ d)).tocsr()


def backward_rule(func: Any, args: tuple, kwargs: dict, outs: list, deps: R.Lookup,
                  n: int) -> list[R.Deps] | None:
    """Dependencies of a backward op's outputs, or ``None`` when it is not one of ours."""
    packet = func.overloadpacket
    if packet in POINTWISE_BACKWARD and len(outs) == 1:
        return [R.pointwise((args, kwargs), outs[0], deps)]
    if packet in SOFTMAX_BACKWARD:
        return [softmax_backward(args, kwargs, outs[0], deps)]
    if packet in INDEX_BACKWARD:
        return R.index_trick(func, args, kwargs, outs, deps, n)
    return None
