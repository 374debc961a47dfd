"""Compressed evaluation of sparse Jacobians and Hessians: detect and color once, then c passes.

:func:`prepare` runs :func:`~jacobite.sparse.detect` and a coloring once and returns a
:class:`SparsePlan`; ``plan.jacobian(x)`` evaluates at any ``x`` of the same shape with all the
compressed JVPs (forward seeds ``J @ S``) and/or VJPs (reverse seeds ``Wᵀ @ J``) batched in one
``torch.func.vmap``, and scatters the products into the pattern's nonzeros through an index map
computed at preparation. The result is a :class:`~jacobite.operators.SparseOperator` (CSR):
``to_scipy()``, ``to_torch()``, ``to_dense()``, ``mv``/``rmv``, ``solve``, composition.
:func:`prepare_hessian` does the same for Hessians with a star coloring (one vmapped
forward-over-reverse product per color). An ``x`` that requires grad keeps the result on
autograd's graph (differentiable); ``torch.func`` transforms around a plan raise a typed error,
since torch's sparse tensors do not support them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.func import grad, jvp, vjp, vmap
from torch.utils._pytree import tree_flatten

from .. import _validate
from .._modules import keeps_state
from ..errors import NonFiniteInputError, OutputTypeError, ShapeError
from ..operators import SparseOperator
from ..operators._csr import csr_tensor
from ._inputs import check_options, check_untraced, check_x
from ._modes import (
    followed_by_ad,
    forward_passes,
    needs_reverse_of,
    resolve,
    resolve_hessian,
    warn_if_moved,
)
from ._select import MODES, SparseMode, as_bool_csr, candidates, fastest
from .coloring import _CHOICES, Bicoloring, Coloring, OrderChoice
from .coloring import star_coloring as _star
from .detect import detect, detect_hessian

__all__ = ["SparsePlan", "one_call", "prepare", "prepare_hessian"]

log = logging.getLogger("jacobite.sparse")



def _flat_output(f: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f`` with its output (a tensor or a pytree of tensors) as one flat vector."""

    def flat(x: torch.Tensor) -> torch.Tensor:
        out = f(x)
        if isinstance(out, torch.Tensor):
            return out.reshape(-1)
        leaves = tree_flatten(out)[0]
        if not leaves or not all(isinstance(t, torch.Tensor) for t in leaves):
            raise OutputTypeError("f must return a tensor or a pytree of tensors, got "
                                  f"{type(out).__name__}")
        return torch.cat([t.reshape(-1) for t in leaves])

    return flat


def _own_memory(x: torch.Tensor) -> bool:
    """False for a view whose elements overlap in memory (``expand``: a stride of 0)."""
    return all(st != 0 or sz <= 1 for st, sz in zip(x.stride(), x.shape, strict=True))


def _to_compressed_layout(flat: np.ndarray, rows: int, c: int) -> np.ndarray:
    """Map indices into a (rows, c) product to indices into its (c, rows) transpose."""
    return (flat % c) * rows + flat // c if c else flat


