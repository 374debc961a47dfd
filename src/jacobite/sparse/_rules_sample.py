"""Dependency rules for ``grid_sample`` (``grid_sampler_2d`` / ``_3d``) and its backward.

Output ``(n, c, *q)`` reads the input plane ``(n, c)`` at the point that ``grid[n, *q, :]``
names, so it depends on that grid row and on the input pixels around the point. Which pixels
those are depends on the grid's *values*: when the grid depends on ``x`` a global pattern must
allow the whole plane; when the grid is a constant, its values give the taps (1 for nearest,
2 per axis for bilinear, 4 per axis for bicubic, each widened where rounding could move the point
across a pixel boundary, and mapped through the padding mode). Nearest sampling is piecewise
constant in the grid, so its derivative with respect to the grid is zero and is not recorded.

>>> import torch
>>> import torch.nn.functional as F
>>> from jacobite.sparse.detect import detect
>>> img = torch.arange(16.0).reshape(1, 1, 4, 4)
>>> p = detect(lambda g: F.grid_sample(img, g.reshape(1, 1, 2, 2), align_corners=False),
...            torch.zeros(4))
>>> p.to_scipy().toarray().astype(int).tolist()
[[1, 1, 0, 0], [0, 0, 1, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._registry import Call, rule
from ._rules import Deps, bind, union

aten = torch.ops.aten

BILINEAR, NEAREST, BICUBIC = 0, 1, 2
ZEROS, BORDER, REFLECTION = 0, 1, 2

FORWARD_OPS = {aten.grid_sampler_2d.default, aten.grid_sampler_3d.default,
               aten._grid_sampler_2d_cpu_fallback.default}
BACKWARD_OPS = {aten.grid_sampler_2d_backward.default, aten.grid_sampler_3d_backward.default,
                aten._grid_sampler_2d_cpu_fallback_backward.default}


@dataclass(frozen=True)
class _Support:
    """Which input elements each output element may read: ``S`` (outputs × inputs), or ``None``
    for "the whole plane", kept as the plane indicators ``p_out`` / ``p_in`` so that the
    (possibly huge) plane-block matrix is never built."""

    s: sp.csr_matrix | None
    p_out: sp.csr_matrix
    p_in: sp.csr_matrix

    def forward(self, d: sp.csr_matrix) -> sp.csr_matrix:
        """Rows of the outputs from rows of the inputs."""
        if self.s is not None:
            return (self.s @ d).tocsr()
        return (self.p_out @ (self.p_in.T @ d)).tocsr()

    def backward(self, d: sp.csr_matrix) -> sp.csr_matrix:
        """Rows of the inputs from rows of the outputs (the transpose)."""
        if self.s is not None:
            return (self.s.T @ d).tocsr()
        return (self.p_in @ (self.p_out.T @ d)).tocsr()


def _planes(n_planes: int, per: int) -> sp.csr_matrix:
    rows = np.arange(n_planes * per)
    return sp.csr_matrix((np.ones(rows.size, bool), (rows, rows // per)),
                         shape=(rows.size, n_planes))


def _reflect(x: np.ndarray, size: int, align: bool) -> np.ndarray:
    """grid_sample's reflection of source coordinates, then the clip to ``[0, size - 1]``."""
    lo2, hi2 = (0, 2 * (size - 1)) if align else (-1, 2 * size - 1)
    if lo2 == hi2:
        return np.zeros_like(x)
    lo, span = lo2 / 2, (hi2 - lo2) / 2
    a = np.abs(x - lo)
    extra = np.fmod(a, span)
    flips = np.floor(a / span)
    out = np.where(flips % 2 == 0, extra + lo, span - extra + lo)
    return np.clip(out, 0, size - 1)


def _pad(x: np.ndarray, size: int, padding: int, align: bool) -> np.ndarray:
    if padding == BORDER:
        return np.clip(x, 0, size - 1)
    if padding == REFLECTION:
        return _reflect(x, size, align)
    return x


