"""Dependency rules for the backward ops a gradient runs (for Hessian sparsity detection).

:func:`jacobite.sparse.detect_hessian` traces ``f`` and its reverse-mode gradient; the gradient
runs aten ``*_backward`` ops. Elementwise ones (activation backwards) follow the pointwise rule;
softmax backwards see their whole slice; slice/select/diagonal backwards move elements and use
the index trick of :mod:`jacobite.sparse._rules`; ``unfold_backward`` sums overlapping windows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from . import _rules as R
from ._registry import Call, rule

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
    for name in ("slice_backward", "select_backward", "diagonal_backward")
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


@rule(*SOFTMAX_BACKWARD)
def softmax_backward_rule(c: Call) -> list[R.Deps]:
    """Softmax backwards: see :func:`softmax_backward`."""
    return [softmax_backward(c.args, c.kwargs, c.outs[0], c.deps)]


@rule(aten.unfold_backward)
def unfold_backward_rule(c: Call) -> list[R.Deps]:
    """``unfold_backward`` adds each window's gradient into its input positions (overlapping
    windows sum): output element ``j`` depends on every window element that covers ``j``."""
    b = R.bind(c.func, c.args, c.kwargs)
    g = b["grad_in"]
    d = c.deps(g)
    if d is None:
        return [None]
    sizes = [int(s) for s in b["input_sizes"]]
    numel = int(np.prod(sizes, dtype=np.int64))
    pos = torch.arange(numel, dtype=torch.int64).reshape(sizes)
    target = pos.unfold(int(b["dim"]) % max(len(sizes), 1), int(b["size"]), int(b["step"]))
    tgt = target.reshape(-1).numpy()
    src = R._broadcast_index(tuple(g.shape), tuple(target.shape))
    sel = sp.csr_matrix((np.ones(tgt.size, bool), (tgt, np.arange(tgt.size))),
                        shape=(numel, tgt.size))
    return [(sel @ R.gather_rows(d, src)).tocsr()]


rule(*POINTWISE_BACKWARD)(R.pointwise_rule)
rule(*INDEX_BACKWARD)(R.index_rule)
