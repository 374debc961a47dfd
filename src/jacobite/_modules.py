"""Module state stays as it was: no jacobite call changes an ``nn.Module`` as a side effect.

jacobite evaluates user code several times (a probe, then one pass per mode and chunk), so a
module that changes itself when called (BatchNorm in training mode updating its running
statistics and ``num_batches_tracked``, a counter buffer) would be changed an unspecified number
of times, and the result would depend on that count. :func:`keep_state` watches every module
that runs while it is active — passed directly or closed over by ``f`` — through a global
forward pre-hook: the first time a module runs, its buffers are copied and its training flags,
parameter versions and ``.grad`` references recorded (for it and all its submodules); from then
on, global buffer and parameter registration hooks catch state assigned anew
(``self.n = self.n + 1``). On
every exit, success or exception, anything changed is put back; a changed buffer or parameter
then raises :class:`~jacobite.errors.ModuleStateError` naming the fix (``model.eval()``, or
``torch.func.functional_call`` on copies of the buffers), since a Jacobian that changes the
model is refused rather than silently computed. A training flag flipped after the module's first
call or a ``.grad`` set by a ``backward()`` inside ``f`` is restored without an error (a module
is first seen when it runs, so a flag flipped before that is taken as its state).

Parameters are not copied (that would double a model's memory): an in-place write into one
outside autograd (under ``torch.no_grad``) is detected and reported, not undone. Autograd itself
refuses in-place writes into parameters that require grad. Tensors swapped in for a call by
``functional_call`` are the caller's copies and are left alone. Inside ``torch.compile`` the
guard steps aside (dynamo cannot trace hook registration); the outermost eager jacobite call
still guards.

>>> import torch
>>> bn = torch.nn.BatchNorm1d(2).double()
>>> try:
...     with keep_state():
...         _ = bn(torch.randn(4, 2, dtype=torch.float64))
... except ModuleStateError:
...     pass
>>> int(bn.num_batches_tracked), bn.running_mean.tolist()
(0, [0.0, 0.0])
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_forward_pre_hook,
    register_module_parameter_registration_hook,
)

from ._inference import outside_inference_mode
from .errors import JacobiteError, ModuleStateError

__all__ = ["keep_state", "keeps_state"]

F = TypeVar("F", bound=Callable[..., Any])

_LOCAL = threading.local()
_ABSENT = object()

FIX = ("call model.eval() first (the Jacobian with the running statistics), or, for batch "
       "statistics, evaluate the module with torch.func.functional_call on copies of its buffers")


def _version(t: torch.Tensor) -> int | None:
    try:
        return int(t._version)
    except RuntimeError:  # inference tensors keep no version counter
        return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equality (NaN equals NaN): the comparison that says nothing was changed."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | (a.isnan() & b.isnan())).all())
    return False


def _plain(t: Any) -> bool:
    """A real tensor of the module's own (not a torch.func wrapper swapped in for one call)."""
    return isinstance(t, torch.Tensor) and \
        not torch._C._functorch.is_functorch_wrapped_tensor(t)


def _grad(p: torch.Tensor) -> torch.Tensor | None:
    """``p.grad`` where autograd can fill it (a leaf, or a tensor that retains its grad);
    ``None`` for the non-leaf tensors swapped in for a call (a dual number, a differentiable
    copy), whose ``.grad`` torch warns about reading and never fills."""
    return p.grad if p.is_leaf or p.retains_grad else None


def _folded(owner: str, name: str) -> bool:
    """torch.fx's constant folding (in the traced JVP of ``torch.func.linearize``, which a
    cached ``curvature.ggn`` holds) stores the folded constants on the graph module, or in a
    ``ParameterList`` on it, at the graph's first run: torch's cache, not the model's state."""
    return any(s.startswith("_FX_CONST_FOLDED_ATTRS") for s in (name, owner.rsplit(".", 1)[-1]))


