"""Dependency-propagation rules for sparsity detection (used by :mod:`jacobite.sparse.detect`).

A *dependency matrix* of a tensor ``t`` is a SciPy CSR bool matrix of shape ``(t.numel(), n)``:
row ``i`` holds the input indices the ``i``-th element (row-major) may depend on. ``None`` stands
for "no dependency" (a constant). Every rule takes the op's arguments (with real values) and a
lookup ``deps(t) -> matrix | None`` and returns the dependency matrices of the op's outputs.
The registered rules (see :mod:`jacobite.sparse._registry`) at the end cover elementwise ops,
constants, ``detach``, products with a constant factor, index/shape ops and reductions.

>>> import numpy as np
>>> _broadcast_index((3, 1), (3, 2)).tolist()
[0, 0, 1, 1, 2, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils._pytree import tree_flatten, tree_map

from ._registry import Call, Deps, rule

Lookup = Callable[[Any], Deps]

aten = torch.ops.aten


def is_float(t: object) -> bool:
    """True for floating or complex tensors (the only ones that carry derivatives)."""
    return isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())


def empty(rows: int, n: int) -> sp.csr_matrix:
    """A dependency matrix with no dependencies."""
    return sp.csr_matrix((rows, n), dtype=bool)


def union(mats: Sequence[Deps]) -> Deps:
    """Elementwise OR of equally shaped dependency matrices (``None`` entries skipped)."""
    real = [m for m in mats if m is not None]
    if not real:
        return None
    out = real[0]
    for m in real[1:]:
        out = out + m
    return out.tocsr()


def gather_rows(m: sp.csr_matrix, idx: np.ndarray) -> sp.csr_matrix:
    """Rows ``m[idx]``; an index of ``-1`` gives an empty row."""
    if idx.size == m.shape[0] and np.array_equal(idx, np.arange(m.shape[0])):
        return m
    valid = idx >= 0
    if valid.all():
        return m[idx]
    sel = sp.csr_matrix(
        (np.ones(int(valid.sum()), bool), (np.nonzero(valid)[0], idx[valid])),
        shape=(idx.size, m.shape[0]),
    )
    return (sel @ m).tocsr()


def _broadcast_index(shape: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """For each element of ``out_shape``, the flat index of the broadcast source in ``shape``."""
    src = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.int64).reshape(tuple(shape))
    return np.broadcast_to(src, tuple(out_shape)).reshape(-1)


def pointwise(args: Any, out: torch.Tensor, deps: Lookup) -> Deps:
    """Elementwise op with broadcasting: union of the broadcast inputs' dependencies."""
    parts = []
    for t in tree_flatten(args)[0]:
        if is_float(t) and (d := deps(t)) is not None:
            if tuple(t.shape) == tuple(out.shape):
                parts.append(d)
            else:
                parts.append(gather_rows(d, _broadcast_index(t.shape, out.shape)))
    return union(parts)


def mul(args: tuple, out: torch.Tensor, deps: Lookup, tainted: Callable[[Any], bool],
        inplace: bool = False) -> Deps:
    """``a * b``: where a constant factor is exactly zero, the other factor's deps vanish.

    In place (``a.mul_(b)``), ``a`` already holds the product, so its zeros are not used.
    """
    a, b = args[0], args[1]
    parts = []
    for t, other in ((a, b), (b, a)):
        if inplace and other is a:
            other = None
        if not (is_float(t) and (d := deps(t)) is not None):
            continue
        idx = _broadcast_index(t.shape, out.shape)
        if isinstance(other, torch.Tensor) and not tainted(other):
            keep = torch.broadcast_to(other.detach() != 0, out.shape).reshape(-1).cpu().numpy()
            idx = np.where(keep, idx, -1)
        elif isinstance(other, (int, float)) and other == 0:
            continue
        parts.append(gather_rows(d, idx))
    return union(parts)


