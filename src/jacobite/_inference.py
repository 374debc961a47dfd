"""Entry points called inside ``torch.inference_mode()``: they run with autograd on, on copies.

A Jacobian, and any solver or analysis built on one, needs derivatives of the user's function,
which inference mode switches off, and inference tensors cannot take part in recorded operations
(nor have the version counters the module-state guard reads). Every public entry point
(``jacobite._modules.keeps_state``) therefore runs under ``torch.inference_mode(False)`` when
called in inference mode: the inference tensors among its arguments (``x``, ``x0``, ``args``,
data, bounds) are cloned into normal tensors first, and tracked tensors are detached, so the
results are plain tensors that are not differentiable, as inference mode means. A function
that closes over an inference tensor cannot be differentiated, in inference mode or out of it;
that is refused with :class:`~jacobite.errors.UnsupportedOperationError` naming the fix.

>>> import torch
>>> solve = outside_inference_mode(lambda x: torch.is_inference_mode_enabled())
>>> with torch.inference_mode():
...     solve(torch.ones(2))
False
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.utils._pytree import tree_map

from .errors import UnsupportedOperationError

__all__ = ["outside_inference_mode"]

F = TypeVar("F", bound=Callable[..., Any])

FIX = ("the function uses a tensor created under torch.inference_mode, which autograd cannot "
       "differentiate through; create it outside torch.inference_mode, or .clone() it outside "
       "inference mode (or under torch.inference_mode(False)); inside torch.inference_mode, "
       "tensors passed in args= / kwargs= are copied out of it for you")


def _normal(v: Any) -> Any:
    """An inference tensor cloned into a normal one; a tracked tensor detached."""
    if not isinstance(v, torch.Tensor):
        return v
    if v.is_inference():
        return v.clone()
    return v.detach() if v.requires_grad else v


def _refused(exc: RuntimeError) -> Exception:
    """torch's "Inference tensors cannot be saved..." as the typed refusal; anything else as is."""
    return UnsupportedOperationError(FIX) if "nference tensor" in str(exc) else exc


def outside_inference_mode(fn: F, /) -> F:
    """Decorate an entry point so that it works inside ``torch.inference_mode()`` (see the
    module doc); outside inference mode the call is unchanged, but for a closed-over inference
    tensor refused by name."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            if not torch.is_inference_mode_enabled():
                return fn(*args, **kwargs)
            with torch.inference_mode(False):
                args, kwargs = tree_map(_normal, (args, kwargs))
                return fn(*args, **kwargs)
        except RuntimeError as exc:
            new = _refused(exc)
            if new is exc:
                raise
            raise new from exc
    return run  # type: ignore[return-value]
