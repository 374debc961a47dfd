"""What the aten-level tracker of :mod:`jacobite.sparse.detect` cannot see on its own.

Two things happen above the aten ops the tracker follows:

- **Values leaving torch.** ``.tolist()``, ``.numpy()``, ``np.asarray(t)`` (and ``.item()``,
  ``float()``, ``int()``, ``bool()``, ``operator.index``) turn a tensor into Python or NumPy
  values without an aten op for some of them; a branch or a new tensor built from them depends on
  the values of ``x``, so the pattern then holds only near ``x``. A ``TorchFunctionMode`` sees
  these calls.
- **Custom ``torch.autograd.Function``.** Its derivative comes from its own ``backward`` (or
  ``jvp``), not from the operations of its ``forward``: a straight-through ``round`` has a zero
  derivative op by op, a forward computed in NumPy has no op at all. The outputs of every
  ``Function.apply`` are therefore taken to depend on everything its inputs depend on
  (conservative); a profile hook sees ``apply`` return, with its arguments and outputs.

>>> import torch
>>> from jacobite.sparse import detect
>>> class Round(torch.autograd.Function):
...     @staticmethod
...     def forward(ctx, v):
...         return v.round()
...     @staticmethod
...     def backward(ctx, g):
...         return g
>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     detect(lambda v: Round.apply(v), torch.zeros(3)).nnz
9
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

__all__ = ["APPLY_CODE", "ESCAPES", "Watched", "watch"]

# Function.apply (a classmethod): its code object identifies a custom Function's call frame;
# the autograd engine runs a custom backward through BackwardCFunction.apply
APPLY_CODE = torch.autograd.Function.apply.__func__.__code__  # type: ignore[attr-defined]
_BACKWARD_CODE = torch.autograd.function.BackwardCFunction.apply.__code__

#: Tensor methods through which values leave torch as Python or NumPy values.
ESCAPES = frozenset({"tolist", "numpy", "__array__", "item", "__float__", "__int__", "__bool__",
                     "__index__", "__complex__"})


class Watched(Protocol):
    """The part of the tracker the watchers update."""

    n: int
    local_reasons: list[str]
    custom_functions: list[str]
    custom_depth: int

    def tainted(self, t: Any) -> bool: ...
    def deps(self, t: Any) -> Any: ...
    def set_outputs(self, outs: list[torch.Tensor], every: sp.csr_matrix | None, taint: bool,
                    inputs: list[torch.Tensor]) -> None: ...


class _Escapes(TorchFunctionMode):
    """Marks the pattern local when a value depending on x leaves torch."""

    def __init__(self, tracker: Watched) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_function__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        name = getattr(func, "__name__", "")
        if name in ESCAPES and self.tracker.custom_depth == 0:
            flat = tree_flatten((args, kwargs or {}))[0]
            if any(self.tracker.tainted(t) for t in flat):
                self.tracker.local_reasons.append(
                    f".{name}(): a value depending on x left torch")
        return func(*args, **(kwargs or {}))


def _union_row(tracker: Watched, tensors: list[torch.Tensor]) -> sp.csr_matrix | None:
    """One row: every input index any of ``tensors`` depends on (None: none)."""
    every = None
    for t in tensors:
        d = tracker.deps(t)
        if d is not None:
            row = sp.csr_matrix(np.asarray(d.sum(axis=0) > 0))
            every = row if every is None else (every + row).tocsr()
    return every


def _on_return(tracker: Watched, frame: FrameType, result: Any, backward: bool) -> None:
    """A custom Function's ``apply`` (or, in a gradient, its backward) returned ``result``: its
    outputs depend on everything its inputs depend on; a backward's on every input of ``f``
    (what its ``ctx`` holds is not known)."""
    loc = frame.f_locals
    owner = loc.get("self") if backward else loc.get("cls")
    name = getattr(owner, "__name__", None) or type(owner).__name__
    if name not in tracker.custom_functions:
        tracker.custom_functions.append(name)
    inputs = [t for t in tree_flatten((loc.get("args", ()), loc.get("kwargs", {})))[0]
              if isinstance(t, torch.Tensor)]
    outs = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
    taint = backward or any(tracker.tainted(t) for t in inputs)
    every = _union_row(tracker, inputs)
    if backward:
        every = sp.csr_matrix(np.ones((1, tracker.n), dtype=bool))
    tracker.set_outputs(outs, every, taint, inputs)


@contextlib.contextmanager
def watch(tracker: Watched) -> Iterator[None]:
    """Watch escapes and custom Functions while ``f`` runs (enter inside the dispatch mode's
    caller, around the call of ``f``). An active profile function is chained, then restored."""
    old: Any = sys.getprofile()
    chain = old if callable(old) else None  # a C-level profiler (cProfile) is paused meanwhile

    def hook(frame: FrameType, event: Any, arg: Any) -> None:
        code = frame.f_code
        if code is APPLY_CODE or code is _BACKWARD_CODE:
            if event == "call":
                tracker.custom_depth += 1
            elif event == "return":
                tracker.custom_depth -= 1
                if arg is not None:  # None: it raised
                    _on_return(tracker, frame, arg, code is _BACKWARD_CODE)
        if chain is not None:
            chain(frame, event, arg)

    sys.setprofile(hook)
    try:
        with _Escapes(tracker):
            yield
    finally:
        if old is None or chain is not None:
            sys.setprofile(old)
        elif callable(getattr(old, "enable", None)):  # cProfile re-installs itself
            old.enable()
        else:  # pragma: no cover - an unknown C-level profiler
            sys.setprofile(None)
