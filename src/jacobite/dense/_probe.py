"""A cheap look at a function before differentiating it: output sizes and working memory.

One plain forward evaluation runs under a ``TorchDispatchMode`` that adds up the bytes of every
tensor the operations create (an upper bound on the activations a backward pass keeps) and
notices when a value that depends on the input leaves torch as a Python number (``.item()``,
``float()``, ``bool()``), which silently drops that dependency from any Jacobian, and when f
computes from its input with gradients switched off (``torch.no_grad``), which only reverse mode
honours. Results are
cached per function and input signature, so repeated Jacobians of the same function pay for it
once. The probe only guides the choice of mode and chunk size; results never depend on it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .._compile import lazy_dispatch_guard

# torch.autograd.Function.apply runs a custom function's forward with gradients off; its
# derivatives come from its own backward / jvp, so that is not a no_grad region of the user's.
_APPLY_CODE = getattr(getattr(torch.autograd.Function.apply, "__func__", None), "__code__", None)
# The autograd engine running inside f (torch.autograd.grad, .functional, .backward): its
# backward formulas run with gradients off too, and a transform cannot follow it at all.
_ENGINE_CODE = getattr(getattr(torch.autograd.graph, "_engine_run_backward", None), "__code__",
                       None)


def _grad_off_origin() -> str | None:
    """Why gradients are off here: ``"custom"`` (a custom Function's forward), ``"autograd"``
    (the autograd engine run by f) or None (a no_grad region of f's own)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is _APPLY_CODE:
            return "custom"
        if frame.f_code is _ENGINE_CODE:
            return "autograd"
        frame = frame.f_back  # type: ignore[assignment]
    return None


_INTERNAL = threading.local()


@contextlib.contextmanager
def own_read() -> Iterator[None]:
    """Mark a value read of jacobite's own (the finite-input check of a nested call), which an
    enclosing probe must not report as f leaking a value into Python."""
    before = getattr(_INTERNAL, "active", False)
    _INTERNAL.active = True
    try:
        yield
    finally:
        _INTERNAL.active = before


def probing() -> bool:
    """Whether a probe of an enclosing jacobite call is running f here (a nested Jacobian must
    then not run the autograd engine itself, which the probe would report as f doing so)."""
    return getattr(_INTERNAL, "probing", 0) > 0


_SCALAR_OPS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.is_nonzero.default}

#: Operations whose vectorised (vmapped) backward torch computes wrongly: a Jacobian through them is
#: taken one VJP at a time. ``_cdist_forward`` is torch.cdist's direct kernel (p ≠ 2, or small
#: inputs); its batched backward returns wrong values, while the matrix-multiply route
#: (``_euclidean_dist``) and ``pdist`` are right.
VMAP_WRONG_BACKWARD = {torch.ops.aten._cdist_forward.default}

#: Operations torch cannot differentiate in forward mode: ``mode="auto"`` picks reverse for them.
NO_FORWARD_AD = {torch.ops.aten._cdist_forward.default}


@dataclass(frozen=True)
class Probe:
    """What one forward evaluation revealed."""

    out_numel: int
    out_itemsize: int
    work_bytes: int  # bytes of all tensors created during the forward pass
    leaks_scalar: bool  # an input-dependent value was turned into a Python number
    single_tensor: bool = False  # f returned one bare tensor (enables the engine's fast path)
    mutates_input: bool = False  # f changed its input in place
    # f computed from its input with gradients switched off (torch.no_grad, inference_mode,
    # set_grad_enabled(False)); reverse mode treats that part as a constant, forward mode
    # (a JVP) does not, so only reverse mode gives the Jacobian the user means
    stops_gradient: bool = False
    # f draws random numbers (dropout, torch.rand): every evaluation differs, so the Jacobian is
    # that of one draw, which only a single evaluation (reverse mode) gives consistently
    draws_random: bool = False
    # f runs the autograd engine itself (torch.autograd.grad / .functional / .backward), which no
    # transform can follow: reverse mode reports it; forward mode would silently misread it
    runs_autograd: bool = False
    # f uses an operation whose vmapped backward torch gets wrong (VMAP_WRONG_BACKWARD): reverse
    # mode then takes one VJP at a time
    vmap_wrong_backward: bool = False
    # f uses an operation without a forward-mode derivative in torch (NO_FORWARD_AD)
    no_forward_ad: bool = False
    # f writes a value that depends on its input into a tensor it did not create (a global, a
    # closure variable, a module's buffer): torch.func refuses that; plain autograd would tie
    # the tensor into the graph, so the constant route (_constant) is not taken
    writes_captured: bool = False

    @property
    def reverse_only(self) -> bool:
        """Only reverse mode gives the Jacobian the user means (see the flags above)."""
        return (self.stops_gradient or self.draws_random or self.runs_autograd
                or self.no_forward_ad)


@lazy_dispatch_guard
class _Recorder(TorchDispatchMode):
    def __init__(self, inputs: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.bytes = 0
        self.leak = False
        self.stops = False
        self.random = False
        self.autograd = False
        self.vmap_wrong = False
        self.no_forward = False
        self.captured = False
        # id -> weak reference: tensors compare elementwise, so they cannot go in a WeakSet
        self._tainted: dict[int, weakref.ref[torch.Tensor]] = {}
        self._made: dict[int, weakref.ref[torch.Tensor]] = {}  # created while f runs
        for t in inputs:
            self._taint(t)

    def _taint(self, t: torch.Tensor) -> None:
        self._tainted[id(t)] = weakref.ref(t)

    def _is_tainted(self, t: object) -> bool:
        if not isinstance(t, torch.Tensor):
            return False
        ref = self._tainted.get(id(t))
        return ref is not None and ref() is t

    def _writes_outside(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether ``func`` writes into a tensor that f neither received nor created."""
        for i, arg in enumerate(func._schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write:
                continue
            t = args[i] if i < len(args) else kwargs.get(arg.name)
            if isinstance(t, torch.Tensor) and not self._is_tainted(t):
                ref = self._made.get(id(t))
                if ref is None or ref() is not t:
                    return True
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if torch.Tag.nondeterministic_seeded in func.tags:
            self.random = True
        flat_in, _ = tree_flatten((args, kwargs))
        tainted = any(self._is_tainted(t) for t in flat_in)
        if tainted:
            if func in VMAP_WRONG_BACKWARD:
                self.vmap_wrong = True
            if func in NO_FORWARD_AD:
                self.no_forward = True
            if func in _SCALAR_OPS and not getattr(_INTERNAL, "active", False):
                self.leak = True
            if func._schema.is_mutable and not self.captured:
                self.captured = self._writes_outside(func, args, kwargs)
            if not (self.stops or self.autograd) and not torch.is_grad_enabled():
                origin = _grad_off_origin()
                self.stops = self.stops or origin is None
                self.autograd = self.autograd or origin == "autograd"
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.bytes += t.numel() * t.element_size()
                self._made.setdefault(id(t), weakref.ref(t))
                if tainted:
                    self._taint(t)
        return out


def run_probe(call: Callable[..., Any], leaves: tuple[torch.Tensor, ...]) -> tuple[Probe, Any]:
    """Evaluate ``call(*leaves)`` once under the recorder; return the probe and the output."""
    inputs = tuple(t.detach().clone() for t in leaves)  # f must never touch the caller's tensors
    versions = tuple(t._version for t in inputs)
    rec = _Recorder(inputs)
    # Grad mode on, as inside a transform, so that f's own no_grad regions show; the inputs do not
    # require grad, so nothing is recorded for them.
    depth = getattr(_INTERNAL, "probing", 0)
    _INTERNAL.probing = depth + 1  # a nested jacobite call takes the torch.func route (probing())
    try:
        with torch.enable_grad(), rec:
            out = call(*inputs)
    finally:
        _INTERNAL.probing = depth
    mutated = any(t._version != v for t, v in zip(inputs, versions, strict=True))
    out_leaves = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    numel = sum(t.numel() for t in out_leaves)
    itemsize = max((t.element_size() for t in out_leaves), default=8)
    single = isinstance(out, torch.Tensor)
    return Probe(numel, itemsize, rec.bytes, rec.leak, single, mutated, rec.stops,
                 rec.random, rec.autograd, rec.vmap_wrong,
                 rec.no_forward, rec.captured), out


class ProbeCache:
    """A small LRU cache of probes (and plans) keyed by function identity and input signature."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()

    @staticmethod
    def _identity(f: Callable[..., Any]) -> tuple[Callable[..., Any], Any] | None:
        """``(fn, state)`` when ``f`` is a bound method whose owner defines
        ``jacobian_identity()``: ``f`` computes what ``fn`` computes given ``state`` (the values
        besides ``x`` it depends on), so a probe keyed on them serves every such owner — a
        solver's wrapper of the user's function, made afresh for each solve."""
        ident = getattr(getattr(f, "__self__", None), "jacobian_identity", None)
        return ident() if callable(ident) else None

    @staticmethod
    def key(f: Callable[..., Any], args: tuple[Any, ...], extra: Any) -> Any | None:
        delegate = ProbeCache._identity(f)
        if delegate is not None:
            fn, state = delegate
            return ProbeCache.key(fn, (tuple(args), state),
                                  (getattr(f, "__name__", ""), "identity", extra))
        owner = getattr(f, "__self__", None)
        ident = (id(getattr(f, "__func__", f)), id(owner)) if owner is not None else (id(f),)
        if all(isinstance(a, torch.Tensor) for a in args):
            sig_t = tuple((a.shape, a.dtype, a.device) for a in args)
            return (ident, sig_t, extra)
        leaves, spec = tree_flatten(args)
        sig: list[Any] = []
        for leaf in leaves:
            if isinstance(leaf, torch.Tensor):
                sig.append((tuple(leaf.shape), leaf.dtype, leaf.device))
            else:
                try:
                    hash(leaf)
                except TypeError:
                    return None  # unhashable non-tensor argument: do not cache
                sig.append((type(leaf), leaf))
        return (ident, str(spec), tuple(sig), extra)

    @staticmethod
    def _targets(f: Callable[..., Any]) -> tuple[Any, ...]:
        """The objects whose identity the key holds: the function, and a bound method's owner
        (a key must not outlive either, or a reused id would find another one's probe)."""
        delegate = ProbeCache._identity(f)
        if delegate is not None:
            return ProbeCache._targets(delegate[0])
        owner = getattr(f, "__self__", None)
        func = getattr(f, "__func__", f)
        return (func,) if owner is None else (func, owner)

    def get(self, key: Any, f: Callable[..., Any]) -> Any:
        if key is None or key not in self._data:
            return None
        refs, probe = self._data[key]
        if any(ref() is not t for ref, t in zip(refs, self._targets(f), strict=True)):
            del self._data[key]  # an id was reused by another object
            return None
        self._data.move_to_end(key)
        return probe

    def put(self, key: Any, f: Callable[..., Any], probe: Any) -> None:
        if key is None:
            return
        try:
            refs = tuple(weakref.ref(t) for t in self._targets(f))
        except TypeError:
            return
        self._data[key] = (refs, probe)
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


PROBES = ProbeCache()