# ops that only move, copy or drop elements: run them on an index tensor to see where each
# output element comes from ("arange trick"); fill values become 0 = "no source".
INDEX_OPS = {
    getattr(aten, name)
    for name in (
        "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "t",
        "expand", "squeeze", "unsqueeze", "slice", "select", "clone", "contiguous", "alias",
        "cat", "stack", "flip", "roll", "index_select", "gather", "index", "constant_pad_nd",
        "narrow", "split", "split_with_sizes", "unbind", "chunk", "diagonal", "repeat", "movedim",
        "unfold", "as_strided", "lift_fresh", "lift_fresh_copy", "tril", "triu", "masked_fill",
        "copy_", "index_put", "index_put_", "fill_", "zero_", "scatter", "diag_embed", "diag",
        "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d",
        "circular_pad1d", "circular_pad2d", "_pad_circular", "view_copy", "expand_copy",
        "permute_copy", "slice_copy", "select_copy", "transpose_copy", "unsqueeze_copy",
        "squeeze_copy", "alias_copy", "masked_fill_", "tril_", "triu_", "squeeze_", "unsqueeze_",
        "t_", "transpose_", "as_strided_", "scatter_", "select_scatter", "slice_scatter",
        "diagonal_scatter", "as_strided_scatter", "repeat_interleave", "take", "take_along_dim",
        "index_fill", "index_fill_", "index_copy", "index_copy_", "masked_scatter",
        "_unsafe_index", "_unsafe_index_put", "masked_select",
    )
    if hasattr(aten, name)
}
_FILL_ARGS = {"value", "fill_value"}
# arguments holding values (not indices): integer tensors there are constants, not positions
_DATA_ARGS = {"self", "src", "source", "values", "tensors", "input", "other", "value", "tensor"}


def index_trick(func: Any, args: tuple, kwargs: dict, outs: list[Any], deps: Lookup,
                n: int) -> list[Deps]:
    """Run ``func`` on index tensors (1-based, 0 = no source) and gather source rows."""
    mats: list[sp.csr_matrix] = []
    offset = 0

    def repl(t: Any, data: bool = False) -> Any:
        nonlocal offset
        if not is_float(t):
            if data and isinstance(t, torch.Tensor) and t.dtype != torch.bool:
                zero = torch.zeros(t.shape, dtype=torch.int64)  # a constant: no source
                zero._jacobite_idx = 1  # type: ignore[attr-defined]
                return zero
            return t.cpu() if isinstance(t, torch.Tensor) else t  # beside the CPU positions
        d = deps(t)
        mats.append(d if d is not None else empty(t.numel(), n))
        idx = torch.from_numpy(np.arange(offset + 1, offset + 1 + t.numel(), dtype=np.int64))
        offset += t.numel()
        idx = idx.reshape(t.shape)
        idx._jacobite_idx = 1  # type: ignore[attr-defined]  # marks it for the float retry
        return idx

    names = [a.name for a in func._schema.arguments]

    def convert(name: str, v: Any) -> Any:
        if name in _FILL_ARGS and not isinstance(v, torch.Tensor):
            return 0
        return tree_map(lambda t: repl(t, name in _DATA_ARGS), v)

    new_args = tuple(convert(names[i] if i < len(names) else "", a) for i, a in enumerate(args))
    new_kwargs = {k: convert(k, v) for k, v in kwargs.items()}
    if not mats or all(m.nnz == 0 for m in mats):
        return [None for _ in outs]
    try:
        res = func(*new_args, **new_kwargs)
    except (RuntimeError, NotImplementedError):  # no integer kernel: float64 is exact here
        res = func(*tree_map(_as_f64, new_args), **tree_map(_as_f64, new_kwargs))
    src = mats[0] if len(mats) == 1 else sp.vstack(mats, format="csr")
    res_flat = [r for r in tree_flatten(res)[0]]
    result: list[Deps] = []
    for o, r in zip(outs, res_flat, strict=True):
        if not is_float(o) or not isinstance(r, torch.Tensor):
            result.append(None)
            continue
        idx = np.rint(r.reshape(-1).cpu().numpy()).astype(np.int64) - 1
        result.append(gather_rows(src, idx))
    return result


