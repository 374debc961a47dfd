"""A Jacobian that is a constant: one forward pass with a graph, one vectorised backward pass.

Most Jacobians are used as numbers: nothing differentiates through them. For those, the
reverse-mode Jacobian of one tensor in, one tensor out needs neither ``torch.func.vjp``'s
functional wrapping of the input nor the pytree handling of ``torch.func.vmap``: plain autograd
records ``f`` once on a private leaf, and the backward pass runs once at a vmap level over the
rows of the identity, so every backward formula sees all ``m`` cotangents at once. On small
problems (a few inputs, tens of outputs) this is two to three times faster than
``torch.func.jacrev``, and it never imports ``torch._dynamo`` (which ``torch.func``'s backward
does on first use, about half a second).

The values are those of reverse mode through ``torch.func`` (the same backward formulas, the
same batching rules). It applies where nothing differentiates through ``x``: no ``torch.func``
transform and no forward-AD level around the call, and ``x`` not requiring grad while
gradients are on (:func:`available`). Where ``f`` reaches another tensor that requires grad (a
module's parameters), the backward pass records its own graph so that J stays differentiable
in it, as through ``torch.func``. Operations whose batched backward torch gets wrong
(``torch.cdist``'s direct kernel) are found in the recorded graph and taken one row at a time;
reentrant checkpointing, which ``autograd.grad`` refuses, is left to the general route, which
names the fix. Functions that write into a tensor they captured, or run autograd themselves,
never come here (the probe flags them; ``JacobianPlan.transform_only``).

>>> import torch
>>> value, J = reverse(lambda v: v ** 2, torch.tensor([1.0, 2.0]), 2 ** 20, "f")
>>> value.tolist(), J.tolist()
([1.0, 4.0], [[2.0, 0.0], [0.0, 4.0]])
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch._C._functorch import (
    _add_batch_dim,
    _remove_batch_dim,
    _vmap_decrement_nesting,
    _vmap_increment_nesting,
    peek_interpreter_stack,
)
from torch.autograd import forward_ad

from ..errors import DtypeError, UnsupportedOperationError
from . import _plan
from ._errors import MUTATES_INPUT, translate
from ._probe import probing

__all__ = ["LEAN_MAX_ROWS", "available", "reverse"]

#: Below this many outputs a reverse Jacobian by one batched backward pass beats forward mode
#: through ``torch.func`` even where the input is much smaller (measured on CPU: 154 outputs of
#: 3 inputs, 0.4 ms against 1.4 ms; 1000 outputs, 10 ms against 1.1 ms).
LEAN_MAX_ROWS = 256

# backward nodes whose batched backward torch computes wrongly (see _probe.VMAP_WRONG_BACKWARD)
_WRONG_BATCHED = frozenset({"CdistBackward0"})
# backward nodes plain autograd.grad refuses (reentrant checkpointing): the general route names
# the fix
_REFUSED = frozenset({"CheckpointFunctionBackward"})


def available(x: torch.Tensor) -> bool:
    """Whether the Jacobian at ``x`` may be a constant, as far as the call shows: no
    ``torch.func`` transform and no forward-AD level around, ``x`` a plain floating tensor
    that, with gradients on, does not require grad.

    >>> available(torch.zeros(2)), available(torch.zeros(2, requires_grad=True))
    (True, False)
    """
    return (type(x) is torch.Tensor and x.is_floating_point()
            and not (x.requires_grad and torch.is_grad_enabled())
            and peek_interpreter_stack() is None
            and forward_ad._current_level < 0
            and not probing())


def _identity(m: int, like: torch.Tensor) -> torch.Tensor:
    eye = torch.zeros(m, m, dtype=like.dtype, device=like.device)
    eye.diagonal().fill_(1)
    return eye.view(m, *like.shape)


def _scan(out: torch.Tensor, leaf: torch.Tensor) -> tuple[bool, bool, bool]:
    """``(other, refused, wrong)``: whether the graph of ``out`` reaches a tensor requiring
    grad other than ``leaf``, holds a backward that ``autograd.grad`` refuses, or one whose
    batched form is wrong."""
    seen: set[Any] = set()
    todo = [out.grad_fn]
    other = refused = wrong = False
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        if name == "AccumulateGrad":
            other = other or getattr(node, "variable", None) is not leaf
        elif name in _REFUSED:
            refused = True
        elif name in _WRONG_BATCHED:
            wrong = True
        todo.extend(nxt for nxt, _ in node.next_functions)
    return other, refused, wrong


def _no_compiled_autograd() -> contextlib.AbstractContextManager[Any]:
    """torch.func keeps its backward passes out of compiled autograd; so does this. Compiled
    autograd cannot be on before ``torch._dynamo`` is loaded, so nothing is imported here."""
    if "torch._dynamo" not in sys.modules:
        return contextlib.nullcontext()
    from torch._dynamo import compiled_autograd

    return compiled_autograd._disable()


# the autograd engine itself: torch.autograd.grad checks the cotangents' shapes first through
# torch.fx's symbolic shapes, whose first use imports SymPy (about a second); these cotangents
# are built here with the right shapes
_RUN = getattr(torch.autograd.graph, "_engine_run_backward", None)


def _backward(out: torch.Tensor, leaf: torch.Tensor, cot: torch.Tensor,
              keep: bool, retain: bool) -> torch.Tensor | None:
    if _RUN is None or type(out) is not torch.Tensor:
        (g,) = torch.autograd.grad(out, leaf, cot, retain_graph=retain or keep,
                                   create_graph=keep, allow_unused=True)
        return g
    (g,) = _RUN((out,), (cot,), retain or keep, keep, (leaf,), True, accumulate_grad=False)
    return g


def reverse(f: Callable[[torch.Tensor], Any], x: torch.Tensor, budget: int,
            fname: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(f(x), J)``, J shaped ``out.shape + x.shape``; None where ``f`` does not return one
    tensor or checkpoints reentrantly (the general route computes those). Both are constants,
    except where, with gradients on, ``f`` reaches another tensor requiring grad (a module's
    parameters): then they keep their graph to it, as through ``torch.func``. Call only where
    :func:`available`."""
    leaf = x.detach().clone().requires_grad_(True)
    version = leaf._version
    with translate(fname, "reverse"), torch.enable_grad():
        out = f(leaf)
    if leaf._version != version:
        raise UnsupportedOperationError(MUTATES_INPUT.format(f=fname))
    if not isinstance(out, torch.Tensor):
        return None
    if not out.is_floating_point():
        raise DtypeError(f"{fname} returned a tensor of dtype {out.dtype}, which has no "
                         "derivative; return a floating-point tensor (integer outputs come from "
                         "rounding, argmax or comparisons)")
    m, n = out.numel(), x.numel()
    _plan.guard(m, n, max(out.element_size(), x.element_size()), budget)
    value = out.detach()
    J: torch.Tensor | None = None
    if m and n and out.requires_grad:
        other, refused, wrong = _scan(out, leaf)
        if refused:
            return None
        # with gradients on, a tensor f closes over that requires grad (a module's parameters)
        # keeps its graph: the value and J stay differentiable in it, as through torch.func
        keep = other and torch.is_grad_enabled()
        with translate(fname, "reverse"), _no_compiled_autograd():
            J = _rows(out, leaf, m, wrong, keep)
        if keep:
            value = out
    if J is None:  # f does not depend on x
        return value, torch.zeros((*out.shape, *x.shape), dtype=x.dtype, device=x.device)
    return value, J.reshape((*out.shape, *x.shape))


def _rows(out: torch.Tensor, leaf: torch.Tensor, m: int, wrong: bool,
          keep: bool) -> torch.Tensor | None:
    """The ``m`` rows of J from the recorded graph: one batched backward pass, or one pass per
    row (``wrong``: through an operation whose batched backward is wrong); None where ``x`` is
    unused."""
    if wrong:
        flat = out.reshape(-1)
        rows = [_backward(flat, leaf, e, keep, True) for e in _identity(m, flat)]
        kept = [r for r in rows if r is not None]
        return torch.stack(kept) if len(kept) == m else None
    level = _vmap_increment_nesting(m, "error")
    try:
        g = _backward(out, leaf, _add_batch_dim(_identity(m, out), 0, level), keep, False)
        return None if g is None else _remove_batch_dim(g, level, m, 0)
    finally:
        _vmap_decrement_nesting()
