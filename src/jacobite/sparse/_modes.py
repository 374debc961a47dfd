"""Which sparse modes give the Jacobian ``f`` means, and where a plan's pattern holds.

Every mode must give the same Jacobian (docs/conventions.md, *Semantics*). Reverse mode treats
what ``f`` computes with gradients off (``torch.no_grad``) as a constant and is the one that can
follow every op; forward passes cannot follow ops without a forward-mode derivative
(``torch.cdist``), old-style custom Functions, or random draws under ``vmap``. So:

- :func:`resolve` turns ``mode="auto"`` into ``"reverse"`` for a pattern that needs reverse
  semantics, and refuses an explicit ``"forward"`` / ``"bidirectional"`` there;
- :func:`forward_passes` re-raises a failure of the forward passes as
  :class:`~jacobite.errors.UnsupportedOperationError` naming ``mode="reverse"``;
- :func:`followed_by_ad` re-raises a value leaving torch (``.numpy()``), which no mode can
  differentiate, as :class:`~jacobite.errors.UnsupportedOperationError` naming the remedy;
- :func:`warn_if_moved` warns (:class:`~jacobite.errors.LocalPatternWarning`) whenever a plan
  whose pattern is local is evaluated at a point other than the one it was found at.

>>> resolve("auto", ())
'auto'
>>> resolve("auto", ("sum ran with gradients off",))
'reverse'
"""

from __future__ import annotations

import contextlib
import sys
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .._compile import lazy_dispatch_guard
from ..errors import JacobiteError, LocalPatternWarning, UnsupportedOperationError
from ._select import SparseMode
from ._watch import APPLY_CODE

__all__ = ["followed_by_ad", "forward_passes", "needs_reverse_of", "resolve", "resolve_hessian",
           "warn_if_moved"]


def resolve(mode: SparseMode, needs_reverse: tuple[str, ...]) -> SparseMode:
    """The mode to prepare: ``"reverse"`` for ``"auto"`` when ``needs_reverse`` says why only
    reverse mode gives the Jacobian; an explicit forward or bidirectional mode there raises."""
    if not needs_reverse or mode == "reverse":
        return mode
    if mode == "auto":
        return "reverse"
    raise UnsupportedOperationError(
        f"mode={mode!r} cannot give this Jacobian: f computes part of its output with gradients "
        f"off ({needs_reverse[0]}); reverse mode treats that part as a constant, forward passes "
        "would differentiate through it, and every mode must give the same Jacobian. Use "
        "mode='reverse' or mode='auto', or write the constant with .detach(), which every "
        "mode honours")


@lazy_dispatch_guard
class _GradOff(TorchDispatchMode):
    """Notices an op on a value depending on x that runs with gradients off, outside a custom
    Function's forward (whose derivative comes from its backward)."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.seen = ""
        self._live: dict[int, weakref.ref[torch.Tensor]] = {id(x): weakref.ref(x)}

    def _is_live(self, t: object) -> bool:
        ref = self._live.get(id(t)) if isinstance(t, torch.Tensor) else None
        return ref is not None and ref() is t

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(self._is_live(t) for t in tree_flatten((args, kwargs))[0]):
            if not self.seen and not torch.is_grad_enabled() and not _in_custom_forward():
                self.seen = f"{func.overloadpacket.__name__} ran with gradients off"
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    self._live[id(t)] = weakref.ref(t)
        return out


def _in_custom_forward() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is APPLY_CODE:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def resolve_hessian(vectorize: bool | str, needs_reverse: tuple[str, ...]) -> bool:
    """``vectorize`` for a Hessian plan of an ``f`` that computes with gradients off: the
    engine loop (reverse over reverse); an explicit ``True`` (forward over reverse) raises."""
    if vectorize is True:
        raise UnsupportedOperationError(
            f"vectorize=True computes Hessian-vector products forward over reverse, which "
            f"differentiates through what f computes with gradients off ({needs_reverse[0]}), "
            "unlike reverse mode; pass vectorize=False or 'auto', or write the constant with "
            ".detach(), which every mode honours")
    return False


def needs_reverse_of(f: Callable[[torch.Tensor], Any], x: torch.Tensor) -> tuple[str, ...]:
    """Why only reverse mode fits ``f`` (one probing evaluation), for a pattern given by hand."""
    xin = x.detach().clone()
    mode = _GradOff(xin)
    with torch.enable_grad(), mode:
        f(xin)
    return (mode.seen,) if mode.seen else ()


_ESCAPES = ("numpy()", "doesn't have storage", "does not have storage")


def _escape(exc: BaseException, forward: bool = False) -> UnsupportedOperationError | None:
    """The typed error for a value that leaves torch during evaluation, else ``None``; in the
    batched forward passes even a detached value cannot leave (it has no storage there)."""
    text = str(exc)
    if not isinstance(exc, RuntimeError) or not any(n in text for n in _ESCAPES):
        return None
    first = text.strip().splitlines()[0][:200] if text.strip() else ""
    detached = ("; a constant read out with v.detach().numpy() works in mode='reverse' (or "
                "mode='auto', which falls back to reverse)" if forward else "")
    return UnsupportedOperationError(
        "f leaves torch (calls .numpy()), so automatic differentiation cannot follow it; write "
        "it with torch operations, or use jacobite.numeric.jacobian for black-box functions"
        f"{detached} [torch said: {first}]")


@contextlib.contextmanager
def followed_by_ad() -> Iterator[None]:
    """Evaluate a plan's passes; ``f`` leaving torch (``.numpy()`` on a value depending on x,
    which the detector allows as a local pattern) becomes a typed error naming the remedy."""
    try:
        yield
    except JacobiteError:
        raise
    except RuntimeError as exc:
        typed = _escape(exc)
        if typed is None:
            raise
        raise typed from exc


@contextlib.contextmanager
def forward_passes(mode: str) -> Iterator[None]:
    """Run a plan's forward passes; a failure (an op without a forward-mode derivative, a custom
    Function torch.func cannot transform) becomes a typed error naming ``mode="reverse"`` (for a
    Hessian plan, ``vectorize=False``)."""
    try:
        yield
    except JacobiteError:
        raise
    except (RuntimeError, NotImplementedError) as exc:
        typed = _escape(exc, forward=True)
        if typed is not None:
            raise typed from exc
        fix = ("prepare_hessian with vectorize=False (reverse over reverse through the autograd "
               "engine)" if mode == "hessian" else "mode='reverse' (or mode='auto', which falls "
               "back to reverse)")
        raise UnsupportedOperationError(
            f"the forward passes of this {mode}-mode sparse plan failed: f uses an operation "
            f"forward-mode AD (under vmap) cannot follow ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); prepare the plan with "
            f"{fix}") from exc


def _same_point(x: torch.Tensor, x0: torch.Tensor) -> bool:
    if x.shape != x0.shape:
        return False
    return bool(torch.equal(x.detach().to(device=x0.device, dtype=x0.dtype), x0))


def warn_if_moved(x: torch.Tensor, x0: torch.Tensor | None, why: str = "") -> None:
    """Warn when a local pattern (found at ``x0``) is used at a different ``x``."""
    if x0 is None or _same_point(x, x0):
        return
    warnings.warn("this sparse plan's pattern is local: it was found at the preparation point "
                  f"({why or 'value-dependent control flow'}) and may miss nonzeros at this x; "
                  "call jacobite.sparse.prepare(f, x) at this x, pass a pattern that holds "
                  "everywhere (pattern=), or use the dense jacobite.jacobian(f, x)",
                  LocalPatternWarning, stacklevel=4)
