"""Global sparsity detection: which outputs of ``f`` may depend on which inputs.

:func:`detect` runs ``f`` once on the real ``x`` under a ``TorchDispatchMode`` (so every shape is
real) and carries, next to every tensor, a boolean *dependency matrix* (``numel × n``, SciPy CSR):
row ``i`` lists the input indices element ``i`` may depend on. Each aten op propagates it with a
rule (pointwise with broadcasting, index/shape ops, reductions, products with the zeros of constant
operands exploited, prefix scans), looked up in the registry of :mod:`jacobite.sparse._registry`.
An op without a rule falls back to a *dense* dependency and warns, so the pattern is always
conservative: it never misses a nonzero of the Jacobian at any input; a rule that fails raises
:class:`~jacobite.errors.UnsupportedOperationError` naming the op (a bug to report, never silently
papered over). When a value that depends on ``x`` leaves torch (``.item()``, ``bool()``,
``.tolist()``, ``.numpy()``) or steers indexing, the pattern is only valid near ``x``:
``Pattern.local`` is then ``True``. ``f`` runs with gradients on, as in a reverse pass: what it
computes with gradients off (``torch.no_grad``) is a constant, as in reverse mode, and
``Pattern.needs_reverse`` says so; a custom ``torch.autograd.Function``'s outputs depend on all
its inputs (see :mod:`jacobite.sparse._watch`).

>>> import torch
>>> p = detect(lambda u: u[1:] - u[:-1], torch.zeros(4))
>>> p.shape, p.nnz, p.local
((3, 4), 6, False)
>>> p.to_scipy().toarray().astype(int).tolist()
[[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
"""

from __future__ import annotations

import sys
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from jacobite import _validate
from jacobite._compile import lazy_dispatch_guard
from jacobite._modules import keeps_state
from jacobite.errors import JacobiteWarning, LocalPatternWarning
from jacobite.sparse import _rules as R
from jacobite.sparse import (  # noqa: F401 - register
    _rules_backward,
    _rules_conv,
    _rules_linalg,
    _rules_sample,
)
from jacobite.sparse._inputs import check_outputs, check_scalar, check_x
from jacobite.sparse._registry import Call, apply, lookup
from jacobite.sparse._rules_scatter import SCATTER_ADD_OPS
from jacobite.sparse._watch import watch

__all__ = ["Pattern", "detect", "detect_hessian"]

aten = torch.ops.aten

_SCALAR_OPS = {aten._local_scalar_dense.default, aten.is_nonzero.default,
               aten.equal.default}
# outputs whose shape depends on the values of their input
_DATA_SHAPE_OPS = {aten.nonzero.default, aten.masked_select.default, aten.unique_dim.default,
                   aten._unique2.default, aten.unique_consecutive.default}

