"""Eager regions under ``torch.compile`` that cost nothing until compilation is in use.

``torch.compiler.disable`` imports ``torch._dynamo`` (about a second) the moment it wraps a
function, and torch wraps every ``TorchDispatchMode.__torch_dispatch__`` so that its first call
imports it too. Both only matter while something is being compiled, and nothing can be compiled
before ``torch._dynamo`` is loaded; so the wrappers here run the plain function until then and
the dynamo-disabled one from then on.

* :func:`eager_under_compile` — a decorator: ``fn`` runs eagerly (a graph break) under
  ``torch.compile``, like ``torch.compiler.disable(fn)``.
* :func:`lazy_dispatch_guard` — a class decorator for a ``TorchDispatchMode`` subclass: its
  ``__torch_dispatch__`` is kept out of compilation the same way, without the eager import.

>>> import sys, torch
>>> @eager_under_compile
... def double(t):
...     return 2 * t
>>> double(torch.ones(2)).tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import torch

__all__ = ["eager_under_compile", "lazy_dispatch_guard"]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def _compiling_possible() -> bool:
    """Whether ``torch._dynamo`` is loaded (without it nothing can be compiling)."""
    return "torch._dynamo" in sys.modules


def eager_under_compile(fn: F) -> F:
    """``fn`` as ``torch.compiler.disable(fn)``, importing ``torch._dynamo`` only once loaded.

    >>> eager_under_compile(abs)(-3)
    3
    """
    disabled: Callable[..., Any] | None = None

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        if not _compiling_possible():
            return fn(*args, **kwargs)
        if disabled is None:
            disabled = torch.compiler.disable(fn)
        return disabled(*args, **kwargs)

    # dynamo, when it meets ``run`` while tracing, breaks the graph and calls it eagerly
    run._torchdynamo_disable = True  # type: ignore[attr-defined]
    return cast(F, run)


def lazy_dispatch_guard(cls: C) -> C:
    """``cls.__torch_dispatch__`` kept out of compilation without importing ``torch._dynamo``.

    torch wraps the method of every ``TorchDispatchMode`` subclass so that its first call
    imports ``torch._dynamo``; this calls the method itself until ``torch._dynamo`` is loaded
    and torch's wrapper from then on.

    >>> from torch.utils._python_dispatch import TorchDispatchMode
    >>> @lazy_dispatch_guard
    ... class Count(TorchDispatchMode):
    ...     calls = 0
    ...     def __torch_dispatch__(self, func, types, args=(), kwargs=None):
    ...         Count.calls += 1
    ...         return func(*args, **(kwargs or {}))
    >>> with Count():
    ...     _ = torch.ones(2) + 1
    >>> Count.calls > 0
    True
    """
    guarded = cls.__dict__["__torch_dispatch__"]
    plain = getattr(guarded, "__wrapped__", guarded)

    @functools.wraps(plain)
    def __torch_dispatch__(self: Any, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        if _compiling_possible():
            return guarded(self, func, types, args, kwargs)
        return plain(self, func, types, args, kwargs)

    cls.__torch_dispatch__ = __torch_dispatch__  # type: ignore[attr-defined]
    return cls
