"""Many independent least-squares problems over a process group: ``least_squares(...,
batch=True, process_group=pg)`` and ``curve_fit(..., batch=True, process_group=pg)``.

Every rank holds the whole batch (built the same way on each rank, as a ``torchrun`` script
does); rank r solves its :func:`jacobite.distributed.shard` of the problems — a contiguous
share, the sizes differing by at most one — and the results are gathered on every rank in
problem order, identical to solving the whole batch in one process (each problem's iteration
does not depend on the others'). Per-problem data travel with their problems where they come
as tensors whose first dimension is B (``args`` / ``kwargs``, ``(B, n)`` bounds and
``x_scale``, ``(B,)`` ``f_scale``; for ``curve_fit`` ``ydata``, ``(B, k)`` ``xdata`` and
``sigma``, ``(B, p)`` ``p0`` and bounds). A ``fun`` that closes over per-problem data cannot be
split: its residuals come back with the wrong number of rows, and a typed error says so. Where
``args`` / ``kwargs`` tensors are cut, ``fun`` on the share is checked once against its rows of
``fun`` on the whole batch, so that a tensor all problems share whose first dimension is B by
coincidence is refused rather than cut.

A rank whose share fails (non-finite residuals at its starts, say) re-raises its error; the
others raise :class:`~jacobite.errors.RankFailedError` naming it instead of waiting.

>>> import torch
>>> from jacobite.solvers.lsq._distributed import per_problem
>>> [tuple(t.shape) for t in per_problem([torch.ones(4, 2), torch.ones(3)], 4, slice(0, 2))]
[(2, 2), (3,)]
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from ...distributed import Group, gather_batch, guarded, resolve
from ...distributed.internal import share_each
from ...errors import (
    InvalidOptionError,
    JacobiteError,
    ShapeError,
    UnsupportedOperationError,
)
from .._checks import as_start
from .._ift import inexact, tracked
from .engine.batch_result import BatchLeastSquaresResult

__all__ = ["fit_sharded", "per_problem", "solve_sharded", "unbatched"]

_CLOSURE = ("; with process_group= each rank solves its share of the problems, so per-problem "
            "data must reach fun through args= / kwargs= as tensors whose first dimension is B "
            "(they are split with the problems), not through a closure")


def per_problem(leaves: list[Any], B: int, sl: slice, min_ndim: int = 1) -> list[Any]:
    """``leaves`` with every tensor or array whose first dimension is ``B`` (and at least
    ``min_ndim`` dimensions) cut to the rows ``sl``; the others as they are."""
    out = []
    for a in leaves:
        if isinstance(a, (torch.Tensor, np.ndarray)) and a.ndim >= min_ndim and B > 1 \
                and a.shape[0] == B:
            out.append(a[sl])
        else:
            out.append(a)
    return out


def _array(value: Any) -> Any:
    """A list or tuple of numbers as a float64 array (so that its rows can be cut); anything
    else as it is."""
    if isinstance(value, (list, tuple)):
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return value
    return value


def _size(x: Any, name: str) -> int:
    """The number of problems: the first dimension of ``x`` (an array-like of problems)."""
    shape = np.shape(x.detach() if isinstance(x, torch.Tensor) else x)
    if len(shape) < 1:
        raise ShapeError(f"with batch=True and process_group= {name} needs one row per "
                         f"problem; got shape {shape}")
    return int(shape[0])


def _check(group: Group, B: int) -> slice:
    return share_each(B, group, "problems",
                      "solve them in one process (process_group=None) or on a smaller group")


@contextlib.contextmanager
def _on_share(group: Group, sl: slice) -> Iterator[None]:
    """The solver's errors on this rank's share, told that per-problem data must come through
    ``args`` (a :class:`ShapeError`) or that their problem numbers count within the share."""
    try:
        yield
    except ShapeError as exc:
        raise ShapeError(f"{exc}{_CLOSURE}") from exc
    except JacobiteError as exc:
        if sl.start == 0 or ("problem" not in str(exc) and "fit" not in str(exc)):
            raise
        raise type(exc)(f"{exc} (rank {group.rank} solves the problems from {sl.start} on: "
                        f"add {sl.start} to the problem numbers above for their place in the "
                        "batch)") from exc


def _check_split(fun: Callable[..., Any], x0: Any, opts: dict[str, Any],
                 mine: tuple[tuple[Any, ...], dict[str, Any]], sl: slice) -> None:
    """``fun`` on this rank's problems with their rows of ``args`` / ``kwargs`` must give those
    problems' rows of the residuals over the whole batch; otherwise a tensor whose first
    dimension is B by coincidence is shared by all problems, and cutting it is wrong."""
    x = as_start(x0, opts.get("dtype", torch.float64))
    with torch.no_grad():
        try:
            whole = fun(x, *opts.get("args", ()), **dict(opts.get("kwargs") or {}))
        except Exception:  # the solver's own checks report it on the share
            return
        try:
            part = fun(x[sl], *mine[0], **mine[1])
        except Exception:
            part = None
    if not isinstance(whole, torch.Tensor) or whole.shape[:1] != x.shape[:1]:
        return
    rows = sl.stop - sl.start
    want = whole[sl].reshape(rows, -1)
    if isinstance(part, torch.Tensor) and part.numel() == want.numel() and \
            _same(part.reshape(rows, -1).to(want.dtype), want):
        return
    raise ShapeError(
        "fun on this rank's problems, with their rows of the args / kwargs tensors whose first "
        "dimension is B, does not give their rows of the residuals of the whole batch: a "
        "tensor of first dimension B that all problems share is cut with the problems here; "
        "pass such a tensor with a leading dimension of 1 (e.g. t[None]) or through a "
        "closure, and per-problem data through args= with one row per problem")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to rounding (which may vary with the batch size), non-finite in the same places."""
    bad = ~torch.isfinite(b)
    scale = b.abs().nan_to_num(0.0, 0.0, 0.0).amax(1, keepdim=True)
    rtol = max(1e-10, 1e3 * torch.finfo(b.dtype).eps)
    close = (a - b).abs() <= rtol * scale.clamp_min(torch.finfo(b.dtype).tiny)
    return bool(((~torch.isfinite(a)) == bad).all()) and bool((close | bad).all())


