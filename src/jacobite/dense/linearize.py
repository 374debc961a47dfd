"""``linearize``: the Jacobian at a point as a matrix-free operator, forward pass cached."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.func import vmap

from .._modules import keep_state, keeps_state
from ..errors import ShapeError
from ._engine import Problem
from ._errors import translate
from ._func import jvp as _jvp
from ._func import vjp as _vjp
from .jacobian import _flags

if TYPE_CHECKING:
    from ..operators import FunctionOperator

__all__ = ["linearize"]


def _cat(leaves: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return leaves[0].reshape(-1) if len(leaves) == 1 else torch.cat([t.reshape(-1) for t in leaves])


def _split(v: torch.Tensor, like: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    parts = torch.split(v, [t.numel() for t in like])
    return tuple(p.reshape(t.shape).to(t.dtype) for p, t in zip(parts, like, strict=True))


@keeps_state
def linearize(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
              check_finite: bool = True) -> FunctionOperator:
    """The Jacobian of ``f`` at ``args`` as a lazy ``(m, n)`` operator — never formed.

    ``op.mv(v)`` = J v and ``op.rmv(u)`` = Jᵀ u on flat vectors (inputs and outputs flattened in
    pytree order); ``op.mm``/``op.rmm`` batch them with ``vmap``; ``op.value`` is ``f(*args)``.
    The forward pass runs once: ``rmv`` reuses its VJP, and ``mv`` differentiates that VJP
    again (the "double-VJP" trick), checked once against a fresh JVP and replaced by fresh JVPs
    for operations without a (correct) double backward. Use it for Jacobians too large to
    store (spectra, iterative solves).

    >>> import torch, jacobite
    >>> op = jacobite.linearize(lambda x: x ** 2, torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> op.mv(torch.ones(2, dtype=torch.float64)).tolist(), op.shape
    ([2.0, 4.0], (2, 2))
    """
    _flags(check_finite=check_finite)
    p = Problem.build(f, args, argnums, False, check_finite)
    # f with no_grad regions (which forward mode differentiates through) or random draws (a
    # fresh JVP re-evaluates f): mv comes from the double VJP alone, never from a fresh JVP
    reverse_only = p.probe().reverse_only
    with translate(p.fname, "reverse"):
        out_leaves, vjp_fn, _ = p.vjp()
    xs = p.xin.leaves
    m, n = sum(t.numel() for t in out_leaves), p.xin.numel
    dtype = torch.promote_types(out_leaves[0].dtype, xs[0].dtype)
    device = out_leaves[0].device
    assert p.out is not None
    value = p.out.unflatten(list(out_leaves))

    def check(v: torch.Tensor, size: int, what: str) -> None:
        if v.ndim != 1 or v.shape[0] != size:
            raise ShapeError(f"{what} expects a vector of length {size}, got shape "
                             f"{tuple(v.shape)}; use mm/rmm for a batch of vectors")

    def rmv(u: torch.Tensor) -> torch.Tensor:
        check(u, m, "rmv")
        with translate(p.fname, "reverse"):
            return _cat(tuple(vjp_fn(_split(u, out_leaves))))

    state: dict[str, Any] = {}

    def fresh_jvp(v: torch.Tensor) -> torch.Tensor:
        # a fresh evaluation of f, possibly long after linearize returned: watched like it
        with translate(p.fname, "forward"), keep_state():
            _, tang = _jvp(p.g_plain, xs, _split(v, xs))
        return _cat(p.as_leaves(tang))

    # dynamo cannot trace a VJP of the cached VJP (an internal error, not a graph break): under
    # torch.compile this one-time setup runs eagerly
    @torch.compiler.disable
    def setup() -> None:
        """Build the double-VJP once and check it against one fresh JVP on a fixed probe: a
        backward marked ``once_differentiable`` (or any wrong double backward) would otherwise
        give a silently wrong J v."""
        try:
            zero = torch.zeros(m, dtype=dtype, device=device)
            dvjp = _vjp(lambda u: _cat(tuple(vjp_fn(_split(u, out_leaves)))), zero)[1]
            g = torch.Generator(device="cpu").manual_seed(0)
            probe = torch.rand(n, generator=g, dtype=torch.float64).to(dtype=dtype,
                                                                       device=device) + 0.5
            if reverse_only:
                state["dvjp"] = dvjp
                return
            a, b = dvjp(probe)[0].to(dtype).detach(), fresh_jvp(probe).detach()
            scale = float(b.abs().max()) if b.numel() else 0.0
            tol = 1e3 * torch.finfo(a.real.dtype if a.is_complex() else a.dtype).eps
            ok = bool(((a - b).abs() <= tol * max(scale, 1.0) * max(1.0, n ** 0.5)).all())
            state["dvjp"] = dvjp if ok else None
        except RuntimeError:
            if reverse_only:
                raise
            state["dvjp"] = None

    def mv(v: torch.Tensor) -> torch.Tensor:
        check(v, n, "mv")
        if "dvjp" not in state:
            setup()
        if state["dvjp"] is not None:
            try:
                return state["dvjp"](v.to(dtype))[0].to(dtype)
            except RuntimeError:
                if reverse_only:
                    raise
                state["dvjp"] = None
        return fresh_jvp(v)

    from ..operators import FunctionOperator  # on first use: not part of every dense import

    op = FunctionOperator(
        (m, n), mv, rmv, dtype=dtype, device=device,
        mm=vmap(mv, in_dims=1, out_dims=1), rmm=vmap(rmv, in_dims=1, out_dims=1),
        name=f"linearize({p.fname})",
    )
    op.value = value
    return op
