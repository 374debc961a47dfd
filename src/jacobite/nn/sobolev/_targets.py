"""Checking and shaping the training targets of a Sobolev loss: values ``(B, m)``, partials
``(B, m, n)`` with a mask of the known ones, weights, and directional derivatives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ... import _validate
from ...errors import ArgumentTypeError, InvalidOptionError, NonFiniteInputError, ShapeError


@dataclass(frozen=True)
class Targets:
    x: torch.Tensor
    y: torch.Tensor  # (B, m)
    dydx: torch.Tensor | None  # (B, m, n), unknown entries set to 0
    mask: torch.Tensor | None  # (B, m, n) bool, True = known; None = all known
    weight: float | torch.Tensor
    batch: int
    m: int
    n: int
    directions: torch.Tensor | None = None  # (B, k, n)
    directional_values: torch.Tensor | None = None  # (B, m, k)


def _tensor(value: Any, name: str, like: torch.Tensor, dtype: torch.dtype | None = None
            ) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=like.device, dtype=dtype or like.dtype)
    try:
        return torch.as_tensor(value, dtype=dtype or like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArgumentTypeError(f"{name} must be a tensor or array, got "
                                f"{type(value).__name__}") from exc


def _shape(t: torch.Tensor, name: str, shapes: list[tuple[int, ...]]) -> torch.Tensor:
    if tuple(t.shape) not in shapes:
        want = " or ".join(str(tuple(s)) for s in shapes)
        raise ShapeError(f"{name} has shape {tuple(t.shape)}; expected {want} (batch first, "
                         "then outputs, then inputs)")
    return t


def _broadcast(t: torch.Tensor, name: str, shape: tuple[int, ...], what: str) -> torch.Tensor:
    try:
        return t.expand(torch.broadcast_shapes(t.shape, shape))
    except RuntimeError as exc:
        raise ShapeError(f"{name} of shape {tuple(t.shape)} does not broadcast to {what} "
                         f"{shape}; give it shape {shape} or one that broadcasts to it (size "
                         "1 where it is the same for all)") from exc


def _signature(value: Any) -> tuple[Any, ...] | None:
    """What identifies an argument between calls: a tensor by identity and version (an
    in-place change makes it new), a number by value; None: not cacheable."""
    if value is None:
        return ("none",)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", float(value))
    if isinstance(value, torch.Tensor) and not \
            torch._C._functorch.is_functorch_wrapped_tensor(value):
        return (id(value), value._version, value.shape, value.dtype, value.device)
    return None


#: the last validated targets, with the arguments they came from (kept alive, so their ids
#: stay theirs): a training loop over one fixed batch validates it once
_LAST: list[tuple[tuple[Any, ...], tuple[Any, ...], Targets]] = []


def prepare(x: Any, y: Any, dydx: Any, *, weight: Any, mask: Any,
            directional: tuple[Any, Any] | None, projected: bool) -> Targets:
    """Validated targets; every error names the shape or value that would be accepted.
    The same tensors (unchanged in place) as in the last call give the last result."""
    args = (x, y, dydx, weight, mask, *(directional if isinstance(directional, tuple) and
                                         len(directional) == 2 else (directional, None)))
    sigs = tuple(_signature(a) for a in args)
    if None in sigs or torch.compiler.is_compiling():
        return _prepare(x, y, dydx, weight=weight, mask=mask, directional=directional,
                        projected=projected)
    key = (projected, *sigs)
    last = _LAST[0] if _LAST else None  # read once: another thread may replace it
    if last is not None and last[0] == key:
        return last[2]
    t = _prepare(x, y, dydx, weight=weight, mask=mask, directional=directional,
                 projected=projected)
    _LAST[:] = [(key, args, t)]
    return t


def _prepare(x: Any, y: Any, dydx: Any, *, weight: Any, mask: Any,
             directional: tuple[Any, Any] | None, projected: bool) -> Targets:
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"x must be a tensor (B, n), got {type(x).__name__}; convert "
                                "with torch.as_tensor(x)")
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ShapeError(f"x must be a non-empty batch (B, n) or (B,), got shape "
                         f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0)")
    if not x.dtype.is_floating_point:
        raise ArgumentTypeError(f"x must be floating point to be differentiated, got "
                                f"{x.dtype}; convert with x.double()")
    if not _validate.all_finite(x.detach()):
        raise NonFiniteInputError("x holds NaN or inf values; drop those samples")
    B = x.shape[0]
    n = 1 if x.ndim == 1 else x.shape[1]
    yt = _tensor(y, "y", x)
    if yt.ndim == 1:
        one = True
        yt = _shape(yt, "y", [(B,)]).unsqueeze(1)
    else:
        one = False
        _shape(yt, "y", [(B, yt.shape[1] if yt.ndim == 2 else 1)])
    m = yt.shape[1]
    if not _validate.all_finite(yt):
        raise NonFiniteInputError("y holds NaN or inf values; drop those samples (missing "
                                  "values cannot be fitted)")
    if isinstance(weight, bool) or not isinstance(weight, (int, float, torch.Tensor)):
        raise ArgumentTypeError(f"weight must be a float or a tensor of weights, got "
                                f"{type(weight).__name__}")
    w: float | torch.Tensor
    if isinstance(weight, torch.Tensor):
        w = weight.to(device=x.device, dtype=x.dtype)
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise InvalidOptionError("weight must be finite and ≥ 0 everywhere")
    else:
        w = float(weight)
        if not w >= 0 or w == float("inf"):
            raise InvalidOptionError(f"weight must be finite and ≥ 0, got {weight}")
    full_shape = (B, m, n)
    if isinstance(w, torch.Tensor):
        span = (B, m, 1) if projected else full_shape
        _broadcast(w, "weight", span, "(B, m, 1) in projected mode, else (B, m, n) =" if
                   projected else "(B, m, n) =")
    if directional is not None:
        return _directional(x, yt, dydx, mask, w, directional, one, B, m, n)
    D: torch.Tensor | None = None
    known: torch.Tensor | None = None
    if dydx is not None:
        D = _tensor(dydx, "dydx", x)
        D = _shape(D, "dydx", [full_shape] + ([(B, n)] if one else [])
                   + ([(B,)] if one and x.ndim == 1 else []))
        D = D.reshape(full_shape)
        if bool(torch.isinf(D).any()):
            raise NonFiniteInputError("dydx holds inf entries; mark unknown partials with NaN "
                                      "or mask=False instead")
        nan = torch.isnan(D)
        if mask is not None:
            if projected:
                raise InvalidOptionError("mask= needs mode='full': a directional derivative "
                                         "needs every partial of its direction")
            mk = _tensor(mask, "mask", x, torch.bool)
            known = _broadcast(mk, "mask", full_shape, "dydx's shape") & ~nan
        elif bool(nan.any()):
            if projected:
                raise InvalidOptionError("dydx has NaN (missing) partials; mode='projected' "
                                         "needs complete Jacobians: use mode='full'")
            known = ~nan
        if known is not None:
            D = torch.where(known, D, torch.zeros((), dtype=D.dtype, device=D.device))
    elif mask is not None:
        raise InvalidOptionError("mask= marks the known entries of dydx; pass dydx too")
    return Targets(x, yt, D, known, w, B, m, n)


def _directional(x: torch.Tensor, yt: torch.Tensor, dydx: Any, mask: Any,
                 w: float | torch.Tensor, directional: tuple[Any, Any], one: bool, B: int,
                 m: int, n: int) -> Targets:
    if dydx is not None or mask is not None:
        raise InvalidOptionError("give either dydx (full Jacobians) or directional=(V, T), "
                                 "not both; mask= applies to dydx only")
    if not isinstance(directional, tuple) or len(directional) != 2:
        raise ArgumentTypeError("directional must be a pair (V, T): directions V (k, n) or "
                                "(B, k, n) and directional derivatives T (B, m, k)")
    V = _tensor(directional[0], "directional V", x)
    if V.ndim == 2:
        V = V.unsqueeze(0).expand(B, *V.shape)
    k = V.shape[1] if V.ndim == 3 else 0
    V = _shape(V, "directional V", [(B, k, n)])
    T = _tensor(directional[1], "directional T", x)
    T = _shape(T, "directional T", [(B, m, k)] + ([(B, k)] if one else [])).reshape(B, m, k)
    if not (bool(torch.isfinite(V).all()) and bool(torch.isfinite(T).all())):
        raise NonFiniteInputError("directional=(V, T) holds NaN or inf; drop those samples")
    return Targets(x, yt, None, None, w, B, m, n, V, T)