def _as_f64(t: Any) -> Any:
    if (isinstance(t, torch.Tensor) and t.dtype == torch.int64
            and getattr(t, "_jacobite_idx", False)):
        return t.double()
    return t


def bind(func: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Arguments by schema name, defaults filled in."""
    out: dict[str, Any] = {}
    for i, a in enumerate(func._schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
    return out


def _dims(dim: Any, ndim: int) -> list[int]:
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return list(range(ndim))
    if isinstance(dim, int):
        dim = [dim]
    return sorted({d % max(ndim, 1) for d in dim})


def group_matrix(shape: Sequence[int], dims: Sequence[int]) -> sp.csr_matrix:
    """Bool matrix (groups × numel): element j belongs to the group that reduces over ``dims``."""
    keep = [1 if i in dims else s for i, s in enumerate(shape)]
    gid = _broadcast_index(keep, shape)
    n_in = gid.size
    n_g = int(np.prod(keep, dtype=np.int64))
    return sp.csr_matrix((np.ones(n_in, bool), (gid, np.arange(n_in))), shape=(n_g, n_in))


REDUCE_OPS = {
    getattr(aten, name)
    for name in (
        "sum", "mean", "prod", "amax", "amin", "max", "min", "logsumexp", "linalg_vector_norm",
        "norm", "std", "var", "nansum", "nanmean", "median", "nanmedian", "mode", "kthvalue",
        "var_mean", "std_mean", "aminmax", "_softmax", "_log_softmax", "softmax", "log_softmax",
        "sort", "topk", "cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "_logcumsumexp",
        "msort", "argsort",
    )
    if hasattr(aten, name)
}
_SLICE_WIDE = {"_softmax", "_log_softmax", "softmax", "log_softmax", "sort", "msort",
               "argsort"}
_PREFIX = {"cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", "_logcumsumexp"}


def reduce(func: Any, args: tuple, kwargs: dict, outs: list[Any], deps: Lookup) -> list[Deps]:
    """Reductions, slice-wide ops (softmax, sort, topk) and prefix scans along dims."""
    b = bind(func, args, kwargs)
    x = b["self"]
    d = deps(x)
    if d is None:
        return [None for _ in outs]
    name = func._schema.name.split("::")[-1]
    shape = tuple(x.shape)
    dims = _dims(b.get("dim"), x.dim())
    if name in ("topk", "kthvalue") and "dim" not in b:
        dims = [x.dim() - 1]
    if name == "msort":
        dims = [0]
    g = group_matrix(shape, dims)
    if name in _PREFIX:
        res = _prefix(d, shape, dims[0] if dims else 0)
        return [res if is_float(o) else None for o in outs]
    red = (g @ d).tocsr()
    result: list[Deps] = []
    for o in outs:
        if not is_float(o):
            result.append(None)
        elif name in _SLICE_WIDE or name == "topk":
            wide = (g.T @ red).tocsr()  # every element sees its whole slice
            if o.numel() == wide.shape[0]:
                result.append(wide)
            else:  # topk: k of the slice; each output sees its whole slice
                okeep = [1 if i in dims else s for i, s in enumerate(o.shape)]
                gid = _broadcast_index(okeep, o.shape)
                result.append(red[gid])
        elif o.numel() == red.shape[0]:
            result.append(red)
        else:  # an unexpected shape: be conservative
            every = sp.csr_matrix(np.asarray(d.sum(axis=0) > 0))
            result.append(gather_rows(every, np.zeros(o.numel(), np.int64)))
    return result


def _prefix(d: sp.csr_matrix, shape: Sequence[int], dim: int) -> sp.csr_matrix:
    """Prefix OR along ``dim``: element k of a line depends on elements 0..k."""
    if len(shape) == 0:
        return d
    idx = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(tuple(shape))
    lines = np.moveaxis(idx, dim, -1).reshape(-1, shape[dim])
    length = shape[dim]
    ii, kk = np.tril_indices(length)
    rows = lines[:, ii].reshape(-1)
    cols = lines[:, kk].reshape(-1)
    sel = sp.csr_matrix((np.ones(rows.size, bool), (rows, cols)), shape=(idx.size, idx.size))
    return (sel @ d).tocsr()


# ---- registrations ---------------------------------------------------------------------------
#: ops whose outputs carry no derivative (constant or piecewise constant in the input)
NO_DEPS = {
    getattr(aten, name)
    for name in (
        "zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones",
        "new_empty", "new_full", "rand_like", "randn_like", "sign", "floor", "ceil", "round",
        "trunc", "argmax", "argmin", "empty_strided", "zeros", "ones", "full", "arange",
        "scalar_tensor", "empty", "rand", "randn", "_local_scalar_dense", "is_nonzero",
        "equal", "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isinf", "isfinite", "logical_not",
        "logical_and", "logical_or", "sym_size", "sym_numel", "sym_stride",
    )
    if hasattr(aten, name)
}
#: dtype casts and copies: elementwise, like the ops torch tags pointwise
CASTS = {aten._to_copy, aten.to, aten.type_as, aten.positive}


@rule(torch.Tag.pointwise, *CASTS, aten.max.other, aten.min.other)
def pointwise_rule(c: Call) -> list[Deps] | None:
    """Elementwise ops with one output: the union of the broadcast inputs' dependencies."""
    ref = next((o for o in c.outs if isinstance(o, torch.Tensor)), None)
    if ref is None or len(c.outs) != 1:
        return None
    return [pointwise((c.args, c.kwargs), ref, c.deps)]


@rule(*NO_DEPS)
def constant_rule(c: Call) -> list[Deps]:
    """Outputs that are constant (or piecewise constant) in the input: no dependencies."""
    return [None] * len(c.outs)


@rule(aten.detach)
def detach_rule(c: Call) -> list[Deps]:
    """``detach`` cuts dependencies, except while tracing a gradient: autograd saves tensors
    for backward through it, so there a detached tensor keeps its input's (a superset)."""
    if c.keep_detached:
        return [c.deps(c.args[0])]
    return [None] * len(c.outs)


@rule(aten.mul, aten.mul_)
def mul_rule(c: Call) -> list[Deps] | None:
    """``a * b`` exploiting a constant factor's zeros; other overloads are plain pointwise."""
    if len(c.outs) == 1 and len(c.args) == 2:
        return [mul(c.args, c.outs[0], c.deps, c.tainted, c.packet is aten.mul_)]
    return pointwise_rule(c) if torch.Tag.pointwise in c.func.tags else None


@rule(*(INDEX_OPS - {aten.masked_fill, aten.masked_fill_}))
def index_rule(c: Call) -> list[Deps]:
    """Ops that move, copy or drop elements: the index trick."""
    return index_trick(c.func, c.args, c.kwargs, c.outs, c.deps, c.n)


@rule(aten.masked_fill, aten.masked_fill_)
def masked_fill_rule(c: Call) -> list[Deps]:
    """A constant mask drops the filled elements' dependencies (index trick); a mask computed
    from x may keep any element at another x, so then every element keeps self's."""
    if c.tainted(bind(c.func, c.args, c.kwargs).get("mask")):
        return [pointwise((c.args, c.kwargs), c.outs[0], c.deps)]
    return index_rule(c)


@rule(*REDUCE_OPS)
def reduce_rule(c: Call) -> list[Deps]:
    """Reductions, slice-wide ops and prefix scans: see :func:`reduce`."""
    return reduce(c.func, c.args, c.kwargs, c.outs, c.deps)