def unbatched(process_group: Any, rows: str) -> None:
    """Refuse a ``process_group`` given to a single-problem solve."""
    if process_group is not None:
        raise InvalidOptionError(f"process_group= shares many problems among the ranks; pass "
                                 f"batch=True with one row of {rows} per problem (one problem "
                                 "is solved in one process)")


def solve_sharded(fun: Callable[..., Any], x0: Any, opts: dict[str, Any],
                  process_group: Any) -> BatchLeastSquaresResult:
    """``solve_batch(fun, x0, **opts)`` (the batched solver) with the problems shared over the
    group as the module doc says; the same result on every rank."""
    from .engine.batch import solve_batch as solve

    group = resolve(process_group)
    if group is None:
        return solve(fun, x0, **opts)
    with guarded(group, like=torch.zeros(2, dtype=torch.int64), kind="all_gather"):
        B = _size(x0, "x0")
        sl = _check(group, B)
        leaves, spec = tree_flatten((tuple(opts.get("args", ())), dict(opts.get("kwargs") or {})))
        if any(tracked(leaves[i]) for i in inexact(leaves)):
            raise UnsupportedOperationError(
                "least_squares(batch=True, process_group=...) gathers the solutions without "
                "their derivatives; solve in one process to differentiate them in args")
        cut = per_problem(leaves, B, sl)
        args, kwargs = tree_unflatten(cut, spec)
        if any(a is not c for a, c in zip(leaves, cut, strict=True)):
            _check_split(fun, x0, opts, (tuple(args), kwargs), sl)
        mine = dict(opts, args=tuple(args), kwargs=kwargs)
        lo, hi = opts.get("bounds", (-np.inf, np.inf))
        mine["bounds"] = tuple(per_problem([_array(lo), _array(hi)], B, sl, min_ndim=2))
        mine["x_scale"] = per_problem([_array(opts.get("x_scale", "jac"))], B, sl, min_ndim=2)[0]
        mine["f_scale"] = per_problem([_array(opts.get("f_scale", 1.0))], B, sl)[0]
        x = x0[sl] if isinstance(x0, (torch.Tensor, np.ndarray)) else np.asarray(x0)[sl]
        with _on_share(group, sl):
            res = solve(fun, x, **mine)
        tree = {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}
        out = gather_batch(tree, group, dst=None)
    return BatchLeastSquaresResult(**out)


def fit_sharded(f: Callable[..., Any], xdata: Any, ydata: Any, p0: Any, opts: dict[str, Any],
                process_group: Any) -> tuple[Any, ...]:
    """``curve_fit_batch(f, xdata, ydata, p0, **opts)`` with the fits shared over the group;
    ``(popt, pcov)`` (or the five outputs of ``full_output``) on every rank."""
    from .engine.batch_curve import curve_fit_batch as fit

    group = resolve(process_group)
    if group is None:
        return fit(f, xdata, ydata, p0, **opts)
    with guarded(group, like=torch.zeros(2, dtype=torch.int64), kind="all_gather"):
        B = _size(ydata, "ydata")
        sl = _check(group, B)
        y = ydata[sl] if isinstance(ydata, (torch.Tensor, np.ndarray)) else np.asarray(ydata)[sl]
        x, start = per_problem([_array(xdata), _array(p0)], B, sl, min_ndim=2)
        mine = dict(opts)
        if opts.get("sigma") is not None:
            mine["sigma"] = per_problem([_array(opts["sigma"])], B, sl, min_ndim=2)[0]
        if "bounds" in opts and not hasattr(opts["bounds"], "lb"):
            mine["bounds"] = tuple(per_problem([_array(b) for b in opts["bounds"]], B, sl,
                                               min_ndim=2))
        with _on_share(group, sl):
            out = fit(f, x, y, start, **mine)
        tree: dict[str, Any] = {"popt": torch.as_tensor(out[0]), "pcov": torch.as_tensor(out[1])}
        if len(out) == 5:
            info, mesg, ier = out[2], out[3], out[4]
            res = info["result"]
            tree.update(nfev=torch.as_tensor(info["nfev"]), njev=torch.as_tensor(info["njev"]),
                        fvec=torch.as_tensor(info["fvec"]), mesg=list(mesg),
                        ier=torch.as_tensor(ier),
                        result={k.name: getattr(res, k.name) for k in dataclasses.fields(res)})
        got = gather_batch(tree, group, dst=None)
    popt, pcov = got["popt"].numpy(), got["pcov"].numpy()
    if "result" not in got:
        return popt, pcov
    info = {"nfev": got["nfev"].numpy(), "njev": got["njev"].numpy(),
            "fvec": got["fvec"].numpy(), "result": BatchLeastSquaresResult(**got["result"])}
    return popt, pcov, info, got["mesg"], got["ier"].numpy()
