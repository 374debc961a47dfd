"""The dense Jacobian engine: vectorised JVPs or VJPs over chunks of basis vectors.

Built on torch.func (``vjp``, ``jvp``, ``vmap``); jacobite does no differentiation of its own.
Unlike ``torch.func.jacfwd``, both modes are chunked, and the chunk size comes from a memory plan.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from .. import _validate
from ..errors import JacobiteWarning, OutputTypeError, UnsupportedOperationError
from . import _plan
from ._errors import (
    MUTATES_ARGUMENT,
    MUTATES_INPUT,
    check_module_state,
    check_not_mutated,
    translate,
)
from ._func import jvp as _jvp
from ._func import vjp as _vjp
from ._probe import PROBES, Probe, run_probe
from ._trees import (
    Flat,
    flatten_inputs,
    flatten_outputs,
    function_name,
    normalize_argnums,
    substitute,
)


@dataclass
class Problem:
    """A function bound to its arguments, seen as a map from input leaves to output leaves."""

    f: Callable[..., Any]
    args: tuple[Any, ...]
    positions: tuple[int, ...]
    is_tuple: bool
    xin: Flat
    has_aux: bool
    fname: str
    out: Flat | None = None  # filled on the first evaluation

    @classmethod
    def build(cls, f: Callable[..., Any], args: tuple[Any, ...], argnums: Any, has_aux: bool,
              check_finite: bool) -> Problem:
        _validate.callable_(f)
        positions, is_tuple = normalize_argnums(argnums, len(args))
        diff = tuple(args[p] for p in positions) if is_tuple else args[positions[0]]
        what = "the argument" if not is_tuple else "the arguments"
        what += f" at argnums={positions if is_tuple else positions[0]}"
        xin = flatten_inputs(diff, what, check_finite=check_finite)
        return cls(f, args, positions, is_tuple, xin, has_aux, function_name(f))

    def call(self, *leaves: torch.Tensor) -> tuple[Any, Any]:
        out = self.f(*substitute(self.args, self.positions, self.is_tuple, self.xin.spec, leaves))
        if not self.has_aux:
            return out, None
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise OutputTypeError(
                f"with has_aux=True, {self.fname} must return a pair (output, aux); "
                f"got {type(out).__name__}"
            )
        return out[0], out[1]

    def g(self, *leaves: torch.Tensor) -> tuple[Any, Any]:
        """The map torch.func differentiates: input leaves -> (output leaves, aux).

        A single output tensor is passed through bare (cheaper for torch.func than a 1-tuple).
        """
        out, aux = self.call(*leaves)
        flat = flatten_outputs(out, self.fname)
        self.out = flat
        return (flat.leaves[0] if len(flat.leaves) == 1 else flat.leaves), aux

    def g_plain(self, *leaves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``g`` without aux, for torch.func calls with has_aux=False."""
        return self.g(*leaves)[0]

    def vjp(self) -> tuple[tuple[torch.Tensor, ...], Callable[..., Any], Any]:
        """Output leaves, a VJP taking a tuple of cotangent leaves, and aux."""
        if self.has_aux:
            static: dict[str, Any] = {}
            out, fn, tensors = _vjp(lambda *lv: self._split_aux(self.g(*lv), static),
                                    *self.xin.leaves, has_aux=True)
            aux = self._join_aux(tensors, static)
        else:
            (out, fn), aux = _vjp(self.g_plain, *self.xin.leaves), None
        if isinstance(out, torch.Tensor):
            return (out,), lambda cot: fn(cot[0]) if isinstance(cot, tuple) else fn(cot), aux
        return out, fn, aux

    @staticmethod
    def as_leaves(out: Any) -> tuple[torch.Tensor, ...]:
        return (out,) if isinstance(out, torch.Tensor) else tuple(out)

    @staticmethod
    def _split_aux(res: tuple[Any, Any], static: dict[str, Any]) -> tuple[Any, list[Any]]:
        """torch.func (and vmap) carry only tensors in aux: pass the other leaves around it."""
        out, aux = res
        flat, static["spec"] = tree_flatten(aux)
        static["other"] = [None if isinstance(a, torch.Tensor) else a for a in flat]
        return out, [a for a in flat if isinstance(a, torch.Tensor)]

    @staticmethod
    def _join_aux(tensors: list[Any], static: dict[str, Any]) -> Any:
        it = iter(tensors)
        return tree_unflatten([next(it) if o is None else o for o in static["other"]],
                              static["spec"])

    def jvp(self, *tangents: torch.Tensor, leaves: tuple[torch.Tensor, ...] | None = None
            ) -> tuple[Any, Any, Any]:
        primals = self.xin.leaves if leaves is None else leaves
        if self.has_aux:
            static: dict[str, Any] = {}
            out, tout, tensors = _jvp(lambda *lv: self._split_aux(self.g(*lv), static),
                                      primals, tangents, has_aux=True)
            return out, tout, self._join_aux(tensors, static)
        out, tout = _jvp(self.g_plain, primals, tangents)
        return out, tout, None

    def probe(self) -> Probe:
        """The (cached) probe of f at this signature."""
        key = PROBES.key(self.f, self.args, (self.positions, self.has_aux))
        probe = PROBES.get(key, self.f)
        if probe is None:
            check_module_state(self.f)
            # the other arguments' tensors are copied too: the probe never changes the caller's
            # tensors, and an f that writes into one is found here
            others = [t.detach().clone() if isinstance(t, torch.Tensor) else t
                      for t in self.args]
            for p in self.positions:
                others[p] = self.args[p]
            versions = [t._version if isinstance(t, torch.Tensor) else None for t in others]
            twin = replace(self, args=tuple(others))
            with translate(self.fname, "probe"):
                probe, _ = run_probe(lambda *lv: twin.call(*lv)[0], self.xin.leaves)
            if probe.mutates_input:
                raise UnsupportedOperationError(MUTATES_INPUT.format(f=self.fname))
            changed = [i for i, (t, v) in enumerate(zip(others, versions, strict=True))
                       if v is not None and i not in self.positions and t._version != v]
            if changed:
                raise UnsupportedOperationError(MUTATES_ARGUMENT.format(f=self.fname,
                                                                        i=changed[0]))
            PROBES.put(key, self.f, probe)
            if probe.leaks_scalar:
                warnings.warn(
                    f"{self.fname} turns a value that depends on its input into a Python number "
                    "(.item(), float(), int() or `if tensor:`); the Jacobian treats that number as "
                    "a constant. Harmless if it only steers control flow; if it feeds arithmetic, "
                    "use tensor operations instead.", JacobiteWarning, stacklevel=5)
        return probe

    def probe_plan(self, mode: str, chunk_size: Any, budget: int) -> _plan.JacobianPlan:
        """Plan with a (cached) probe of f: output size and working memory."""
        key = PROBES.key(self.f, self.args, (self.positions, self.has_aux))
        plan_key = None if key is None else (key, mode, chunk_size, budget)
        cached = PROBES.get(plan_key, self.f)
        if cached is not None:  # same function, signature and settings: same plan
            _plan.log.debug("jacobian plan (cached): %s", cached)
            return cached
        probe = self.probe()
        itemsize = max(probe.out_itemsize, *(t.element_size() for t in self.xin.leaves))
        plan = _plan.make_plan(self.xin.numel, probe.out_numel, itemsize, probe, mode,
                               chunk_size, budget, self.fname)
        PROBES.put(plan_key, self.f, plan)
        return plan


