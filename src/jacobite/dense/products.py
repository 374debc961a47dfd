"""Jacobian-vector products: ``jvp``, ``vjp`` and the Hessian-vector product ``hvp``.

Thin, validated wrappers over torch.func: same calling conventions, typed errors that name the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

import torch
from torch.func import grad as _grad
from torch.utils._pytree import tree_flatten, tree_map

from .. import _validate
from .._modules import keeps_state
from ..errors import ShapeError
from ._engine import probe_of
from ._errors import translate
from ._func import jvp as _jvp
from ._func import vjp as _vjp
from ._trees import flatten_inputs, function_name, normalize_argnums
from .jacobian import _flags

__all__ = ["hvp", "jvp", "vjp"]


def _check_pair(primals: Any, tangents: Any, fname: str, check_finite: bool) -> None:
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise ShapeError(
            f"jvp({fname}, primals, tangents) takes tuples, e.g. jvp(f, (x,), (v,)); got "
            f"{type(primals).__name__} and {type(tangents).__name__}"
        )
    px = flatten_inputs(primals, "primals", check_finite=check_finite)
    tv, _ = tree_flatten(tangents)
    if len(tv) != len(px.leaves):
        raise ShapeError(f"primals have {len(px.leaves)} tensors but tangents have {len(tv)}; "
                         "give one tangent per primal")
    for i, (p, t) in enumerate(zip(px.leaves, tv, strict=True)):
        if not isinstance(t, torch.Tensor) or t.shape != p.shape:
            shape = getattr(t, "shape", type(t).__name__)
            raise ShapeError(f"tangent {i} has shape {shape} but its primal has shape "
                             f"{tuple(p.shape)}; tangents must match primals exactly")


@overload
def jvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
        has_aux: Literal[False] = ..., check_finite: bool = ...) -> tuple[Any, Any]: ...
@overload
def jvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
        has_aux: Literal[True], check_finite: bool = ...) -> tuple[Any, Any, Any]: ...
@overload
def jvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
        has_aux: bool, check_finite: bool = ...) -> tuple[Any, ...]: ...
@keeps_state
def jvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
        has_aux: bool = False, check_finite: bool = True) -> tuple[Any, ...]:
    """Forward mode: ``(f(*primals), J·tangents)`` (plus ``aux`` with ``has_aux=True``).

    >>> import torch, jacobite
    >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> out, jv = jacobite.jvp(lambda v: v ** 2, (x,), (torch.ones_like(x),))
    >>> jv.tolist()
    [2.0, 4.0]
    """
    fname = function_name(f)
    _validate.callable_(f)
    _flags(has_aux=has_aux, check_finite=check_finite)
    _check_pair(primals, tangents, fname, check_finite)
    if primals and probe_of(f, primals, tuple(range(len(primals)))).stops_gradient:
        with translate(fname, "reverse"):
            return _reverse_jvp(f, primals, tangents, has_aux)
    with translate(fname, "forward"):
        return _jvp(f, primals, tangents, has_aux=has_aux)


def _reverse_jvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...],
                 has_aux: bool) -> tuple[Any, ...]:
    """``J·v`` in reverse mode only, for an f with no_grad regions (which forward mode would
    differentiate through): ``u ↦ uᵀJ`` is linear, and its VJP against v is ``J v``."""
    res = _vjp(f, *primals, has_aux=has_aux)
    out, vjp_fn = res[0], res[1]
    zeros = tree_map(torch.zeros_like, out)
    _, back = _vjp(lambda u: vjp_fn(u), zeros)
    (jv,) = back(tangents)
    return (out, jv, res[2]) if has_aux else (out, jv)


@overload
def vjp(f: Callable[..., Any], *primals: Any, has_aux: Literal[False] = ...,
        check_finite: bool = ...) -> tuple[Any, Callable[..., Any]]: ...
@overload
def vjp(f: Callable[..., Any], *primals: Any, has_aux: Literal[True],
        check_finite: bool = ...) -> tuple[Any, Callable[..., Any], Any]: ...
@overload
def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool,
        check_finite: bool = ...) -> tuple[Any, ...]: ...
@keeps_state
def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False,
        check_finite: bool = True) -> tuple[Any, ...]:
    """Reverse mode: ``(f(*primals), vjp_fn)`` where ``vjp_fn(u)`` gives ``uᵀJ`` per primal.

    The forward pass runs once; ``vjp_fn`` can be called many times.

    >>> import torch, jacobite
    >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> out, vjp_fn = jacobite.vjp(lambda v: v ** 2, x)
    >>> vjp_fn(torch.ones_like(out))[0].tolist()
    [2.0, 4.0]
    """
    fname = function_name(f)
    _validate.callable_(f)
    _flags(has_aux=has_aux, check_finite=check_finite)
    flatten_inputs(primals, "primals", check_finite=check_finite)
    with translate(fname, "reverse"):
        res = _vjp(f, *primals, has_aux=has_aux)
    fn = res[1]

    def vjp_fn(*cotangents: Any) -> Any:
        with translate(fname, "reverse"):
            return fn(*cotangents)

    return (res[0], vjp_fn, *res[2:])


@keeps_state
def hvp(f: Callable[..., Any], primals: tuple[Any, ...], tangents: tuple[Any, ...], *,
        argnums: int | tuple[int, ...] = 0, check_finite: bool = True) -> Any:
    """Hessian-vector product ``H·v`` of a scalar function, forward-over-reverse.

    ``tangents`` matches the primals at ``argnums``; the result has the same structure.
    Costs about one gradient evaluation; the Hessian is never formed.

    >>> import torch, jacobite
    >>> f = lambda x: (x ** 3).sum()
    >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> jacobite.hvp(f, (x,), (torch.tensor([1.0, 1.0], dtype=torch.float64),)).tolist()
    [6.0, 12.0]
    """
    fname = function_name(f)
    _validate.callable_(f)
    _flags(check_finite=check_finite)
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise ShapeError("hvp(f, primals, tangents) takes tuples, e.g. hvp(f, (x,), (v,))")
    idx, _ = normalize_argnums(argnums, len(primals))
    sel = tuple(primals[i] for i in idx)
    _check_pair(sel, tangents, fname, check_finite)
    g = _grad(f, argnums=argnums)
    rev = probe_of(f, primals, argnums).stops_gradient

    def grad_of_selected(*xs: Any) -> Any:
        full = list(primals)
        for i, x in zip(idx, xs, strict=True):
            full[i] = x
        return g(*full)

    with translate(fname, "hvp"):
        try:
            if rev:  # f has no_grad regions: reverse over reverse, as torch.autograd.functional
                _, hv = _reverse_jvp(grad_of_selected, sel, tangents, False)
            else:
                _, hv = _jvp(grad_of_selected, sel, tangents)
        except RuntimeError as exc:
            if "scalar" in str(exc) or "numel() == 1" in str(exc) or "1 element" in str(exc):
                raise ShapeError(f"hvp needs {fname} to return a scalar (one element); for a "
                                 "vector function use jacobite.jvp of its Jacobian") from exc
            raise
    return hv[0] if not isinstance(argnums, tuple) and isinstance(hv, tuple) else hv
