"""Per-sample input Jacobians of a batched model, kept in the autograd graph.

A model maps a batch ``(B, n)`` to ``(B, m)`` with samples independent, so the whole-batch
Jacobian is block diagonal and its blocks come from a few products on the whole batch:

* reverse: one vector–Jacobian product per output (``vᵀJ`` with ``v`` the same basis vector for
  every sample) — ``m`` backward passes, batched into one with ``is_grads_batched``;
* forward: one Jacobian–vector product per input direction, all taken in one forward pass of a
  batch repeated once per direction (forward-mode AD on dual tensors).

The products are recorded (``create_graph=True``) where the output depends on a tensor that
requires grad: the Jacobians are then differentiable in the model's parameters (and in ``x``
where it requires grad), which is what training on them needs. A frozen model at an untracked
``x`` gets the same Jacobians as constants.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.autograd.forward_ad as fwAD

from ... import _validate
from ..._compile import eager_under_compile
from ..._modules import keep_state
from ...dense import _rows
from ...dense._batch_of_one import transformable_kernels
from ...errors import ModuleStateError, ShapeError, UnsupportedOperationError
from . import _memory

JacMode = Literal["auto", "forward", "reverse"]

#: from this many inputs on, forward products are no dearer than reverse ones (measured)
_MANY = 32

#: the advice when a training-mode BatchNorm would run a second time or mix samples
_FIX = ("the Sobolev loss needs samples the model treats independently: call model.eval() "
        "(BatchNorm in training mode mixes the samples of a batch)")


@dataclass(frozen=True)
class _Parts:
    """What a module holds that matters here, found once per module (a walk of its tree)."""

    batchnorms: tuple[tuple[str, torch.nn.Module], ...]
    dropouts: tuple[torch.nn.Module, ...]
    attention: bool


_PARTS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[int, _Parts]] = \
    weakref.WeakKeyDictionary()


_CALL = threading.local()  # .memo: {id(module): _Parts} for the duration of one loss call


@contextlib.contextmanager
def one_call() -> Iterator[None]:
    """Within one loss call a module's tree is walked once (the call does not change it)."""
    outer = getattr(_CALL, "memo", None)
    _CALL.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _CALL.memo = outer


def _parts(model: torch.nn.Module) -> _Parts:
    """The module's BatchNorms, dropouts and attention, cached while its tree holds the same
    module objects."""
    memo = getattr(_CALL, "memo", None)
    if memo is not None and id(model) in memo:
        return memo[id(model)]
    sig = hash(tuple(map(id, model.modules())))
    hit = _PARTS.get(model)
    if hit is not None and hit[0] == sig:
        if memo is not None:
            memo[id(model)] = hit[1]
        return hit[1]
    mods = list(model.named_modules())
    parts = _Parts(
        tuple((n, m) for n, m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)),
        tuple(m for _, m in mods if isinstance(m, torch.nn.modules.dropout._DropoutNd)),
        any("Attention" in type(m).__name__ or "Transformer" in type(m).__name__
            for _, m in mods))
    _PARTS[model] = (sig, parts)
    if memo is not None:
        memo[id(model)] = parts
    return parts


def _draws(model: Callable[..., torch.Tensor]) -> bool:
    """True when the model is a module with a training-mode dropout layer (random draws)."""
    if not isinstance(model, torch.nn.Module):
        return False
    return any(mod.training and getattr(mod, "p", 1.0) > 0 for mod in _parts(model).dropouts)


def _mixing(model: torch.nn.Module) -> str | None:
    """The name of a training-mode BatchNorm in the module (it mixes the samples), or None."""
    for name, mod in _parts(model).batchnorms:
        if mod.training:
            return f"{name or 'the model'} ({type(mod).__name__})"
    return None


