"""Adapters: any flow library's transform as one map ``x -> (y, ladj)``, ``ladj`` of shape ``(B,)``.

A registry of :class:`Adapter` entries, each a name, a predicate that recognises a transform by
its type, and a wrapper. The libraries (zuko, nflows, normflows, FrEIA) are never imported here:
a predicate looks its library's class up in ``sys.modules``, so a transform of a library that
was never imported is simply never one of its instances. The first entry whose predicate holds
wins; a plain callable returning ``(y, ladj)`` comes last.

>>> import torch
>>> from jacobite.transforms.flows.adapters import adapt
>>> t = torch.distributions.ExpTransform()
>>> kind, fwd = adapt(t)
>>> y, ladj = fwd(torch.zeros(2, 3))
>>> kind, tuple(ladj.shape)
('torch.distributions', (2,))
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import ArgumentTypeError, InvalidOptionError, OutputTypeError

__all__ = ["ADAPTERS", "Adapter", "Forward", "adapt", "register"]

#: a transform as the checker sees it: a batch ``(B, ...)`` to ``(y (B, ...), ladj (B,))``
Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Adapter:
    """One kind of transform: ``accepts(t)`` recognises it, ``wrap(t)`` gives its forward map."""

    name: str
    accepts: Callable[[Any], bool]
    wrap: Callable[[Any], Forward]


def _class(module: str, name: str) -> type | None:
    """``module.name`` if that module is already imported, else None (nothing is imported)."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _instance_of(module: str, name: str) -> Callable[[Any], bool]:
    def accepts(t: Any) -> bool:
        cls = _class(module, name)
        return cls is not None and isinstance(t, cls)
    return accepts


def per_sample(ladj: Any, x: torch.Tensor) -> torch.Tensor:
    """A log-det as one value per sample: a scalar is broadcast, trailing dims are summed."""
    if not isinstance(ladj, torch.Tensor):
        if isinstance(ladj, (int, float)):
            return torch.full((x.shape[0],), float(ladj), dtype=x.dtype, device=x.device)
        raise OutputTypeError(f"the transform's log-det must be a tensor, got "
                              f"{type(ladj).__name__}; return (y, ladj) with ladj of shape (B,)")
    if ladj.dim() == 0:
        return ladj.expand(x.shape[0])
    if ladj.shape[0] != x.shape[0]:
        raise OutputTypeError(f"the transform's log-det has shape {tuple(ladj.shape)} for a "
                              f"batch of {x.shape[0]}; return one value per sample, shape (B,)")
    return ladj.reshape(ladj.shape[0], -1).sum(1)


def _pair(out: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, ladj)`` from what a forward call returned; y may be wrapped in a list or tuple."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise OutputTypeError(f"the transform returned {type(out).__name__}; it must return a "
                              "pair (y, ladj), or pass a torch.distributions / zuko / nflows / "
                              "normflows / FrEIA transform")
    y, ladj = out
    if isinstance(y, (tuple, list)):
        if len(y) != 1:
            raise OutputTypeError(f"the transform returned {len(y)} outputs; check_logdet needs "
                                  "one: wrap it so it returns a single tensor y")
        y = y[0]
    if not isinstance(y, torch.Tensor):
        raise OutputTypeError(f"the transform's output must be a tensor, got "
                              f"{type(y).__name__}; return (y, ladj)")
    return y, per_sample(ladj, x)


# ---- the libraries ------------------------------------------------------------------------

def _zuko_transform(t: Any) -> Forward:
    def fwd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, ladj = t.call_and_ladj(x)
        return y, per_sample(ladj, x)
    return fwd


def _zuko_lazy(t: Any) -> Forward:
    lazy = t.transform if _instance_of("zuko.lazy", "Flow")(t) else t
    return lambda x: _zuko_transform(lazy())(x)


def _torch_distribution(t: torch.distributions.Transform) -> Forward:
    def fwd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = t(x)
        return y, per_sample(t.log_abs_det_jacobian(x, y), x)
    return fwd


def _freia(t: Any) -> Forward:
    return lambda x: _pair(t([x]) if not _is_sequence_inn(t) else t(x), x)


def _is_sequence_inn(t: Any) -> bool:
    return _instance_of("FrEIA.framework.sequence_inn", "SequenceINN")(t)


def _pair_call(t: Any) -> Forward:
    return lambda x: _pair(t(x), x)


def _is_zuko_transform(t: Any) -> bool:
    # zuko gives torch's own Transform a call_and_ladj: recognise zuko's by where they live
    return (_instance_of("zuko.transforms", "Transform")(t) and hasattr(t, "call_and_ladj")
            and type(t).__module__.split(".")[0] == "zuko")


def _is_zuko_lazy(t: Any) -> bool:
    return (_instance_of("zuko.lazy", "LazyTransform")(t)
            or _instance_of("zuko.lazy", "Flow")(t))


def _is_torch_distribution(t: Any) -> bool:
    return isinstance(t, torch.distributions.Transform)


ADAPTERS: list[Adapter] = [
    Adapter("zuko", _is_zuko_transform, _zuko_transform),
    Adapter("zuko.lazy", _is_zuko_lazy, _zuko_lazy),
    Adapter("torch.distributions", _is_torch_distribution, _torch_distribution),
    Adapter("FrEIA", _instance_of("FrEIA.modules.base", "InvertibleModule"), _freia),
    Adapter("nflows", _instance_of("nflows.transforms.base", "Transform"), _pair_call),
    Adapter("normflows", _instance_of("normflows.flows.base", "Flow"), _pair_call),
    Adapter("callable", callable, _pair_call),
]


def register(adapter: Adapter) -> None:
    """Put ``adapter`` ahead of the built-in ones (a later registration wins over an earlier)."""
    if not isinstance(adapter, Adapter):
        raise ArgumentTypeError(f"register takes an Adapter, got {type(adapter).__name__}; "
                                "e.g. Adapter('mine', lambda t: isinstance(t, Mine), wrap)")
    ADAPTERS.insert(0, adapter)


def kinds() -> tuple[str, ...]:
    """The names ``kind=`` accepts: ``'auto'`` and each adapter's."""
    return ("auto", *(a.name for a in ADAPTERS))


def adapt(transform: Any, kind: str = "auto") -> tuple[str, Forward]:
    """``(adapter name, forward map)`` for ``transform``; ``kind`` forces one adapter."""
    if kind != "auto":
        names = kinds()
        if not isinstance(kind, str) or kind not in names:
            raise InvalidOptionError(f"kind must be one of {names}, got {kind!r}")
        return kind, next(a for a in ADAPTERS if a.name == kind).wrap(transform)
    for a in ADAPTERS:
        if a.accepts(transform):
            return a.name, a.wrap(transform)
    raise ArgumentTypeError(
        f"check_logdet cannot call a {type(transform).__name__}: pass a torch.distributions, "
        "zuko, nflows, normflows or FrEIA transform, or a callable x -> (y, ladj)")
