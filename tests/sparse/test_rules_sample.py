"""The ``grid_sample`` sparsity rules: sound against dense reverse-mode Jacobians and Hessians
(every interpolation and padding mode, both ``align_corners``, 2-D and 3-D, grids on and off the
pixel lattice), exact per-pixel blocks for d(warped image)/d(grid)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jacobite.sparse as js
from jacobite.errors import JacobiteWarning

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")


def _grid(rng: np.random.Generator, shape: tuple[int, ...], sizes: list[int],
          align: bool, spread: float) -> torch.Tensor:
    """Random grid values, a third of them snapped to pixel centres or half-pixel boundaries
    (where rounding decides between neighbours)."""
    g = rng.uniform(-spread, spread, shape)
    snap = rng.random(shape) < 0.35
    for k, size in enumerate(sizes):  # grid[..., k] indexes the k-th axis from the end
        i = rng.integers(-2, 2 * size + 2, shape[:-1]) / 2
        u = 2 * i / (size - 1) - 1 if align and size > 1 else (2 * i + 1) / size - 1
        g[..., k] = np.where(snap[..., k], u, g[..., k])
    return torch.tensor(g, dtype=torch.float64)


def _missed(pattern: np.ndarray, dense: torch.Tensor) -> int:
    nonzero = dense.detach().reshape(pattern.shape).numpy() != 0
    return int((nonzero & ~pattern).sum())


def _detect(f, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)  # no dense fallback
        return js.detect(f, x)


def _wrt(fn, img: torch.Tensor, grid: torch.Tensor, wrt: str):
    """The flat input ``x`` and ``f(x) = fn(image, grid)`` for ``wrt`` in image, grid, both."""
    if wrt == "image":
        return img.reshape(-1), lambda v: fn(v.reshape(img.shape), grid)
    if wrt == "grid":
        return grid.reshape(-1), lambda v: fn(img, v.reshape(grid.shape))
    ni = img.numel()
    return (torch.cat([img.reshape(-1), grid.reshape(-1)]),
            lambda v: fn(v[:ni].reshape(img.shape), v[ni:].reshape(grid.shape)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES), padding=st.sampled_from(PADDINGS), align=st.booleans(),
       three_d=st.booleans(), wrt=st.sampled_from(("image", "grid", "both")),
       seed=st.integers(0, 2**31 - 1), spread=st.sampled_from((1.0, 1.4, 3.0)),
       single=st.booleans())
def test_pattern_holds_every_nonzero(mode, padding, align, three_d, wrt, seed, spread, single):
    if three_d and mode == "bicubic":
        mode = "bilinear"  # grid_sample has no 3-D bicubic
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    sizes_in = [int(s) for s in rng.integers(1, 5, 3 if three_d else 2)]
    sizes_out = [int(s) for s in rng.integers(1, 4, 3 if three_d else 2)]
    img = torch.tensor(rng.normal(size=(n, c, *sizes_in)))
    grid = _grid(rng, (n, *sizes_out, len(sizes_in)), sizes_in[::-1], align, spread)
    if single:  # float32 rounds the unnormalised point differently from float64
        img, grid = img.float(), grid.float()

    def sample(im, g):
        return F.grid_sample(im, g, mode=mode, padding_mode=padding, align_corners=align)

    x, f = _wrt(sample, img, grid, wrt)
    pat = _detect(f, x)
    assert not pat.fallback_ops
    dense = torch.func.jacrev(f)(x).reshape(-1, x.numel())
    assert _missed(pat.to_scipy().toarray(), dense) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(("bilinear", "bicubic")), padding=st.sampled_from(PADDINGS),
       align=st.booleans(), wrt=st.sampled_from(("image", "grid", "both")),
       seed=st.integers(0, 2**31 - 1))
def test_hessian_pattern_holds_every_nonzero(mode, padding, align, wrt, seed):
    rng = np.random.default_rng(seed)
    img = torch.tensor(rng.normal(size=(1, 2, 3, 4)))
    grid = _grid(rng, (1, 2, 3, 2), [4, 3], align, 1.2)
    w = torch.tensor(rng.normal(size=(1, 2, 2, 3)))

    def loss(im, g):
        out = F.grid_sample(im, g, mode=mode, padding_mode=padding, align_corners=align)
        return (w * out * out).sum() + (out * g.sum(-1).unsqueeze(1)).sum()

    x, f = _wrt(loss, img, grid, wrt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", JacobiteWarning)
        pat = js.detect_hessian(f, x)
    dense = torch.func.jacrev(torch.func.jacrev(f))(x)  # no forward mode for grid_sample
    assert _missed(pat.to_scipy().toarray(), dense) == 0


def test_constant_grid_reads_the_four_neighbours():
    img = torch.zeros(1, 1, 5, 6, dtype=torch.float64)
    grid = torch.tensor([[[[-0.31, 0.17], [0.52, -0.66]]]], dtype=torch.float64)
    pat = _detect(lambda v: F.grid_sample(v.reshape(img.shape), grid, align_corners=False),
                  img.reshape(-1))
    rows = pat.to_scipy().toarray()
    assert rows.sum(1).tolist() == [4, 4]
    jac = torch.func.jacrev(lambda v: F.grid_sample(v.reshape(img.shape), grid,
                                                    align_corners=False))(img.reshape(-1))
    np.testing.assert_array_equal(rows, jac.reshape(2, -1).numpy() != 0)


def test_constant_grid_nearest_and_bicubic_tap_counts():
    img = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    grid = torch.tensor([[[[-0.31, 0.17]]]], dtype=torch.float64)
    counts = {}
    for mode in ("nearest", "bilinear", "bicubic"):
        pat = _detect(lambda v, m=mode: F.grid_sample(v.reshape(img.shape), grid, mode=m,
                                                      align_corners=True), img.reshape(-1))
        counts[mode] = pat.nnz
    assert counts == {"nearest": 1, "bilinear": 4, "bicubic": 16}


def test_traced_grid_allows_the_whole_plane():
    img = torch.zeros(2, 1, 3, 3, dtype=torch.float64)

    def f(v):  # the grid is computed from x, so any pixel of the plane may be read
        g = v[:2].reshape(1, 1, 1, 2).expand(2, 1, 1, 2)
        return F.grid_sample(v[2:].reshape(img.shape), g, align_corners=False)

    rows = _detect(f, torch.zeros(2 + img.numel(), dtype=torch.float64)).to_scipy().toarray()
    assert rows[0, 2:11].all() and not rows[0, 11:].any()
    assert rows[1, 11:].all() and not rows[1, 2:11].any()
    assert rows[:, :2].all()


@pytest.mark.parametrize("mode", MODES)
def test_warped_image_against_grid_is_per_pixel_blocks(mode):
    rng = np.random.default_rng(3)
    img = torch.tensor(rng.normal(size=(1, 2, 6, 7)))
    grid = torch.tensor(rng.uniform(-0.9, 0.9, (1, 4, 5, 2)))
    f = lambda v: F.grid_sample(img, v.reshape(grid.shape), mode=mode,  # noqa: E731
                                align_corners=False)
    pat = _detect(f, grid.reshape(-1)).to_scipy().toarray()
    if mode == "nearest":  # piecewise constant: zero derivative
        assert not pat.any()
        return
    # output (c, h, w) depends on grid[h, w, 0:2] only
    expect = np.zeros((2, 20, 20, 2), bool)
    for c in range(2):
        for q in range(20):
            expect[c, q, q, :] = True
    np.testing.assert_array_equal(pat, expect.reshape(40, 40))


@pytest.mark.parametrize("wrt", ["image", "grid"])
def test_sparse_plan_gives_the_jacobian_in_reverse_mode(wrt):
    # torch has no forward-mode derivative of grid_sample: the plan must use VJPs
    rng = np.random.default_rng(5)
    img = torch.tensor(rng.normal(size=(1, 3, 9, 10)))
    grid = torch.tensor(rng.uniform(-0.95, 0.95, (1, 6, 7, 2)))
    x, f = _wrt(lambda im, g: F.grid_sample(im, g, align_corners=False).reshape(-1), img, grid,
                wrt)
    plan = js.prepare(f, x)
    assert plan.mode == "reverse"
    dense = torch.func.jacrev(f)(x)
    torch.testing.assert_close(plan.jacobian(x).to_dense(), dense, rtol=0, atol=1e-12)
    if wrt == "grid":  # each pixel's three channels read its own two grid entries
        assert plan.colors <= 6


def test_float32_rounding_across_a_pixel_boundary_is_covered():
    # float32 unnormalises this point to 6.9999995 (pixel 6 gets a tiny nonzero weight) where
    # float64 gives 7.00000004: the taps are widened where rounding could cross a boundary
    u = torch.tensor(-0.3913043439388275, dtype=torch.float32)
    grid = torch.stack([u, torch.tensor(0.0)]).reshape(1, 1, 1, 2)
    img = torch.rand(1, 1, 3, 24)

    def f(v):
        return F.grid_sample(v.reshape(img.shape), grid, align_corners=True)

    jac = torch.func.jacrev(f)(img.reshape(-1)).reshape(1, -1)
    assert jac[0, 24 + 6] != 0
    pat = _detect(f, img.reshape(-1)).to_scipy().toarray()
    assert _missed(pat, jac) == 0


def test_cudnn_ops_get_the_bilinear_zeros_align_corners_rules():
    # on CUDA, grid_sample may dispatch to cuDNN's sampler (bilinear, zeros, align_corners=True)
    import scipy.sparse as sp

    from jacobite.sparse._registry import Call, lookup

    aten = torch.ops.aten
    rng = np.random.default_rng(2)
    img = torch.tensor(rng.normal(size=(1, 2, 4, 5)))
    grid = torch.tensor(rng.uniform(-1, 1, (1, 3, 2, 2)))
    out = aten.grid_sampler_2d(img, grid, 0, 0, True)
    eye = sp.identity(img.numel() + out.numel(), dtype=bool, format="csr")
    gout = torch.ones_like(out)

    def deps(t):
        if t is img:
            return eye[: img.numel()]
        return eye[img.numel():] if t is gout else None

    def run(func, args, outs):
        call = Call(func, args, {}, outs, deps, lambda t: False, eye.shape[0])
        return [None if d is None else d.toarray() for d in lookup(func)(call)]

    fwd = run(aten.cudnn_grid_sampler.default, (img, grid), [out])
    ref = run(aten.grid_sampler_2d.default, (img, grid, 0, 0, True), [out])
    np.testing.assert_array_equal(fwd[0], ref[0])
    grads = list(aten.grid_sampler_2d_backward(gout, img, grid, 0, 0, True, [True, True]))
    bwd = run(aten.cudnn_grid_sampler_backward.default, (img, grid, gout), grads)
    ref = run(aten.grid_sampler_2d_backward.default,
              (gout, img, grid, 0, 0, True, [True, True]), grads)
    for a, b in zip(bwd, ref, strict=True):
        np.testing.assert_array_equal(a, b)
    assert bwd[0] is not None and bwd[1] is not None
