"""The engine's fast path: one tensor in, one tensor out, one vectorised call.

Most Jacobians are of this shape. Here the general machinery (pytree flattening of every output,
chunk bookkeeping, aux plumbing) is skipped and the work is exactly ``vjp`` + ``vmap`` over an
identity basis (reverse) or ``vmap`` over ``jvp`` (forward) — what ``torch.func.jacrev`` and
``jacfwd`` do, minus their own pytree handling. Results are identical to the general path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.func import vmap

from ..errors import DtypeError, OutputTypeError
from . import _plan
from ._errors import check_not_mutated, translate
from ._func import jvp as _jvp
from ._func import vjp as _vjp


def bind(f: Callable[..., Any], args: tuple[Any, ...], pos: int) -> Callable[..., Any]:
    """``f`` as a function of the argument at ``pos`` alone."""
    if len(args) == 1:
        return f
    before, after = args[:pos], args[pos + 1:]
    return lambda t: f(*before, t, *after)


def _identity(k: int, like: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    eye = torch.zeros(k, k, dtype=like.dtype, device=like.device)
    eye.diagonal().fill_(1)
    return eye.view(k, *shape)


def _check_out(out: torch.Tensor, fname: str) -> None:
    if not out.is_floating_point():
        raise DtypeError(f"{fname} returned a tensor of dtype {out.dtype}, which has no "
                         "derivative; return a floating-point tensor (integer outputs come from "
                         "rounding, argmax or comparisons)")


def reverse(fx: Callable[..., Any], x: torch.Tensor, budget: int,
            fname: str) -> tuple[Any, torch.Tensor] | None:
    """``(f(x), J)`` with J shaped ``out.shape + x.shape``; None if f's output is not a tensor."""
    with translate(fname, "reverse"):
        out, vjp_fn = _vjp(fx, x)
    if not isinstance(out, torch.Tensor):
        return None
    _check_out(out, fname)
    m, n = out.numel(), x.numel()
    _plan.guard(m, n, max(out.element_size(), x.element_size()), budget)
    if m == 0 or n == 0:
        return out, torch.zeros((*out.shape, *x.shape), dtype=x.dtype, device=x.device)
    with translate(fname, "reverse"):
        (J,) = vmap(vjp_fn)(_identity(m, out, out.shape))
    return out, J.reshape((*out.shape, *x.shape))


def forward(fx: Callable[..., Any], x: torch.Tensor, m: int, budget: int,
            fname: str) -> tuple[Any, torch.Tensor]:
    """``(f(x), J)`` by ``vmap`` over JVPs; ``m`` (from the probe) sizes the memory guard."""
    n = x.numel()
    _plan.guard(m, n, x.element_size(), budget)

    # f runs on a private copy and must not change it; a clone (not a detached copy) so that the
    # result stays differentiable with respect to x for an enclosing autograd or torch.func
    own = x.clone()
    version = own._version

    def one(t: torch.Tensor) -> tuple[Any, Any]:
        return _jvp(fx, (own,), (t,))

    # The primal comes back with a broadcast (zero-copy) batch dimension: under an enclosing
    # vmap it is batched and cannot be returned unbatched.
    with translate(fname, "forward"):
        out, Jt = vmap(one)(_identity(n, x, x.shape))
    check_not_mutated(fname, (own,), (version,))
    if not isinstance(out, torch.Tensor):
        raise OutputTypeError(f"{fname} must return a tensor here, got {type(out).__name__}")
    out = out[0]
    if out.numel() != m:  # f's output size changed since the plan was made: re-check the budget
        _plan.guard(out.numel(), n, x.element_size(), budget)
    _check_out(out, fname)
    # Jt is (n, *out.shape): move the input dimension to the back, as jacfwd does
    Jt = Jt.reshape((n, *out.shape)).movedim(0, -1)
    return out, Jt.reshape((*out.shape, *x.shape))