class _Watch:
    """What the modules that ran looked like before they ran, and the way back."""

    def __init__(self, grads: bool) -> None:
        self.grads = grads
        self.seen: set[int] = set()  # modules whose whole tree was recorded
        self.held: list[nn.Module] = []  # keeps them alive while watched
        self.names: dict[int, str] = {}
        self.training: list[tuple[nn.Module, bool]] = []
        self.buffers: dict[int, tuple[nn.Module, str, torch.Tensor, torch.Tensor]] = {}
        self.params: dict[int, tuple[nn.Module, str, torch.Tensor, int | None, Any, Any]] = {}
        self.batchnorm: list[str] = []  # training-mode BatchNorms with running statistics
        # (module id, kind, name) -> [module, tensor it held first, tensor assigned last]
        self.assigned: dict[tuple[int, str, str], list[Any]] = {}

    def reassign(self, module: nn.Module, kind: str, name: str, value: Any) -> None:
        """``self.name = new`` (or register_buffer / register_parameter) inside f: keep the
        tensor it replaces, to put it back."""
        key = (id(module), kind, name)
        if key not in self.assigned:
            held = getattr(module, kind)
            self.assigned[key] = [module, held.get(name, _ABSENT), value]
            self.names.setdefault(id(module), type(module).__name__)
            self.held.append(module)
        else:
            self.assigned[key][2] = value

    def record_tensors(self, module: nn.Module) -> None:
        with torch.no_grad():
            for name, b in module._buffers.items():
                if _plain(b) and id(b) not in self.buffers:
                    assert b is not None
                    self.buffers[id(b)] = (module, name, b, b.detach().clone())
        for name, p in module._parameters.items():
            if _plain(p) and id(p) not in self.params:
                assert p is not None
                g = _grad(p)
                self.params[id(p)] = (module, name, p, _version(p), g,
                                      None if g is None else _version(g))

    def pre_hook(self, module: nn.Module, args: Any) -> None:
        if torch.compiler.is_compiling():
            return
        if id(module) not in self.seen:
            root = self.names.get(id(module), type(module).__name__)
            for name, sub in module.named_modules(remove_duplicate=True):
                if id(sub) in self.seen:
                    continue
                self.seen.add(id(sub))
                self.held.append(sub)
                self.names[id(sub)] = f"{root}.{name}" if name else root
                self.training.append((sub, sub.training))
                self.record_tensors(sub)
        else:
            self.record_tensors(module)  # tensors swapped in since (functional_call)
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.training \
                and module.track_running_stats:
            self.batchnorm.append(f"{self.names[id(module)]} ({type(module).__name__})")

    def restore(self) -> list[str]:
        """Put everything back; return what could not stay silent (changed state)."""
        changed: list[str] = []
        for (_, kind, name), (m, first, last) in self.assigned.items():
            if _folded(self.names[id(m)], name):
                continue
            held = getattr(m, kind)
            if held.get(name, _ABSENT) is not last:
                continue  # put back already (functional_call restores what it swapped)
            if first is _ABSENT:
                del held[name]
            else:
                held[name] = first
            changed.append(f"{kind[1:-1]} {self.names[id(m)]}.{name} (assigned anew)")
        if not self.seen:  # no module ran: nothing to compare (the common, cheap case)
            return changed
        for m, flag in self.training:
            if m.training != flag:
                m.training = flag
        with torch.no_grad():
            for m, name, b, saved in self.buffers.values():
                if m._buffers.get(name) is b and not _same(b, saved):
                    b.copy_(saved)
                    changed.append(f"buffer {self.names[id(m)]}.{name}")
        for m, name, p, version, grad, gversion in self.params.values():
            if m._parameters.get(name) is not p or _folded(self.names[id(m)], name):
                continue
            if version is not None and _version(p) != version:
                changed.append(f"parameter {self.names[id(m)]}.{name} (changed in place; "
                               "jacobite cannot undo that)")
            if not self.grads:
                continue
            if _grad(p) is not grad:
                p.grad = grad
            elif grad is not None and gversion is not None and _version(grad) != gversion:
                changed.append(f"the .grad of {self.names[id(m)]}.{name} (accumulated in place; "
                               "jacobite cannot undo that)")
        return changed


def _refusal(watch: _Watch, changed: list[str], fix: str) -> ModuleStateError:
    if watch.batchnorm:
        return ModuleStateError(
            f"{watch.batchnorm[0]} is in training mode and updates its running statistics on "
            "every forward pass, so evaluating f for a Jacobian would change the model (and the "
            f"result would depend on how often f runs); {fix}. The module was left unchanged")
    return ModuleStateError(
        f"a module changed its own state while f ran ({', '.join(changed[:3])}), so the result "
        "would depend on how often jacobite evaluates f; put the module in eval() mode or make "
        "the update conditional on self.training, or pass the state as an argument. Buffers "
        "were restored")


