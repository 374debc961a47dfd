"""Per-sample Jacobian rows and columns of a batch-independent map from products on the batch.

A map ``f`` of a batch whose samples are independent has a block-diagonal whole-batch
Jacobian, so one product with the same vector given to every sample yields one row (a VJP
with the basis cotangent ``eᵢ``) or one column (a JVP with the basis tangent ``eⱼ``) of every
sample's Jacobian at once. This module holds the two ways of taking many such products:

* :func:`vjps` — one forward pass, then its pullback applied to a stack of cotangents, ``size``
  per batched pass (``vmap`` over a ``torch.func`` pullback, or ``is_grads_batched`` over a
  recorded autograd graph), one at a time where the backward pass does not batch;
* :func:`repeated` — JVPs by running the batch repeated once per tangent, ``size`` tangents
  per pass.

:func:`pullback` (``torch.func.vjp``) and :func:`graph_pullback` (plain ``autograd.grad`` on a
recorded graph; :func:`recorded` for a function that runs autograd itself) build the
pullbacks; :func:`needs_graph` says whether the products must be
recorded for autograd at all (nothing they depend on requires grad: no graph, the same
values).

>>> import torch
>>> x = torch.ones(2, 3, dtype=torch.float64)
>>> out, back = pullback(lambda v: 2 * v, x)
>>> U = torch.eye(3, dtype=torch.float64)[:, None, :].expand(3, 2, 3)
>>> vjps(back, x, 2)(U)[:, 0].tolist()
[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch._C._functorch import is_functorch_wrapped_tensor, peek_interpreter_stack
from torch.autograd import forward_ad

from ._graph import nodes

__all__ = ["graph_pullback", "needs_graph", "pullback", "pulled", "recorded", "repeated",
           "runs_autograd", "transformed", "vjps"]

#: ``u ↦ uᵀ J`` for one cotangent shaped like the output
Pullback = Callable[[torch.Tensor], torch.Tensor]
#: a stack of vectors ``(k, …)`` to the stack of their products
Products = Callable[[torch.Tensor], torch.Tensor]


def transformed() -> bool:
    """Whether autograd or ``torch.func`` may differentiate what is computed now whatever the
    tensors say: a ``torch.func`` transform or a forward-AD level is active, or
    ``torch.compile`` is tracing."""
    return (peek_interpreter_stack() is not None or forward_ad._current_level >= 0
            or torch.compiler.is_compiling())


def _reaches_other(out: torch.Tensor, leaf: torch.Tensor) -> bool:
    """Whether the recorded graph of ``out`` reaches a tensor requiring grad other than
    ``leaf`` (a parameter ``f`` closes over, or what ``x`` was computed from)."""
    return any(type(node).__name__ == "AccumulateGrad"
               and getattr(node, "variable", None) is not leaf for node in nodes(out))


def needs_graph(x: torch.Tensor, out: torch.Tensor, leaf: torch.Tensor | None = None) -> bool:
    """Whether products of ``out = f(x)`` must be recorded for autograd: with gradients on, ``x``
    requires grad or ``out`` depends on a tensor that does (the parameters of the modules
    ``f`` closes over), or :func:`transformed`. ``leaf``: the private input that requires grad
    only so that the products can be taken (its own grad is never asked for).

    >>> x = torch.ones(2)
    >>> needs_graph(x, 2 * x), needs_graph(x, x * torch.ones(2, requires_grad=True))
    (False, True)
    """
    if transformed() or type(x) is not torch.Tensor or is_functorch_wrapped_tensor(x):
        return True
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad and x is not leaf:
        return True
    if not out.requires_grad:
        return False
    return leaf is None or _reaches_other(out, leaf)


def pullback(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
             ) -> tuple[torch.Tensor, Pullback]:
    """``(f(x), u ↦ uᵀ J_f(x))`` by ``torch.func.vjp``: differentiable in ``x`` and in what
    ``f`` closes over, under autograd and ``torch.func`` transforms. ``f(x)`` may be any
    object; the pullback is meaningful where it is a tensor."""
    res = torch.func.vjp(f, x)
    back = res[1]
    return res[0], lambda u: back(u)[0]


def runs_autograd(exc: BaseException) -> bool:
    """Whether ``exc`` is ``torch.func`` refusing a function that runs autograd itself (marks
    a tensor ``requires_grad_`` to differentiate it), outside any transform of the caller's:
    :func:`recorded` takes it."""
    msg = str(exc)
    return isinstance(exc, RuntimeError) and "requires_grad_()" in msg \
        and "functorch transform" in msg and not transformed()


def recorded(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
             ) -> tuple[torch.Tensor, Pullback, Products]:
    """``(f(x), pullback, batched pullback)`` by plain autograd on one recorded forward pass,
    for a function that runs autograd itself (which ``torch.func`` refuses); the products are
    recorded where :func:`needs_graph`. ``f(x)`` not depending on ``x`` gives zeros."""
    own = not (x.requires_grad and torch.is_grad_enabled())
    leaf = x.detach().requires_grad_(True) if own else x
    with torch.enable_grad():
        out = f(leaf)
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        def zeros(u: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

        return out, zeros, lambda U: torch.zeros((U.shape[0], *x.shape), dtype=x.dtype,
                                                 device=x.device)
    back, batched = graph_pullback(out, leaf, needs_graph(x, out, leaf if own else None))
    return out, back, batched


def graph_pullback(out: torch.Tensor, leaf: torch.Tensor, create_graph: bool
                   ) -> tuple[Pullback, Products]:
    """The pullback of ``out`` to ``leaf`` on their recorded autograd graph, and its batched
    form (``is_grads_batched``; a loop where that does not run: under ``torch.compile`` or a
    ``torch.func`` transform). ``create_graph``: record the products (differentiable in
    ``leaf`` and what ``out`` depends on); without it the graph is kept for the next product.
    Inputs that ``out`` does not use give zeros."""

    def grad(u: torch.Tensor, batched: bool) -> torch.Tensor:
        g = torch.autograd.grad(out, leaf, grad_outputs=u, retain_graph=True,
                                create_graph=create_graph, is_grads_batched=batched,
                                allow_unused=True, materialize_grads=True)[0]
        if batched and g.shape != (u.shape[0], *leaf.shape):  # unused: zeros of one product
            g = g.expand(u.shape[0], *leaf.shape)
        return g

    def looped(U: torch.Tensor) -> torch.Tensor:
        return torch.stack([grad(u, False) for u in U])

    plain = torch.compiler.is_compiling() or is_functorch_wrapped_tensor(out)
    return (lambda u: grad(u, False)), (looped if plain else lambda U: grad(U, True))


def _unbatchable(exc: RuntimeError) -> bool:
    msg = str(exc)
    return "vmap" in msg or "atching rule" in msg


def vjps(back: Pullback, x: torch.Tensor, size: int, *, batched: Products | None = None,
         graph: bool = True) -> Products:
    """``U (k, *out) ↦ (uᵢᵀ J)ᵢ (k, *x.shape)`` for the pullback ``back`` at ``x``, ``size``
    cotangents per batched pass (``batched``, default ``vmap(back)``), one at a time where the
    backward pass does not batch. ``graph=False``: the products run under ``torch.no_grad``
    (see :func:`needs_graph`); the values are the same."""
    vmapped = batched if batched is not None else torch.func.vmap(back)

    def many(U: torch.Tensor) -> torch.Tensor:
        try:
            return vmapped(U)
        except RuntimeError as exc:  # a backward pass that cannot batch: one at a time
            if not _unbatchable(exc):
                raise
            return torch.stack([back(u) for u in U])

    def apply(U: torch.Tensor) -> torch.Tensor:
        U = U.to(x.dtype)
        with contextlib.nullcontext() if graph else torch.no_grad():
            parts = [many(Uc) if Uc.shape[0] > 1 else back(Uc[0]).unsqueeze(0)
                     for Uc in U.split(max(size, 1))]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    return apply


def pulled(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int,
           check: Callable[[object], torch.Tensor]) -> tuple[torch.Tensor, Products]:
    """``(f(x), U ↦ (uᵢᵀ J)ᵢ)`` from one forward pass: :func:`pullback`, or :func:`recorded`
    where ``f`` runs autograd itself, then :func:`vjps` ``size`` at a time, recorded for
    autograd only where :func:`needs_graph`. ``check`` vets ``f(x)`` (raising on a wrong
    output) before any product is set up.

    >>> x = torch.ones(2, 3, dtype=torch.float64)
    >>> out, rows = pulled(lambda v: 2 * v, x, 3, lambda o: o)
    >>> rows(torch.eye(3, dtype=torch.float64)[:, None, :].expand(3, 2, 3))[1, 0].tolist()
    [0.0, 2.0, 0.0]
    """
    batched: Products | None = None
    try:
        out, back = pullback(f, x)
    except RuntimeError as exc:  # f runs autograd itself: plain autograd on its recorded graph
        if not runs_autograd(exc):
            raise
        out, back, batched = recorded(f, x)
    out = check(out)
    graph = batched is not None or needs_graph(x, out)  # recorded: chosen there
    return out, vjps(back, x, size, batched=batched, graph=graph)


def repeated(push: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
             size: int) -> Products:
    """``V (k, B, *in) ↦ (J vᵢ)ᵢ (k, B, m)`` by ``push(x_rep, v_rep)``, a JVP of the batch
    ``x`` repeated once per tangent (``size`` tangents per pass), whose tangent output is
    ``(c·B, …)``; ``m`` is its entries per sample."""
    B = x.shape[0]

    def apply(V: torch.Tensor) -> torch.Tensor:
        parts = []
        for Vc in V.split(max(size, 1)):
            c = Vc.shape[0]
            rep = x.unsqueeze(0).expand(c, *x.shape).reshape(c * B, *x.shape[1:]).contiguous()
            tan = Vc.reshape(c * B, *x.shape[1:]).to(x.dtype).contiguous()
            parts.append(push(rep, tan).reshape(c, B, -1))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    return apply