def probe_of(f: Callable[..., Any], args: tuple[Any, ...],
             argnums: int | tuple[int, ...] = 0) -> Probe:
    """The (cached) probe of f at ``args``: whether it stops gradients (``torch.no_grad``),
    draws random numbers, and so whether only reverse mode gives its Jacobian consistently."""
    return Problem.build(f, args, argnums, False, check_finite=False).probe()


def looped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``vmap(fn)`` for a batch of ONE, as a plain call: ``chunk_size=1`` runs f unbatched, the
    way around operations that ``vmap`` cannot batch."""
    def run(*batched: Any) -> Any:
        res = fn(*tree_map(lambda t: t[0], batched))
        return tree_map(lambda r: r.unsqueeze(0) if isinstance(r, torch.Tensor) else r, res)
    return run


def _basis(start: int, stop: int, like: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Rows start..stop of the identity, split into leaves shaped (chunk, *leaf.shape).

    Each leaf of the basis has the dtype and device of the matching tensor in ``like``.
    """
    c = stop - start
    if len(like) == 1:
        t = like[0]
        eye = torch.zeros(c, t.numel(), dtype=t.dtype, device=t.device)
        eye.diagonal(start).fill_(1)
        return (eye.view(c, *t.shape),)
    sizes = [t.numel() for t in like]
    dtype = like[0].dtype
    if any(t.dtype != dtype for t in like):
        dtype = torch.float64
    eye = torch.zeros(c, sum(sizes), dtype=dtype, device=like[0].device)
    idx = torch.arange(c, device=like[0].device)
    eye[idx, idx + start] = 1
    parts = torch.split(eye, sizes, dim=1)
    return tuple(p.reshape(c, *t.shape).to(t.dtype) for p, t in zip(parts, like, strict=True))


@dataclass
class Rows:
    """The Jacobian as blocks R[j] of shape (basis, size_j), one per leaf on the far side."""

    blocks: list[torch.Tensor]
    value: Any
    aux: Any


def _collect(chunks: list[tuple[torch.Tensor, ...]], basis: int,
             sizes: tuple[int, ...]) -> list[torch.Tensor]:
    """Concatenate per-chunk results into one ``(basis, size_j)`` block per leaf."""
    if len(chunks) == 1:
        return [t.reshape(basis, s) for t, s in zip(chunks[0], sizes, strict=True)]
    return [torch.cat([ch[j].reshape(ch[j].shape[0], s) for ch in chunks])
            for j, s in enumerate(sizes)]