def _blames_batchnorm(exc: BaseException) -> bool:
    """A failure that a training-mode BatchNorm explains: its in-place update under a torch.func
    transform, or its batch statistics of a single sample (when one ran)."""
    if isinstance(exc, ModuleStateError):
        return False
    if isinstance(exc, JacobiteError):
        return "transform" in str(exc) or "captured" in str(exc)
    return isinstance(exc, (RuntimeError, ValueError))


class _Guard:
    """One active watch: a forward pre-hook while no module has run; at the first module, the
    watch itself and the assignment hooks (state is assigned inside forward). Built for the
    common case — a plain function that runs no module pays one hook registration."""

    __slots__ = ("grads", "handles", "owner", "watch")

    def __init__(self, grads: bool) -> None:
        self.grads = grads
        self.owner = threading.get_ident()
        self.watch: _Watch | None = None
        _LOCAL.watch = self
        self.handles = [register_module_forward_pre_hook(self._hook)]

    def _hook(self, module: nn.Module, args: Any) -> None:
        if threading.get_ident() != self.owner:
            return
        if self.watch is None:
            self.watch = _Watch(self.grads)
            self.handles.append(register_module_buffer_registration_hook(self._on_buffer))
            self.handles.append(register_module_parameter_registration_hook(self._on_param))
        self.watch.pre_hook(module, args)

    def _on_buffer(self, module: nn.Module, name: str, value: Any) -> None:
        if self.watch is not None and threading.get_ident() == self.owner \
                and not torch.compiler.is_compiling():
            self.watch.reassign(module, "_buffers", name, value)

    def _on_param(self, module: nn.Module, name: str, value: Any) -> None:
        if self.watch is not None and threading.get_ident() == self.owner \
                and not torch.compiler.is_compiling():
            self.watch.reassign(module, "_parameters", name, value)

    def finish(self, fix: str, exc: BaseException | None = None) -> None:
        """Remove the hooks and put everything back; raise the refusal where state changed
        (or, after an ordinary exception ``exc``, where a training-mode BatchNorm explains
        it). KeyboardInterrupt and the like are never re-typed."""
        for h in self.handles:
            h.remove()
        _LOCAL.watch = None
        watch = self.watch
        if watch is None:
            return
        changed = watch.restore()
        if exc is not None and not isinstance(exc, Exception):
            return
        if changed or (exc is not None and watch.batchnorm and _blames_batchnorm(exc)):
            raise _refusal(watch, changed, fix) from exc


def _inactive() -> bool:
    return getattr(_LOCAL, "watch", None) is not None or torch.compiler.is_compiling()


@contextlib.contextmanager
def keep_state(*, grads: bool = True, fix: str = FIX) -> Iterator[None]:
    """While active, every module that runs is watched and put back as it was on exit; a module
    that changed its buffers or parameters raises :class:`~jacobite.errors.ModuleStateError`.
    ``grads=False`` leaves ``.grad`` alone (for calls whose purpose is to fill it); ``fix`` is
    the advice for a training-mode BatchNorm where the entry point has a better one. Re-entrant
    (an inner use inside an outer one does nothing)."""
    if _inactive():
        yield
        return
    guard = _Guard(grads)
    try:
        yield
    except BaseException as exc:
        guard.finish(fix, exc)
        raise
    guard.finish(fix)


@overload
def keeps_state(fn: F, /) -> F: ...
@overload
def keeps_state(*, grads: bool = True) -> Callable[[F], F]: ...
def keeps_state(fn: F | None = None, /, *, grads: bool = True) -> F | Callable[[F], F]:
    """Decorate a public entry point: its whole call runs under :func:`keep_state`
    (``@keeps_state``, or ``@keeps_state(grads=False)`` for one whose purpose is ``.grad``)."""
    def wrap(inner: F) -> F:
        @functools.wraps(inner)
        def run(*args: Any, **kwargs: Any) -> Any:
            # no context manager: dynamo traces none here, and a plain call stays cheap
            if _inactive():
                return inner(*args, **kwargs)
            guard = _Guard(grads)
            try:
                out = inner(*args, **kwargs)
            except BaseException as exc:
                guard.finish(FIX, exc)
                raise
            guard.finish(FIX)
            return out
        # inside torch.inference_mode: autograd on, on copies (entry points whose purpose is
        # .grad are left alone: copies would lose what they write)
        return outside_inference_mode(run) if grads else run  # type: ignore[return-value]
    return wrap if fn is None else wrap(fn)