@dataclass(frozen=True)
class Pattern:
    """A sparsity pattern of ∂f/∂x: a CSR bool matrix of shape ``(f(x).numel(), x.numel())``.

    ``local`` is True when value-dependent control flow was seen (the pattern is then valid
    only near the ``x`` it was detected at); ``fallback_ops`` names ops that had no rule and got
    a dense dependency (conservative, possibly with many false positives); ``needs_reverse``
    says why only reverse mode gives the Jacobian the pattern describes (``f`` computes from
    ``x`` with gradients off, as under ``torch.no_grad``: a constant, as in reverse mode), empty
    when every mode does; ``custom_functions`` names the custom ``torch.autograd.Function``
    classes whose outputs were taken to depend on all their inputs.
    """

    matrix: sp.csr_matrix
    local: bool = False
    fallback_ops: tuple[str, ...] = ()
    needs_reverse: tuple[str, ...] = ()
    custom_functions: tuple[str, ...] = ()

    @property
    def nnz(self) -> int:
        """Number of structural nonzeros."""
        return int(self.matrix.nnz)

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)``: output and input sizes."""
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))

    def to_scipy(self) -> sp.csr_matrix:
        """The pattern as a SciPy CSR bool matrix."""
        return self.matrix


@lazy_dispatch_guard
class _Tracker(TorchDispatchMode):
    """Propagates dependency matrices through every aten op f runs."""

    def __init__(self, x: torch.Tensor, keep_detached: bool = False) -> None:
        super().__init__()
        # autograd saves tensors for backward through aten.detach: when tracing a gradient, a
        # detached tensor keeps its dependencies (a superset for a user's own detach: sound)
        self.keep_detached = keep_detached
        # tracing f alone (not a gradient): what f computes with gradients off is a constant,
        # as in reverse mode (the autograd engine's own backward runs with gradients off too)
        self.honour_no_grad = not keep_detached
        self.note_grad_off = True  # off once f has run and its gradient is being traced
        self.needs_reverse: list[str] = []
        self.custom_functions: list[str] = []
        self.custom_depth = 0  # inside a custom Function's forward (or backward)
        self.n = x.numel()
        # id -> (weak ref, dependency matrix or None, value depends on x)
        self._info: dict[int, tuple[weakref.ref, R.Deps, bool]] = {}
        # storage pointer -> weak refs of tensors seen on it (for in-place ops through views)
        self._storages: dict[int, dict[int, weakref.ref]] = {}
        self.local_reasons: list[str] = []
        self.fallback: list[str] = []
        self._set(x, sp.identity(self.n, dtype=bool, format="csr"), True)

    # ---- bookkeeping -------------------------------------------------------------------
    def _get(self, t: Any) -> tuple[R.Deps, bool]:
        if not isinstance(t, torch.Tensor):
            return None, False
        rec = self._info.get(id(t))
        if rec is None or rec[0]() is not t:
            return None, False
        return rec[1], rec[2]

    def deps(self, t: Any) -> R.Deps:
        d = self._get(t)[0]
        return d if d is not None and d.nnz > 0 else None

    def tainted(self, t: Any) -> bool:
        return self._get(t)[1]

    def _set(self, t: torch.Tensor, d: R.Deps, taint: bool) -> None:
        key = id(t)
        rec = self._info.get(key)
        if rec is not None and rec[0]() is t:
            ref = rec[0]
        else:
            info = self._info

            def drop(r: weakref.ref, key: int = key) -> None:  # free dead tensors' matrices
                if (old := info.get(key)) is not None and old[0] is r:
                    del info[key]

            ref = weakref.ref(t, drop)
        self._info[key] = (ref, d, taint)
        self._remember(t)

    def _remember(self, t: torch.Tensor) -> None:
        try:
            key = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # pragma: no cover - exotic tensors
            return
        refs = self._storages.setdefault(key, {})
        ref = refs.get(id(t))
        if ref is None or ref() is not t:
            refs[id(t)] = weakref.ref(t)

    def _write(self, t: torch.Tensor, d: R.Deps, taint: bool) -> None:
        """An in-place op wrote ``t``: update ``t`` and every tensor sharing its storage."""
        key = t.untyped_storage().data_ptr()
        alive = [r() for r in self._storages.get(key, {}).values()]
        others = [u for u in alive if u is not None and u is not t]
        self._set(t, d, taint or self.tainted(t))
        if not others:
            return
        size = t.untyped_storage().nbytes() // max(t.element_size(), 1)
        base = torch.arange(size, dtype=torch.int64)
        off_t = base.as_strided(t.shape, t.stride(), t.storage_offset()).reshape(-1).numpy()
        pos = np.full(size, -1, dtype=np.int64)
        pos[off_t] = np.arange(off_t.size)
        for u in others:
            if u.element_size() != t.element_size():
                continue
            off_u = base.as_strided(u.shape, u.stride(), u.storage_offset()).reshape(-1).numpy()
            p = pos[off_u]
            hit = p >= 0
            if not hit.any():
                continue
            old, old_taint = self._get(u)
            keep = np.where(hit, -1, np.arange(p.size))
            parts = [R.gather_rows(old, keep)] if old is not None else []
            if d is not None:
                parts.append(R.gather_rows(d, np.where(hit, p, -1)))
            new = R.union(parts)
            self._set(u, new if R.is_float(u) else None, old_taint or taint)

    # ---- dispatch ----------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # the watcher's profile hook (see _watch) has nothing to see in the tracker's own work
        hook = sys.getprofile()
        if not callable(hook):
            return self._dispatch(func, args, kwargs or {})
        sys.setprofile(None)
        try:
            return self._dispatch(func, args, kwargs or {})
        finally:
            sys.setprofile(hook)

    def _dispatch(self, func: Any, args: tuple, kwargs: dict) -> Any:
        out = func(*args, **kwargs)
        flat_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        for t in flat_in:
            self._remember(t)
        taint = any(self.tainted(t) for t in flat_in)
        outs = [o for o in tree_flatten(out)[0]]
        name = str(func.overloadpacket.__name__)
        if taint and func in _SCALAR_OPS:
            self.local_reasons.append(f"{name}: a value depending on x became a Python scalar")
        if taint and func in _DATA_SHAPE_OPS:
            self.local_reasons.append(f"{name}: an output shape depends on the values of x")
        live = any(self.deps(t) is not None for t in flat_in)
        grad_off = live and not torch.is_grad_enabled()
        if grad_off and self.note_grad_off and self.custom_depth == 0 \
                and not self.needs_reverse:
            self.needs_reverse.append(f"{name} ran with gradients off (torch.no_grad, "
                                      "inference_mode, or the autograd engine inside f)")
        # with gradients off, autograd records nothing: outputs are constants and an in-place
        # write leaves its target's dependencies alone (even through a view made there)
        grad_off = self.honour_no_grad and not torch.is_grad_enabled()
        new = self._rule(func, args, kwargs, outs, name) if live and not grad_off \
            else [None] * len(outs)
        if taint:
            self._check_value_indexing(func, args, kwargs, name)
        mutated = self._mutated_args(func, args, kwargs)
        for o, d in zip(outs, new, strict=True):
            if not isinstance(o, torch.Tensor):
                continue
            d = d if R.is_float(o) else None
            if any(o is m for m in mutated):
                if grad_off:  # autograd does not see this write: o keeps its dependencies
                    self._set(o, self._get(o)[0], taint or self.tainted(o))
                else:
                    self._write(o, d, taint)
            else:
                self._set(o, d, taint)
        return out

    def set_outputs(self, outs: list[torch.Tensor], every: R.Deps, taint: bool,
                    inputs: list[torch.Tensor]) -> None:
        """A custom Function returned ``outs``: each element depends on every index in the
        one-row ``every``; an output that is one of its ``inputs`` was written in place."""
        for o in outs:
            d = R.gather_rows(every, np.zeros(o.numel(), np.int64)) \
                if every is not None and R.is_float(o) else None
            if any(o is t for t in inputs):
                self._write(o, d, taint)
            else:
                self._set(o, d, taint or self.tainted(o))

    def _rule(self, func: Any, args: tuple, kwargs: dict, outs: list, name: str) -> list:
        """The registered rule's dependencies; the dense fallback when there is none (or it
        declines this call). A failure inside a rule surfaces as a typed error."""
        fn = lookup(func)
        res = None
        if fn is not None:
            call = Call(func, args, kwargs, outs, self.deps, self.tainted, self.n,
                        self.keep_detached)
            res = apply(fn, call)
        return self._dense(args, kwargs, outs, name) if res is None else res

    def _dense(self, args: tuple, kwargs: dict, outs: list, name: str) -> list:
        """No rule: every output element depends on everything any input depends on."""
        if name not in self.fallback:
            self.fallback.append(name)
        every = None
        for t in tree_flatten((args, kwargs))[0]:
            if (d := self.deps(t)) is not None:
                row = sp.csr_matrix(np.asarray(d.sum(axis=0) > 0))
                every = row if every is None else (every + row).tocsr()
        res = []
        for o in outs:
            if isinstance(o, torch.Tensor) and every is not None:
                res.append(R.gather_rows(every, np.zeros(o.numel(), np.int64)))
            else:
                res.append(None)
        return res

    def _check_value_indexing(self, func: Any, args: tuple, kwargs: dict, name: str) -> None:
        """Index tensors whose values depend on x make the pattern local to x."""
        if (func.overloadpacket not in R.INDEX_OPS and func not in _DATA_SHAPE_OPS
                and func.overloadpacket not in SCATTER_ADD_OPS):
            return
        if func.overloadpacket in (aten.masked_fill, aten.masked_fill_):
            return  # a mask only selects between candidates; both are kept
        bound = R.bind(func, args, kwargs)
        for arg, value in bound.items():
            if arg in R._DATA_ARGS:
                continue  # values, not positions
            for t in tree_flatten(value)[0]:
                if isinstance(t, torch.Tensor) and not R.is_float(t) and self.tainted(t):
                    self.local_reasons.append(f"{name}: indices depend on the values of x")
                    return

    @staticmethod
    def _mutated_args(func: Any, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        res: list[torch.Tensor] = []
        if not func._schema.is_mutable:
            return res
        b = R.bind(func, args, kwargs)
        for a in func._schema.arguments:
            if a.alias_info is not None and a.alias_info.is_write:
                v = b.get(a.name)
                if isinstance(v, torch.Tensor):
                    res.append(v)
        return res




@keeps_state
def detect(f: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Pattern:
    """The global sparsity pattern of ∂f/∂x at shape ``x.shape`` (see the module docstring).

    ``f`` maps one floating tensor to a tensor (or a pytree of tensors, flattened and
    concatenated in order). Rows follow ``f(x).reshape(-1)``, columns ``x.reshape(-1)``.

    >>> import torch
    >>> detect(torch.sin, torch.ones(3)).to_scipy().toarray().tolist()
    [[True, False, False], [False, True, False], [False, False, True]]
    >>> detect(lambda v: v.sum(), torch.ones(3)).nnz
    3
    """
    _validate.callable_(f)
    check_x(x, "detect")
    xin = x.detach().clone()
    tracker = _Tracker(xin)
    # gradients on, as in a reverse pass, so that f's own torch.no_grad regions show
    with torch.enable_grad(), tracker, watch(tracker):
        out = f(xin)
    leaves, _ = tree_flatten(out)
    check_outputs(leaves, out, "detect")
    return _finish(tracker, leaves, xin.numel(), "detect")


@keeps_state
def detect_hessian(f: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Pattern:
    """The global sparsity pattern of the Hessian of a scalar ``f`` at shape ``x.shape``.

    Found by running ``f`` and its reverse-mode gradient (``torch.autograd.grad``) under the
    same tracker: the pattern of ∂(∇f)/∂x, symmetrised. Backward ops without a rule fall back to
    a dense dependency, as in :func:`detect`.

    >>> import torch
    >>> p = detect_hessian(lambda u: (u[1:] * u[:-1]).sum() + u.exp().sum(), torch.zeros(4))
    >>> p.to_scipy().toarray().astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    """
    _validate.callable_(f)
    check_x(x, "detect_hessian")
    xin = x.detach().clone().requires_grad_(True)
    tracker = _Tracker(xin, keep_detached=True)
    with torch.enable_grad(), tracker, watch(tracker):
        y = f(xin)
        tracker.note_grad_off = False  # the gradient below runs with gradients off
        check_scalar(y, "detect_hessian")
        g = None
        if y.requires_grad:
            (g,) = torch.autograd.grad(y.reshape(()), xin, allow_unused=True)
    if g is None:
        g = torch.zeros_like(xin)
    pat = _finish(tracker, [g], xin.numel(), "detect_hessian")
    sym = sp.csr_matrix(pat.matrix + pat.matrix.T, dtype=bool)
    sym.sort_indices()
    return Pattern(sym, pat.local, pat.fallback_ops, pat.needs_reverse, pat.custom_functions)


def _finish(tracker: _Tracker, leaves: list[torch.Tensor], n: int, name: str) -> Pattern:
    """The pattern of ``leaves`` (stacked in order), with the warnings the trace earned."""
    mats = []
    for t in leaves:
        d = tracker.deps(t)
        mats.append(d if d is not None else R.empty(t.numel(), n))
    matrix = mats[0] if len(mats) == 1 else sp.vstack(mats, format="csr")
    matrix = sp.csr_matrix(matrix, dtype=bool)
    matrix.sum_duplicates()
    matrix.sort_indices()
    if tracker.fallback:
        warnings.warn(f"jacobite.sparse.{name}: no sparsity rule for "
                      f"{', '.join(tracker.fallback)}; used a dense dependency (conservative, "
                      "possibly many false positives)", JacobiteWarning, stacklevel=3)
    if tracker.custom_functions:
        warnings.warn(f"jacobite.sparse.{name}: f uses the custom torch.autograd.Function "
                      f"{', '.join(tracker.custom_functions)}, whose derivative its forward "
                      "operations do not show; its outputs were taken to depend on all its "
                      "inputs (conservative). For a tighter pattern pass pattern= to "
                      "jacobite.sparse.prepare, or use the dense jacobite.jacobian(f, x)",
                      JacobiteWarning, stacklevel=3)
    local = bool(tracker.local_reasons)
    if local:
        warnings.warn(f"jacobite.sparse.{name}: the pattern is valid only near this x ("
                      + "; ".join(dict.fromkeys(tracker.local_reasons)) + ")",
                      LocalPatternWarning, stacklevel=3)
    return Pattern(matrix, local, tuple(tracker.fallback), tuple(tracker.needs_reverse),
                   tuple(tracker.custom_functions))