def reverse_rows(p: Problem, step: int | None, budget: int, *, prealloc: bool = True) -> Rows:
    """VJPs against chunks of output basis vectors: rows of J, per input leaf."""
    with translate(p.fname, "reverse"):
        out_leaves, vjp_fn, aux = p.vjp()
    prealloc = prealloc and not any(map(_validate.tracked, p.xin.leaves))
    out = p.out
    assert out is not None
    m, sizes = out.numel, p.xin.sizes
    itemsize = max(t.element_size() for t in (*out_leaves, *p.xin.leaves))
    _plan.guard(m, p.xin.numel, itemsize, budget)
    value = out.unflatten(out_leaves)
    if m == 0:
        return Rows([torch.zeros(0, s, dtype=t.dtype, device=t.device)
                     for s, t in zip(sizes, p.xin.leaves, strict=True)], value, aux)
    batched = looped(vjp_fn) if step == 1 else vmap(vjp_fn)
    if step is None or step >= m:  # one vectorised call: no chunk bookkeeping
        basis = _basis(0, m, out_leaves)
        with translate(p.fname, "reverse"):
            grads = batched(basis[0] if len(basis) == 1 else basis)
        return Rows([gj.reshape(m, s) for gj, s in zip(grads, sizes, strict=True)], value, aux)
    buffers: list[torch.Tensor] | None = None
    chunks: list[tuple[torch.Tensor, ...]] = []
    with translate(p.fname, "reverse"):
        for start in range(0, m, step):
            stop = min(start + step, m)
            basis = _basis(start, stop, out_leaves)
            grads = batched(basis[0] if len(basis) == 1 else basis)
            if prealloc:
                if buffers is None:
                    buffers = [torch.empty(m, s, dtype=t.dtype, device=t.device)
                               for s, t in zip(sizes, p.xin.leaves, strict=True)]
                for b, gj, s in zip(buffers, grads, sizes, strict=True):
                    b[start:stop] = gj.reshape(stop - start, s)
            else:
                chunks.append(tuple(grads))
    blocks = buffers if buffers is not None else _collect(chunks, m, sizes)
    return Rows(blocks, value, aux)


def forward_cols(p: Problem, step: int | None, budget: int, *, prealloc: bool = True) -> Rows:
    """JVPs against chunks of input basis vectors: columns of J (as rows of Jᵀ), per output leaf."""
    n = p.xin.numel
    x = p.xin
    prealloc = prealloc and not any(map(_validate.tracked, x.leaves))

    # Primal outputs and aux come back with a (broadcast, zero-copy) batch dimension: vmap
    # cannot return them unbatched when an outer transform already batches them.
    static: dict[str, Any] = {}
    # f runs on private copies (several times, once per chunk): it must not change them
    # (clones, not detached copies: the result stays differentiable with respect to the input)
    own = tuple(t.clone() for t in x.leaves)
    versions = tuple(t._version for t in own)

    def one(*t: torch.Tensor) -> tuple[Any, ...]:
        out, tout, aux = p.jvp(*t, leaves=own)
        if not p.has_aux:
            return out, tout
        flat, static["spec"] = tree_flatten(aux)  # vmap returns tensors only
        static["other"] = [None if isinstance(a, torch.Tensor) else a for a in flat]
        return out, tout, [a for a in flat if isinstance(a, torch.Tensor)]

    vm = looped(one) if step == 1 else vmap(one)

    def batched(*t: torch.Tensor) -> tuple[Any, Any, Any]:
        res = vm(*t)
        primal, tangent = res[0], res[1]
        aux = None
        if p.has_aux:
            it = iter(a[0] for a in res[2])
            aux = tree_unflatten([next(it) if o is None else o for o in static["other"]],
                                 static["spec"])
        return tuple(v[0] for v in p.as_leaves(primal)), p.as_leaves(tangent), aux

    step = n if step is None else step
    buffers: list[torch.Tensor] | None = None
    chunks: list[tuple[torch.Tensor, ...]] = []
    value = aux = None
    with translate(p.fname, "forward"):
        for start in range(0, n, step):
            stop = min(start + step, n)
            primal, tangents, aux = batched(*_basis(start, stop, x.leaves))
            if start == 0:
                check_not_mutated(p.fname, own, versions)
            if value is None:
                assert p.out is not None
                out = p.out
                itemsize = max(t.element_size() for t in (*primal, *x.leaves))
                _plan.guard(out.numel, n, itemsize, budget)
                value = out.unflatten(primal)
            if prealloc and step < n:
                if buffers is None:
                    buffers = [torch.empty(n, s, dtype=t.dtype, device=t.device)
                               for s, t in zip(out.sizes, primal, strict=True)]
                for b, tk, s in zip(buffers, tangents, out.sizes, strict=True):
                    b[start:stop] = tk.reshape(stop - start, s)
            else:
                chunks.append(tuple(tangents))
    assert p.out is not None
    blocks = buffers if buffers is not None else _collect(chunks, n, p.out.sizes)
    return Rows(blocks, value, aux)