def _run(model: Callable[..., torch.Tensor], x: torch.Tensor, batch: int) -> torch.Tensor:
    """``model(x)`` as ``(rows, m)``, refusing outputs that do not keep the batch first.

    A module runs once, as in any training step (its state changes as in one), after a check
    that no BatchNorm in training mode mixes the samples; attention runs on the math kernel
    (differentiable twice). A function, which may close over modules, runs watched by
    :func:`jacobite._modules.keep_state` (state put back, a training-mode BatchNorm refused).
    """
    if isinstance(model, torch.nn.Module):
        bn = _mixing(model)
        if bn is not None:
            raise ModuleStateError(f"{bn} is in training mode; {_FIX}")
        if _parts(model).attention:
            with transformable_kernels():
                out = model(x)
        else:
            out = model(x)
    else:
        with keep_state(fix=_FIX), transformable_kernels():
            out = model(x)
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != batch:
        raise ShapeError(
            "the model must map a batch (B, n) to (B, m) or (B,); got "
            f"{getattr(out, 'shape', type(out).__name__)} for a batch of {batch}; for a model "
            "with several outputs pass a function that picks one tensor, e.g. "
            "lambda b: model(b)['y']")
    return out if out.ndim == 2 else out.reshape(batch, -1)


def _grad_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when it already requires grad (its graph is kept), else a leaf copy."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _keep(x: torch.Tensor, xg: torch.Tensor, out: torch.Tensor) -> bool:
    """Whether the products of ``out`` must be recorded: ``x`` is tracked, the model's output
    depends on a tensor requiring grad (its parameters), or a transform is active; else the
    Jacobians are constants and are taken without ``create_graph`` (the same values)."""
    return _rows.needs_graph(x, out, None if xg is x else xg)


def _vjps(out: torch.Tensor, xg: torch.Tensor, cot: torch.Tensor, size: int,
          create_graph: bool) -> torch.Tensor:
    """``cot[i]ᵀ ∂out/∂x`` for each cotangent ``cot[i]`` (shape ``(c, B, m)``) → ``(c, B, n)``,
    ``size`` cotangents per batched backward pass."""
    back, batched = _rows.graph_pullback(out, xg, create_graph)
    return _rows.vjps(back, xg, size, batched=batched)(cot)


def _size(model: Callable[..., torch.Tensor], x: torch.Tensor, passes: int, factor: int) -> int:
    """Products per batched pass under the memory budget (``factor`` copies of the forward
    pass's saved tensors per product)."""
    if passes <= 1:
        return 1
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return passes  # under a torch.func transform: no measuring pass, one batched pass
    per_row = _memory.row_bytes(model, x, lambda one: _run(model, one, 1))
    return _memory.chunk(passes, factor * per_row * x.shape[0])


def reverse_jacobian(model: Callable[..., torch.Tensor], x: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model(x) as (B, m), per-sample Jacobians (B, m, n))`` by ``m`` VJPs on the batch."""
    B = x.shape[0]
    xg = _grad_input(x)
    with torch.enable_grad():
        out = _run(model, xg, B)
        m = out.shape[1]
        keep = _keep(x, xg, out)
        if m == 1:  # one output: the gradient of its sum over the batch
            (g1,) = torch.autograd.grad(out.sum(), xg, create_graph=keep, allow_unused=True,
                                        materialize_grads=True)
            return out, g1.reshape(B, 1, -1)
        else:
            eye = torch.eye(m, dtype=out.dtype, device=out.device)
            cot = eye[:, None, :].expand(m, B, m)
        g = _vjps(out, xg, cot, _size(model, x, m, 2), keep)  # (m, B, *in)
    return out, g.reshape(m, B, -1).permute(1, 0, 2)


def _forward_ad(model: Callable[..., torch.Tensor], x: torch.Tensor, tangents: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass of ``x`` repeated per tangent: ``(model(x) (B, m), J·t (B, m, k))``
    for tangents ``(B, k, *in)``."""
    B, k = tangents.shape[:2]
    if _draws(model):
        raise ModuleStateError(
            "the model draws random numbers (dropout in training mode), so forward mode would "
            "differentiate a different draw per direction; call model.eval() or pass "
            "jac_mode='reverse'")
    prim: list[torch.Tensor] = []

    def push(rep: torch.Tensor, tan: torch.Tensor) -> torch.Tensor:
        try:
            with torch.enable_grad(), fwAD.dual_level():
                out = _run(model, fwAD.make_dual(rep, tan), rep.shape[0])
                primal, tangent = fwAD.unpack_dual(out)
        except (NotImplementedError, RuntimeError) as exc:
            if "forward AD" in str(exc) or "forward-mode" in str(exc) or "fwAD" in str(exc):
                raise UnsupportedOperationError(
                    f"the model uses an operation without a forward-mode derivative ({exc}); "
                    "pass jac_mode='reverse'") from exc
            raise
        if not prim:
            prim.append(primal[:B])
        return torch.zeros_like(primal) if tangent is None else tangent  # None: x unused

    cols = _rows.repeated(push, x, _size(model, x, k, 3))(tangents.transpose(0, 1))
    return prim[0], cols.permute(1, 2, 0)