@dataclass
class SparsePlan:
    """Detection and coloring done once; :meth:`jacobian` evaluates at any ``x`` of this shape.

    ``pattern`` is the SciPy CSR bool pattern (``m × n``), ``colors`` the number of passes one
    evaluation costs (forward plus reverse; for a Hessian, forward-over-reverse products),
    ``mode`` one of ``"forward"``, ``"reverse"``, ``"bidirectional"`` or ``"hessian"``.
    A ``local`` pattern holds only near the preparation point ``prep_point``: every evaluation
    elsewhere warns (:class:`~jacobite.errors.LocalPatternWarning`).

    >>> import torch, jacobite.sparse as js
    >>> f = lambda u: u[1:] ** 2 - u[:-1]
    >>> plan = js.prepare(f, torch.zeros(5, dtype=torch.float64))
    >>> plan.colors, plan.mode in ("forward", "reverse"), plan.pattern.nnz
    (2, True, 8)
    >>> plan.jacobian(torch.arange(5.0, dtype=torch.float64)).to_dense()[0].tolist()
    [-1.0, 2.0, 0.0, 0.0, 0.0]
    """

    f: Callable[[torch.Tensor], Any] = field(repr=False)
    pattern: sp.csr_array = field(repr=False)
    coloring: Coloring | Bicoloring = field(repr=False)
    mode: str
    shape: tuple[int, ...]
    local: bool = False
    fallback_ops: tuple[str, ...] = ()
    vectorize: bool = False
    prep_point: torch.Tensor | None = field(default=None, repr=False)
    _flat_f: Callable[[torch.Tensor], torch.Tensor] = field(init=False, repr=False)
    _cache: dict[Any, tuple[torch.Tensor, ...]] = field(default_factory=dict, init=False,
                                                        repr=False)

    def __post_init__(self) -> None:
        self._flat_f = _flat_output(self.f)
        m = self.pattern.shape[0]
        col = self.coloring
        if isinstance(col, Bicoloring):
            kc = col.num_column_colors
            flat = col._flat
            fwd = flat < m * kc
            idx = np.where(fwd, _to_compressed_layout(flat, m, max(kc, 1)), flat)
        else:
            assert col._flat is not None, "colorings of a pattern carry their entry layout"
            if col.kind == "row":
                idx = col._flat  # already (c, n): row color * n + column
            else:  # column or star: (rows, c) products stored as (c, rows)
                idx = _to_compressed_layout(col._flat, m, col.num_colors)
        self._index = np.ascontiguousarray(idx, dtype=np.int64)

    @property
    def colors(self) -> int:
        """Passes per evaluation (forward JVPs + reverse VJPs, or Hessian-vector products)."""
        return int(self.coloring.num_colors)

    @property
    def nnz(self) -> int:
        return int(self.pattern.nnz)

    def _tensors(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Seeds, index map and CSR structure on ``x``'s dtype and device (cached)."""
        key = (x.dtype, x.device)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        m, n = self.pattern.shape
        col = self.coloring

        def seed(colors: np.ndarray, k: int, size: int) -> torch.Tensor:
            s = np.zeros((k, size))
            if k == 0:
                return torch.from_numpy(s).to(dtype=x.dtype, device=x.device)
            keep = colors >= 0
            s[colors[keep], np.nonzero(keep)[0]] = 1.0
            return torch.from_numpy(s).to(dtype=x.dtype, device=x.device)

        if isinstance(col, Bicoloring):
            fwd = seed(col.column_colors, col.num_column_colors, n)
            rev = seed(col.row_colors, col.num_row_colors, m)
        elif col.kind == "row":
            fwd, rev = seed(col.colors, 0, n), seed(col.colors, col.num_colors, m)
        else:
            fwd, rev = seed(col.colors, col.num_colors, n), seed(col.colors, 0, m)
        dev = x.device
        out = (fwd.reshape(fwd.shape[0], *self.shape), rev,
               torch.from_numpy(self._index).to(dev),
               torch.from_numpy(self.pattern.indptr.astype(np.int64)).to(dev),
               torch.from_numpy(self.pattern.indices.astype(np.int64)).to(dev))
        self._cache[key] = out
        return out

    def _check(self, x: Any, check_finite: Any) -> tuple[torch.Tensor, bool]:
        """``(x, differentiable)``: ``x`` stays attached to autograd when it requires grad."""
        check_x(x, "plan.jacobian")
        check_finite = _validate.boolean(check_finite, "check_finite")
        if tuple(x.shape) != self.shape:
            raise ShapeError(f"this plan was prepared for x of shape {self.shape}, got "
                             f"{tuple(x.shape)}; call jacobite.sparse.prepare(f, x) for the new "
                             "shape")
        if check_finite and not _validate.all_finite(x):
            raise NonFiniteInputError("x contains NaN or Inf; a Jacobian there is meaningless "
                                      "— clean it (torch.nan_to_num) or pass check_finite=False")
        diff = x.requires_grad and torch.is_grad_enabled()
        # f sees x's values in memory of their own, as in the dense path: an expanded
        # (stride-0) view would make the batched forward passes write to shared elements
        x = x if diff else x.detach()
        return (x if _own_memory(x) else x.clone(memory_format=torch.contiguous_format)), diff

    def _products(self, x: torch.Tensor, diff: bool = False,
                  ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(f(x) or None, the compressed products flattened)``: forward then reverse part;
        with ``diff`` both stay differentiable with respect to ``x`` (autograd graph kept)."""
        fwd, rev, *_ = self._tensors(x)
        f = self._flat_f
        if self.mode == "hessian":
            return None, self._hessian_products(x, fwd, diff).reshape(-1)
        parts: list[torch.Tensor] = []
        value = None
        if fwd.shape[0]:
            with forward_passes(self.mode):
                # torch types jvp as a 2- or 3-tuple (has_aux), out_dims without None entries
                value, tangents = vmap(lambda v: jvp(f, (x,), (v,))[:2],
                                       out_dims=(None, 0))(fwd)  # type: ignore[arg-type]
            parts.append(tangents.reshape(-1))
        if rev.shape[0]:
            value, cot = self._reverse(f, x, rev, diff)
            parts.append(cot.reshape(-1))
        if value is None:  # no passes at all (empty pattern): still evaluate f
            value = f(x)
        if not parts:
            return value, x.new_zeros(0)
        return value, parts[0] if len(parts) == 1 else torch.cat(parts)

    def _reverse(self, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 seeds: torch.Tensor, diff: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(x)`` and ``seeds @ J`` by one reverse pass per seed (or one vmap)."""
        if self.vectorize:
            value, pull = vjp(f, x)[:2]  # torch types vjp as a 2- or 3-tuple (has_aux)
            return value, vmap(pull)(seeds)[0]
        xr = x if diff else x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = f(xr)
        keep = y if diff else y.detach()
        if not y.requires_grad:  # f does not depend on x (pattern non-empty only by hand)
            return keep, seeds.new_zeros((seeds.shape[0], *x.shape))
        last = seeds.shape[0] - 1
        rows = [torch.autograd.grad(y, xr, w, retain_graph=diff or k < last, create_graph=diff,
                                    allow_unused=True)[0] for k, w in enumerate(seeds)]
        out = torch.stack([r if r is not None else torch.zeros_like(x) for r in rows])
        return keep, out

    def _hessian_products(self, x: torch.Tensor, seeds: torch.Tensor,
                          diff: bool) -> torch.Tensor:
        """``H @ S`` column by column: reverse-over-reverse per seed (or one vmapped hvp)."""
        f = self._flat_f
        if self.vectorize:
            g = grad(lambda u: f(u).reshape(()))
            with forward_passes("hessian"):
                return vmap(lambda v: jvp(g, (x,), (v,))[1])(seeds)
        xr = x if diff else x.detach().requires_grad_(True)
        with torch.enable_grad():
            y = f(xr).reshape(())
            gr = None
            if y.requires_grad:
                (gr,) = torch.autograd.grad(y, xr, create_graph=True, allow_unused=True)
        if gr is None or not gr.requires_grad:  # f is at most linear in x
            return seeds.new_zeros(seeds.shape)
        last = seeds.shape[0] - 1
        cols = [torch.autograd.grad(gr, xr, s, retain_graph=diff or k < last,
                                    create_graph=diff, allow_unused=True)[0]
                for k, s in enumerate(seeds)]
        return torch.stack([c if c is not None else torch.zeros_like(x) for c in cols])

    def _assemble(self, x: torch.Tensor, products: torch.Tensor) -> SparseOperator:
        *_, index, crow, cols = self._tensors(x)
        values = products.reshape(-1).index_select(0, index)
        check_untraced(values, "a sparse plan")  # f captured a tensor a transform traces
        m, n = self.pattern.shape
        # a computed Jacobian may hold an infinite derivative (sqrt at 0): it is the answer
        return SparseOperator(csr_tensor(crow, cols, values, (m, n)), check_tags=False,
                              check_finite=False)

    @keeps_state
    def jacobian(self, x: torch.Tensor, *, check_finite: bool = True) -> SparseOperator:
        """The sparse Jacobian (or Hessian) at ``x`` as a CSR :class:`SparseOperator`.

        Rows follow ``f(x).reshape(-1)``, columns ``x.reshape(-1)``. When ``x`` requires grad
        (and grad mode is on) the values stay on autograd's graph, so ``to_dense()`` (and the
        value) can be differentiated with respect to ``x`` by ``torch.autograd``; inside
        ``torch.func`` transforms (``vmap``, ``grad``) a plan raises
        :class:`~jacobite.errors.UnsupportedOperationError` (torch's sparse tensors do not
        support them): use the dense :func:`jacobite.jacobian` there.

        >>> import torch, jacobite.sparse as js
        >>> plan = js.prepare(lambda u: u ** 3, torch.ones(2, dtype=torch.float64))
        >>> x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        >>> torch.autograd.grad(plan.jacobian(x).to_dense().sum(), x)[0].tolist()
        [6.0, 12.0]
        """
        return self.value_and_jacobian(x, check_finite=check_finite)[1]

    @keeps_state
    def value_and_jacobian(self, x: torch.Tensor, *, check_finite: bool = True,
                           ) -> tuple[torch.Tensor | None, SparseOperator]:
        """``(f(x), J)`` — the value comes from the same passes; a Hessian plan gives ``None``."""
        x, diff = self._check(x, check_finite)
        if self.local:
            warn_if_moved(x, self.prep_point)
        with followed_by_ad():
            value, whole = self._products(x, diff)
        return (None if value is None else value.reshape(-1)), self._assemble(x, whole)


@keeps_state
def prepare(f: Callable[[torch.Tensor], Any], x: torch.Tensor, *, mode: SparseMode = "auto",
            order: OrderChoice = "fast", pattern: Any = None,
            vectorize: bool | str = "auto") -> SparsePlan:
    """Detect the sparsity of ∂f/∂x and color it once; evaluate later with ``plan.jacobian``.

    ``mode="auto"`` takes whichever of forward mode (column coloring, the compressed JVPs in one
    ``vmap``) and reverse mode (row coloring, one VJP per color) needs fewer passes, and a
    bicoloring (both) when both need more than
    :data:`~jacobite.sparse._select.BICOLOR_ABOVE`; ``"forward"``, ``"reverse"`` and
    ``"bidirectional"`` force one. Reverse passes run as a loop over the autograd engine
    (``vectorize=False``) or in one ``vmap`` (``True``: fewer Python calls, more memory).
    With ``vectorize="auto"`` (the default) every strategy left — forward or reverse when they
    tie, loop or vmap — is timed at ``x`` (one warm-up and two calls each) and the fastest
    kept: all are exact, and which is fastest depends on f and n. ``pattern`` (SciPy sparse,
    dense 0/1 array or anything with ``to_scipy()``) skips detection; it must hold every
    nonzero of the Jacobian, or the result is wrong. ``order`` is the coloring's vertex order
    (see :func:`~jacobite.sparse.column_coloring`): ``"fast"`` (the default) tries the two
    vectorised orders; ``"best"`` tries all five, which can save a color at a cost of up to
    about a second per 10⁶ conflict edges — worth it only for very many evaluations.

    >>> import torch, jacobite.sparse as js
    >>> bratu = lambda u: torch.diff(u, n=2, prepend=u.new_zeros(1), append=u.new_zeros(1)) \\
    ...     + torch.exp(u)
    >>> plan = js.prepare(bratu, torch.zeros(1000, dtype=torch.float64))
    >>> plan.colors, plan.pattern.shape
    (3, (1000, 1000))
    >>> J = plan.jacobian(torch.zeros(1000, dtype=torch.float64))
    >>> J.to_scipy()[:2, :3].toarray().tolist()
    [[-1.0, 1.0, 0.0], [1.0, -1.0, 1.0]]
    """
    check_options(f, x, "prepare", order, _CHOICES, vectorize)
    _validate.choice(mode, "mode", MODES)
    if pattern is None:
        pat = detect(f, x)
        mat, local, fallback = as_bool_csr(pat.matrix, None, x.numel()), pat.local, \
            pat.fallback_ops
        needs = pat.needs_reverse
    else:
        mat, local, fallback = as_bool_csr(pattern, None, x.numel()), False, ()
        needs = needs_reverse_of(f, x)
    x0 = x.detach()
    point = x0.clone() if local else None

    def build(used_mode: SparseMode) -> list[SparsePlan]:
        plans = []
        for coloring, used in candidates(mat, used_mode, order):
            flags = [False, True] if vectorize == "auto" and used != "forward" else [
                bool(vectorize) if vectorize != "auto" else False]
            plans += [SparsePlan(f, mat, coloring, used, tuple(x.shape), local, fallback, v,
                                 point) for v in flags]
        return plans if vectorize == "auto" else plans[:1]  # untimed: reverse first on a tie

    run = lambda p: p.jacobian(x0, check_finite=False)  # noqa: E731
    used_mode = resolve(mode, needs)
    plans = build(used_mode)
    try:
        plan = fastest(plans, run)
        if used_mode == "auto" and plan.mode != "reverse" and len(plans) == 1:
            run(plan)  # forward passes may meet an op forward mode cannot follow
    except Exception:
        if used_mode != "auto":
            raise
        plan = fastest(build("reverse"), run)  # reverse mode follows every op
    log.debug("sparse plan: %s%s, %d colors (pattern %s, %d nonzeros)", plan.mode,
              " (vmap)" if plan.vectorize else "", plan.colors, mat.shape, mat.nnz)
    return plan


@keeps_state
def prepare_hessian(f: Callable[[torch.Tensor], Any], x: torch.Tensor, *,
                    order: OrderChoice = "fast",
                    pattern: Any = None, vectorize: bool | str = "auto") -> SparsePlan:
    """Detect the Hessian's sparsity and star-color it; ``plan.jacobian(x)`` is the Hessian.

    Each color costs one Hessian-vector product: reverse-over-reverse through the autograd
    engine (``vectorize=False``), or forward-over-reverse in one ``vmap`` (``True``);
    ``"auto"`` times both at ``x`` and keeps the faster (the engine alone when ``f`` computes
    under ``torch.no_grad``, which forward mode would differentiate through).

    >>> import torch, jacobite.sparse as js
    >>> f = lambda u: ((u[1:] - u[:-1]) ** 2).sum() + u.pow(4).sum()
    >>> plan = js.prepare_hessian(f, torch.zeros(100, dtype=torch.float64))
    >>> plan.colors
    3
    >>> plan.jacobian(torch.ones(100, dtype=torch.float64)).to_dense()[:2, :3].tolist()
    [[14.0, -2.0, 0.0], [-2.0, 16.0, -2.0]]
    """
    check_options(f, x, "prepare_hessian", order, _CHOICES, vectorize)
    n = x.numel()
    if pattern is None:
        pat = detect_hessian(f, x)
        mat, local, fallback = as_bool_csr(pat.matrix, n, n), pat.local, pat.fallback_ops
        needs = pat.needs_reverse
    else:
        mat, local, fallback = as_bool_csr(pattern, n, n), False, ()
        needs = needs_reverse_of(f, x)
    coloring = _star(mat, order)
    sym = sp.csr_array(coloring.pattern, dtype=bool)
    flags = [False, True] if vectorize == "auto" else [bool(vectorize)]
    if needs:  # forward-over-reverse would differentiate through f's no_grad regions
        flags = [resolve_hessian(vectorize, needs)]
    x0 = x.detach()
    plans = [SparsePlan(f, sym, coloring, "hessian", tuple(x.shape), local, fallback, v,
                        x0.clone() if local else None) for v in flags]
    return fastest(plans, lambda p: p.jacobian(x0, check_finite=False))


from ._one_call import one_call  # noqa: E402 - re-exported for the dense path
