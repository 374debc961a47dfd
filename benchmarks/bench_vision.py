"""Image alignment and warp Jacobians: jacobite.vision beside kornia's ImageRegistrator and
torch.func.jacrev.

Five tables, 1 thread, side by side in one process; times are medians (with the range) of
interleaved repeats on the runner's clock (``bench_dense_overhead.bench_clock``).

1. Homography alignment, 128 × 128, corners displaced up to 8 px (seeded), on a smooth
   synthetic texture and on a crop of scikit-image's ``camera()``: ``jacobite.vision.align`` vs
   ``kornia.geometry.ImageRegistrator("homography")`` at its defaults and at the best of a scan
   of learning rates. kornia's matrix is converted to pixels (it maps target points to source
   points in ``align_corners=False`` normalised coordinates; checked against a known warp in
   every run). Target: jacobite ≤ 100 ms to a corner error < 0.01 px, no learning rate.
2. The warp Jacobian of a 128 × 128 homography warp (16,384 × 8): ``warp_jacobian`` vs dense
   ``torch.func.jacrev`` (run once: it takes tens of seconds). Targets: ≤ 10 ms, equal to
   1e-5 relative.
3. A 10 px translation of a 256 × 256 photograph with the pyramid. Target: converges, ≤ 30 ms.
4. 64 affine pairs (64 × 64 textures) in one ``align`` call vs 64 calls. Target: ≥ 5× faster.
5. What ``status`` says on 64 affine pairs of 64 × 64 crops of ``camera()`` (flat ones
   included): how many "converged" pairs are within 0.01 px of the truth. No target.

    python -m benchmarks.run --only vision --output /tmp/vision.md   # [--quick]
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from . import _vision_cases as vc
from ._common import Section, capped, have, median, met
from .bench_dense_overhead import bench_clock, clock_note, time_interleaved

F32, F64 = torch.float32, torch.float64
LRS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
JACREV_CAP = 180.0


def _rounds(fns: list[Callable[[], object]], quick: bool) -> list[list[float]]:
    """Per-round seconds of each of ``fns`` (one call a round, rounds interleaved)."""
    return time_interleaved(fns, repeats=2 if quick else 5, min_time=0.0)


def _ms(samples: list[float]) -> tuple[str, str]:
    """The median in ms and the range ``min–max`` in ms, to four significant digits."""
    return (f"{median(samples) * 1e3:.4g}",
            f"{min(samples) * 1e3:.4g}–{max(samples) * 1e3:.4g}")


def _cases(quick: bool) -> list[tuple[str, vc.CornerCase]]:
    n = 64 if quick else 128
    out = [("texture", vc.corner_case(vc.texture(n + 64, seed=1), 32, 32, n=n, seed=0))]
    if have("skimage"):
        out.append(("camera()", vc.corner_case(vc.photo("camera"), 190, 70, n=n, seed=0)))
    return out


def _kornia(lr: float, tolerance: float = 1e-4) -> Callable[[vc.CornerCase], np.ndarray]:
    from kornia.geometry import ImageRegistrator

    def run(case: vc.CornerCase) -> np.ndarray:
        reg = ImageRegistrator("homography", lr=lr, tolerance=tolerance)
        M = reg.register(case.source.float()[None, None], case.target.float()[None, None])
        assert isinstance(M, torch.Tensor)  # a tensor without output_intermediate_models
        return vc.kornia_to_pixels(M.detach()[0].double().numpy(), case.n, case.n)

    return run


def _jacobite(dtype: torch.dtype, **options: Any) -> Callable[[vc.CornerCase], Any]:
    from jacobite.vision import align

    def run(case: vc.CornerCase) -> Any:
        return align(case.source.to(dtype), case.target.to(dtype), "homography", **options)

    return run


def _bind(route: Callable[[vc.CornerCase], object], case: vc.CornerCase
          ) -> Callable[[], object]:
    return lambda: route(case)


def homography(quick: bool) -> Section:
    n = 64 if quick else 128
    sec = Section(f"bench_vision: homography alignment, {n}×{n}, corners displaced up to 8 px "
                  "(1 thread)", ["image", "route", "ms (median)", "ms (range)",
                                 "× jacobite float32", "corner error (px)", "iterations"])
    lrs = LRS[::2] if quick else LRS
    worst: tuple[float, float] = (0.0, 0.0)
    notes: list[str] = []
    for label, case in _cases(quick):
        j32, j64 = _jacobite(F32), _jacobite(F64)
        jic = _jacobite(F32, method="inverse_compositional")
        names = ["jacobite align, float32", "jacobite align, float64",
                 "jacobite align, method='inverse_compositional', float32"]
        fns: list[Callable[[], object]] = [_bind(j32, case), _bind(j64, case), _bind(jic, case)]
        results = [j32(case), j64(case), jic(case)]
        errs = [vc.corner_error(r.matrix[0].numpy(), case.H, n) for r in results]
        its = [f"{r.iterations[0].tolist()} {r.status[0]}" for r in results]
        if have("kornia"):
            gap = vc.kornia_convention_gap(case)
            _kornia(1e-3)(case)  # a first call, so that no scan entry pays the warm-up
            scan = []
            clock = bench_clock()
            for lr in lrs:
                t0 = clock()
                err = vc.corner_error(_kornia(lr)(case), case.H, n)
                scan.append((err, clock() - t0, lr))
            best = min(scan)[2]
            notes.append(f"{label}: kornia's learning-rate scan (one run each, corner error px "
                         f"/ ms): " + "; ".join(f"lr {lr:g}: {e:.3g} / {t * 1e3:.0f}"
                                                for e, t, lr in scan)
                         + f"; best {best:g}. Convention check: kornia's warper handed the "
                           f"true matrix as N H N⁻¹ reproduces the target to {gap:.1e}.")
            routes = [(1e-3, 1e-4, "defaults (Adam, lr 1e-3)")]
            routes += [(best, 1e-4, f"best lr {best:g}")] if best != 1e-3 else []
            routes += [(1e-3, 0.0, "lr 1e-3, no early stop (tolerance 0)")]
            for lr, tol, tag in routes:
                k = _kornia(lr, tol)
                names.append(f"kornia ImageRegistrator, {tag}, float32")
                fns.append(_bind(k, case))
                errs.append(vc.corner_error(k(case), case.H, n))
                its.append("5 levels, ≤ 100 each" if tol else "5 levels, 100 each")
        samples = _rounds(fns, quick)
        base = samples[0]
        for name, s, e, it in zip(names, samples, errs, its, strict=True):
            ms, rng = _ms(s)
            ratio = median([b / a for a, b in zip(base, s, strict=True)])
            sec.rows.append([label, name, ms, rng, ratio, e, it])
        worst = (max(worst[0], median(base) * 1e3), max(worst[1], errs[0]))
    if not have("kornia"):
        notes.append("kornia: not installed (`pip install kornia`); its rows are skipped.")
    if not have("skimage"):
        notes.append("scikit-image: not installed (`pip install scikit-image`); the photograph "
                     "row is skipped.")
    sec.notes.append(f"Target: jacobite ≤ 100 ms to a corner error < 0.01 px with no learning "
                     f"rate (float32, worst image: {worst[0]:.1f} ms, {worst[1]:.1e} px: "
                     f"{met(worst[0] <= 100 and worst[1] < 0.01)}).")
    sec.notes += notes
    sec.notes.append("The target is the source's world image read through the true homography, "
                     "so it has no black border; the corner error is the largest distance "
                     "between the true and the found images of the target's four corners, in "
                     "source pixels. kornia's matrix maps target points to source points in "
                     "normalised coordinates (align_corners=False); its pixel matrix is "
                     "N⁻¹ M N. kornia stops a level when its L1 loss changes by < 1e-4 (its "
                     "default tolerance); the last kornia row runs all 100 Adam steps of every "
                     "level, to show where its constant-step descent levels off.")
    sec.notes.append(clock_note())
    return sec


def jacobian(quick: bool) -> Section:
    from jacobite.vision import warp, warp_jacobian

    n = 32 if quick else 128
    sec = Section(f"bench_vision: warp Jacobian, homography, {n}×{n} ({n * n:,} × 8, float64, "
                  "1 thread)", ["route", "ms (median)", "ms (range)", "max rel. diff vs jacrev"])
    img = (vc.photo("camera")[100:100 + n, 150:150 + n] if have("skimage")
           else vc.texture(n, seed=2)).contiguous()
    theta = torch.tensor([0.01, -0.02, 1.5, 0.015, 0.005, -2.0, 1e-4, -5e-5], dtype=F64)
    J = warp_jacobian(img, "homography", theta).to_dense()
    samples = time_interleaved([lambda: warp_jacobian(img, "homography", theta),
                                lambda: warp_jacobian(img, "homography", theta).to_dense(),
                                lambda: warp(img, "homography", theta)],
                               repeats=3 if quick else 11, min_time=0.01 if quick else 0.05)
    clock = bench_clock()
    t0 = clock()
    _, ref = capped(lambda: torch.func.jacrev(
        lambda t: warp(img, "homography", t).reshape(-1), chunk_size=512)(theta), JACREV_CAP)
    t_rev = clock() - t0
    rel = (float((J - ref).abs().max() / ref.abs().max()) if ref is not None else float("nan"))
    names = ["warp_jacobian (structured operator)", "warp_jacobian(...).to_dense()",
             "warp alone (for scale)"]
    for name, s in zip(names, samples, strict=True):
        sec.rows.append([name, *_ms(s), rel if "dense" in name else "—"])
    sec.rows.append(["torch.func.jacrev, dense, one run", f"{t_rev * 1e3:.0f}",
                     "one run" if ref is not None else f"stopped at {JACREV_CAP:.0f} s", "—"])
    t = median(samples[1]) * 1e3
    sec.notes.append(f"Targets: ≤ 10 ms ({t:.2f} ms with to_dense: {met(t <= 10)}); equal to "
                     f"jacrev to 1e-5 relative ({rel:.1e}: {met(rel <= 1e-5)}).")
    sec.notes.append("jacrev pulls back one output pixel at a time (vmap over the rows, 512 "
                     "rows a chunk: unchunked it holds ~17 GB at 128 × 128); "
                     "jacfwd would need eight pushes, but grid_sample has no forward-mode "
                     "derivative in torch. " + clock_note())
    return sec


def translation(quick: bool) -> Section:
    from jacobite.vision import align

    sec = Section("bench_vision: 10 px translation of a 256×256 photograph, with the pyramid "
                  "(1 thread)", ["image", "dtype", "ms (median)", "ms (range)", "status",
                                 "iterations per level (coarse→fine)", "error (px)"])
    if not have("skimage"):
        sec.rows.append(["skipped: install scikit-image", "", "", "", "", "", ""])
        return sec
    worst, ok = 0.0, True
    for name in ("camera", "astronaut"):
        world = vc.photo(name)
        for dtype in (F32, F64):
            src = world[128:384, 128:384].to(dtype).contiguous()
            tgt = world[128:384, 138:394].to(dtype).contiguous()  # target(p) = source(p + 10 x̂)
            res = align(src, tgt, "translation")
            (s,) = _rounds([partial(align, src, tgt, "translation")], quick)
            err = float((res.params[0].double() - torch.tensor([10.0, 0.0], dtype=F64))
                        .norm())
            sec.rows.append([f"{name}()", str(dtype).removeprefix("torch."), *_ms(s),
                             res.status[0], str(res.iterations[0].tolist()), err])
            worst = max(worst, median(s) * 1e3)
            ok = ok and res.status[0] == "converged" and err < 0.01
    sec.notes.append(f"Target: converges, ≤ 30 ms (slowest {worst:.1f} ms, "
                     f"{'all converged to < 0.01 px' if ok else 'not all converged'}: "
                     f"{met(ok and worst <= 30)}).")
    sec.notes.append("The pyramid halves down to a 32-pixel side (4 levels at 256). "
                     + clock_note())
    return sec


def batched(quick: bool) -> Section:
    from jacobite.vision import align

    count, n = (8, 32) if quick else (64, 64)
    sec = Section(f"bench_vision: {count} affine pairs {n}×{n} in one call vs {count} calls "
                  "(float64, 1 thread)", ["route", "ms (median)", "ms (range)",
                                          "× one call's time", "converged",
                                          "max param error"])
    src, tgt, truth = vc.affine_batch(count, n, seed=0)
    one = align(src, tgt, "affine")
    loop = [align(src[i], tgt[i], "affine") for i in range(count)]
    s_one, s_loop = _rounds([lambda: align(src, tgt, "affine"),
                             lambda: [align(src[i], tgt[i], "affine") for i in range(count)]],
                            quick)
    err_one = float((one.params - truth).abs().max())
    err_loop = max(float((r.params[0] - truth[i]).abs().max()) for i, r in enumerate(loop))
    ratio = median([b / a for a, b in zip(s_one, s_loop, strict=True)])
    sec.rows.append([f"align, {count} pairs in one call", *_ms(s_one), 1.0,
                     f"{sum(s == 'converged' for s in one.status)}/{count}", err_one])
    sec.rows.append([f"align, {count} single calls", *_ms(s_loop), ratio,
                     f"{sum(r.status[0] == 'converged' for r in loop)}/{count}", err_loop])
    sec.notes.append(f"Target: one call ≥ 5× faster than single calls ({ratio:.1f}×: "
                     f"{met(ratio >= 5)}). Iterations on the finest level: up to "
                     f"{int(one.iterations[:, -1].max())}, median "
                     f"{float(one.iterations[:, -1].double().median()):.0f}.")
    sec.notes.append("Textures differ per pair (seeded), each target its own random affine map "
                     "(≤ 3 % linear change, ≤ 3 px shift). " + clock_note())
    return sec


def truthful(quick: bool) -> Section:
    from jacobite.vision import align

    count, n = (16, 64) if quick else (64, 64)
    sec = Section(f"bench_vision: what the status says, {count} affine pairs of {n}×{n} "
                  "camera() crops in one call (float64, 1 thread)",
                  ["method", "ms (median)", "converged", "converged within 0.01 px",
                   "converged but off (worst px)", "no_match", "other"])
    if not have("skimage"):
        sec.rows.append(["skipped: install scikit-image", "", "", "", "", "", ""])
        return sec
    src, tgt, truth = vc.photo_affine_batch(vc.photo("camera"), count, n, seed=0)
    for method in ("forward_additive", "inverse_compositional"):
        res = align(src, tgt, "affine", method=method)
        (s,) = _rounds([partial(align, src, tgt, "affine", method=method)], quick)
        err = vc.affine_corner_errors(res.params, truth, n)
        conv = np.array([st == "converged" for st in res.status])
        off = conv & (err > 0.01)
        sec.rows.append([method, f"{median(s) * 1e3:.4g}", int(conv.sum()),
                         int((conv & ~off).sum()),
                         f"{int(off.sum())} ({err[off].max():.3g})" if off.any() else "0",
                         res.status.count("no_match"), int(len(err) - conv.sum()
                                                           - res.status.count("no_match"))])
    sec.notes.append(f"Crops at seeded positions of camera() (nearly flat background ones too), "
                     f"each target the photograph read through its own affine map (≤ 3 % linear "
                     f"change, ≤ 3 px shift; corners move ≤ ~6 px). 'converged but off' counts "
                     f"pairs reported converged whose corners are > 0.01 px from the truth: a "
                     f"stationary point that is not the true warp. No target. "
                     f"{clock_note()}")
    return sec


def run(quick: bool = False) -> list[Section]:
    torch.manual_seed(0)
    return [homography(quick), jacobian(quick), translation(quick), batched(quick),
            truthful(quick)]