def forward_jacobian(model: Callable[..., torch.Tensor], x: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model(x) (B, m), per-sample Jacobians (B, m, n))`` by ``n`` JVPs in one pass."""
    B = x.shape[0]
    n = x[0].numel()
    basis = torch.eye(n, dtype=x.dtype, device=x.device).reshape(n, *x.shape[1:])
    return _forward_ad(model, x, basis.unsqueeze(0).expand(B, *basis.shape))


def directional(model: Callable[..., torch.Tensor], x: torch.Tensor, v: torch.Tensor,
                jac_mode: JacMode) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model(x) (B, m), J v (B, m, k))`` for directions ``v`` of shape ``(B, k, n)``.

    Forward mode: one pass of the batch repeated ``k`` times. Reverse mode (for models without
    forward-mode derivatives, or drawing random numbers): ``J v = ∂/∂u (uᵀ J v)`` by two
    backward passes through a cotangent ``u`` that requires grad.
    """
    if jac_mode == "reverse" or (jac_mode == "auto" and _draws(model)):
        return _double_vjp(model, x, v)
    return _forward_ad(model, x, v.reshape(*v.shape[:2], *x.shape[1:]))


@eager_under_compile  # compiled autograd graphs have no double backward
def _double_vjp(model: Callable[..., torch.Tensor], x: torch.Tensor, v: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``J v`` as the derivative of ``uᵀ J v`` in the cotangent ``u`` (two backward passes)."""
    B, k = v.shape[:2]
    xg = _grad_input(x)
    with torch.enable_grad():
        out = _run(model, xg, B)
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, xg, grad_outputs=u, create_graph=True,
                                   allow_unused=True, materialize_grads=True)
        vv = v.transpose(0, 1).reshape(k, *g.shape).to(g.dtype)
        jv = _vjps(g, u, vv, _size(model, x, k, 3), _keep(x, xg, out))  # (k, B, m)
    return out, jv.permute(1, 2, 0)


def full(model: Callable[..., torch.Tensor], x: torch.Tensor, m_hint: int | None,
         jac_mode: JacMode) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample Jacobians by the cheaper mode (``m_hint``: the targets' output count).

    ``n`` forward products against ``m`` reverse ones, where a forward product (dual tensors)
    costs about twice a reverse one until the products are many (measured on tanh MLPs: equal
    at ``m = 4n`` for ``n ≤ 8``, forward 1.6× faster at ``n = m = 100``); reverse when the
    model draws random numbers (one draw for every row)."""
    _validate.choice(jac_mode, "jac_mode", ("auto", "forward", "reverse"))
    if jac_mode == "auto":
        n = x[0].numel()
        m = n if m_hint is None else m_hint
        forward = (4 * n <= m or _MANY <= n <= m) and not _draws(model)
        jac_mode = "forward" if forward else "reverse"
    return (forward_jacobian if jac_mode == "forward" else reverse_jacobian)(model, x)