def _taps(x: np.ndarray, size: int, mode: int, padding: int, align: bool,
          eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Candidate integer positions along one axis: ``(pos, ok)`` of shape ``(..., k)``."""
    if mode != BICUBIC:
        x = _pad(x, size, padding, align)
    if not (mode == BICUBIC and padding == REFLECTION):  # reflected taps need the true x
        x = np.clip(x, -8.0, size + 8.0)  # far outside stays outside; floor stays an int
    slack = eps * (np.abs(x) + size + 1)
    lo_x, hi_x = x - slack, x + slack
    if mode == NEAREST:
        lo, hi, width = np.rint(lo_x), np.rint(hi_x), 2
    elif mode == BILINEAR:
        lo, hi, width = np.floor(lo_x), np.floor(hi_x) + 1, 3
    else:
        lo, hi, width = np.floor(lo_x) - 1, np.floor(hi_x) + 2, 5
    pos = lo[..., None] + np.arange(width)
    ok = pos <= hi[..., None]
    if mode == BICUBIC and padding != ZEROS:
        pos = np.trunc(_pad(pos, size, padding, align))
    ok &= (pos >= 0) & (pos <= size - 1)
    return pos.astype(np.int64), ok


def support(inp: torch.Tensor, grid: torch.Tensor, mode: int, padding: int, align: bool,
            grid_varies: bool) -> _Support:
    """The input elements each output element of ``grid_sample(inp, grid)`` may read."""
    n, c = int(inp.shape[0]), int(inp.shape[1])
    in_sp = [int(s) for s in inp.shape[2:]]
    out_sp = [int(s) for s in grid.shape[1:-1]]
    per_in, per_out = int(np.prod(in_sp)), int(np.prod(out_sp))
    p_in, p_out = _planes(n * c, per_in), _planes(n * c, per_out)
    g = grid.detach().cpu().double().numpy().reshape(n, per_out, len(in_sp))
    if grid_varies or not np.isfinite(g).all() or (
            mode == BICUBIC and padding == REFLECTION and np.abs(g).max(initial=0) > 2**16):
        return _Support(None, p_out, p_in)
    eps = 16 * float(torch.finfo(grid.dtype).eps)
    flat = np.zeros((n, per_out, 1), np.int64)
    ok = np.ones((n, per_out, 1), bool)
    stride = 1
    for k in range(len(in_sp)):  # grid[..., 0] indexes the last spatial axis
        size = in_sp[-1 - k]
        u = g[..., k]
        x = ((u + 1) / 2) * (size - 1) if align else ((u + 1) * size - 1) / 2
        pos, okk = _taps(x, size, mode, padding, align, eps)
        flat = (flat[..., :, None] + stride * pos[..., None, :]).reshape(n, per_out, -1)
        ok = (ok[..., :, None] & okk[..., None, :]).reshape(n, per_out, -1)
        stride *= size
    rows = (np.arange(n)[:, None, None, None] * c + np.arange(c)[None, :, None, None]) * per_out
    rows = rows + np.arange(per_out)[None, None, :, None]
    cols = (np.arange(n)[:, None, None, None] * c + np.arange(c)[None, :, None, None]) * per_in
    cols = cols + flat[:, None]
    keep = np.broadcast_to(ok[:, None], np.broadcast_shapes(rows.shape, cols.shape))
    rows, cols = np.broadcast_arrays(rows, cols)
    s = sp.csr_matrix((np.ones(int(keep.sum()), bool), (rows[keep], cols[keep])),
                      shape=(n * c * per_out, n * c * per_in))
    s.sum_duplicates()
    return _Support(s, p_out, p_in)


def grid_rows(inp: torch.Tensor, grid: torch.Tensor) -> sp.csr_matrix:
    """``G`` (outputs × grid elements): output ``(n, c, *q)`` reads the row ``grid[n, *q, :]``."""
    n, c, dims = int(inp.shape[0]), int(inp.shape[1]), int(grid.shape[-1])
    per_out = int(np.prod([int(s) for s in grid.shape[1:-1]]))
    out = np.arange(n * c * per_out).reshape(n, c, per_out)
    cell = (np.arange(n)[:, None, None] * per_out + np.arange(per_out)[None, None, :])
    cols = np.broadcast_to(cell, out.shape)[..., None] * dims + np.arange(dims)
    rows = np.broadcast_to(out[..., None], cols.shape)
    return sp.csr_matrix((np.ones(rows.size, bool), (rows.reshape(-1), cols.reshape(-1))),
                         shape=(out.size, n * per_out * dims))


def _arguments(b: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int, int, bool]:
    """``(input, grid, mode, padding, align_corners)`` from the bound arguments."""
    if "self" in b:  # cudnn: bilinear, zeros, align_corners=True
        return b["self"], b["grid"], BILINEAR, ZEROS, True
    return (b["input"], b["grid"], int(b["interpolation_mode"]), int(b["padding_mode"]),
            bool(b["align_corners"]))


@rule(*FORWARD_OPS, aten.cudnn_grid_sampler.default)
def grid_sample_forward(c: Call) -> list[Deps]:
    """Output deps: the support's input rows, plus the own grid row (not for nearest)."""
    inp, grid, mode, padding, align = _arguments(bind(c.func, c.args, c.kwargs))
    d_in, d_grid = c.deps(inp), c.deps(grid)
    parts: list[Deps] = []
    if d_in is not None:
        parts.append(support(inp, grid, mode, padding, align, c.tainted(grid)).forward(d_in))
    if d_grid is not None and mode != NEAREST:
        parts.append((grid_rows(inp, grid) @ d_grid).tocsr())
    return [union(parts)]


@rule(*BACKWARD_OPS, aten.cudnn_grid_sampler_backward.default)
def grid_sample_backward(c: Call) -> list[Deps]:
    """``(grad_input, grad_grid)`` from the incoming gradient ``g`` (outputs' shape):

    ``grad_input = Sᵀ g`` with weights from the grid, so it sees ``Sᵀ`` of ``g``'s and of ``G``
    times the grid's rows; ``grad_grid[n, *q, :]`` sees ``g`` over all channels at ``q``, the
    input taps ``S`` and its own grid row (none of it for nearest, whose grid gradient is 0).
    """
    b = bind(c.func, c.args, c.kwargs)
    inp, grid, mode, padding, align = _arguments(b)
    d_in, d_grid, d_g = c.deps(inp), c.deps(grid), c.deps(b["grad_output"])
    sup = support(inp, grid, mode, padding, align, c.tainted(grid))
    gmat = grid_rows(inp, grid)
    # rows of the outputs' positions: g itself, the grid row each output reads
    at_out = union([d_g, (gmat @ d_grid).tocsr() if d_grid is not None else None])
    grad_in = sup.backward(at_out) if at_out is not None else None
    grad_grid: Deps = None
    if mode != NEAREST:
        reads = union([at_out, sup.forward(d_in) if d_in is not None else None])
        grad_grid = (gmat.T @ reads).tocsr() if reads is not None else None
    return [grad_in, grad_grid][: len(c.outs)]
