"""Image alignment: the three pictures of ``docs/vision.md``.

1. ``vision_alignment.png`` — a 128 × 128 crop of scikit-image's ``camera()`` photograph and a
   target that sees the same scene through a homography moving each corner by up to 8 px:
   source, target, the source warped by the homography ``align`` finds, and the residual
   before (identity) and after, with the iterations spent on each pyramid level.
2. ``vision_robust.png`` — the same pair with a patch of another part of the photograph pasted
   over the target (an occluder): the residual after least squares and after the Cauchy loss,
   with each one's corner error.
3. ``vision_folding.png`` — ``det J`` of a displacement field that pushes a disc of pixels
   further than its own width, so that the grid folds over itself
   (``plot_jacobian_determinant``).

    python examples/vision_alignment.py            # the pictures, prints the numbers
    python examples/vision_alignment.py --no-plot
    python examples/vision_alignment.py --out /tmp/pictures
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from jacobite.vision import align, jacobian_determinant, plot_jacobian_determinant, warp

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
F64 = torch.float64
N, X0, Y0 = 128, 200, 160  # the crop: the camera and the man's coat


def homography_from_corners(frm: torch.Tensor, to: torch.Tensor) -> torch.Tensor:
    """The 3 × 3 matrix (corner entry 1) sending the four points ``frm`` to ``to``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(frm.tolist(), to.tolist(), strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    h = torch.linalg.solve(torch.tensor(rows, dtype=F64), torch.tensor(rhs, dtype=F64))
    return torch.cat([h, torch.ones(1, dtype=F64)]).reshape(3, 3)


def params(H: torch.Tensor) -> torch.Tensor:
    """jacobite's homography parameters of ``H``."""
    return (H / H[2, 2] - torch.eye(3, dtype=F64)).reshape(-1)[:8]


def corner_error(A: torch.Tensor, B: torch.Tensor) -> float:
    c = torch.tensor([[0, 0, 1], [N - 1, 0, 1], [0, N - 1, 1], [N - 1, N - 1, 1.0]], dtype=F64)
    a, b = c @ A.T, c @ B.T
    return float((a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:]).norm(dim=1).max())


def photo_pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The camera photograph, the source crop, its target and the true matrix (target to
    source pixels). The target reads the whole photograph, so it has no black border."""
    from skimage import data

    world = torch.from_numpy(data.camera()).to(F64) / 255
    corners = torch.tensor([[0.0, 0], [N - 1, 0], [N - 1, N - 1], [0, N - 1]], dtype=F64)
    g = torch.Generator().manual_seed(seed)
    moved = corners + (torch.rand(4, 2, generator=g, dtype=F64) * 2 - 1) * 8
    H = homography_from_corners(corners, moved)
    shift = torch.tensor([[1.0, 0, X0], [0, 1, Y0], [0, 0, 1]], dtype=F64)
    target = warp(world, "homography", params(shift @ H), size=(N, N))
    return world, world[Y0:Y0 + N, X0:X0 + N], target, H


def occluded(world: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The target with a 40 × 40 patch of the photograph's lower left pasted over it."""
    out = target.clone()
    out[20:60, 60:100] = world[400:440, 40:80]
    return out


def residual(source: torch.Tensor, target: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``target − warp(source, θ)`` where the warp reads inside the source, 0 elsewhere."""
    inside = warp(torch.ones_like(source), "homography", theta) > 0.999
    return torch.where(inside, target - warp(source, "homography", theta), 0.0)


def folding_field(n: int = 64) -> torch.Tensor:
    """``(1, 2, n, n)``: a Gaussian bump of ``x`` displacement, 12 px high and 5 px wide, so
    ``∂u_x/∂x`` falls below −1 right of its centre and the grid folds there."""
    ys, xs = torch.meshgrid(torch.arange(n, dtype=F64), torch.arange(n, dtype=F64),
                            indexing="ij")
    bump = 12.0 * torch.exp(-((xs - n / 2) ** 2 + (ys - n / 2) ** 2) / (2 * 5.0**2))
    return torch.stack([bump, torch.zeros_like(bump)])[None]


def _grey(ax: Any, img: torch.Tensor, title: str) -> None:
    ax.imshow(img.numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _residual(ax: Any, r: torch.Tensor, title: str) -> None:
    ax.imshow(r.numpy(), cmap="RdBu", vmin=-0.5, vmax=0.5)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--out", type=Path, default=IMG, help="where the pictures go")
    args = ap.parse_args(argv)
    world, source, target, H = photo_pair()
    t0 = time.perf_counter()
    res = align(source, target, "homography")
    seconds = time.perf_counter() - t0
    err = corner_error(res.matrix[0], H)
    warped = res.warped[0, 0]
    before, after = target - source, residual(source, target, res.params[0])
    print(f"homography: {res.status[0]}, iterations per level {res.iterations[0].tolist()}, "
          f"corner error {err:.2e} px, {seconds * 1e3:.0f} ms")
    blocked = occluded(world, target)
    out: dict[str, Any] = {"status": res.status[0], "corner_error": err,
                           "iterations": res.iterations[0].tolist()}
    robust = {}
    for loss in ("linear", "cauchy"):
        r = align(source, blocked, "homography", loss=loss)
        robust[loss] = (r, corner_error(r.matrix[0], H))
        print(f"occluded target, loss={loss}: {r.status[0]}, corner error "
              f"{robust[loss][1]:.3g} px")
        out[f"occluded_{loss}"] = robust[loss][1]
    field = folding_field()
    det = jacobian_determinant(field)
    print(f"folding field: det J from {float(det.min):.2f} to {float(det.max):.2f}, "
          f"{100 * float(det.fraction_folded):.1f} % of the pixels folded")
    out["fraction_folded"] = float(det.fraction_folded)
    out["det_min"] = float(det.min)
    if args.no_plot:
        return out
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img: Path = args.out
    img.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 5, figsize=(13, 3.0))
    _grey(axes[0], source, "source (camera() crop)")
    _grey(axes[1], target, "target: corners moved ≤ 8 px")
    _grey(axes[2], warped, "source warped by the result")
    _residual(axes[3], before, "target − source")
    _residual(axes[4], after, f"target − warped ({err:.0e} px)")
    its = ", ".join(str(i) for i in res.iterations[0].tolist())
    fig.suptitle(f"align(source, target, 'homography'): {res.status[0]}, iterations per level "
                 f"(coarse → fine) {its}", fontsize=10)
    fig.tight_layout()
    fig.savefig(img / "vision_alignment.png", dpi=72)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.1))
    _grey(axes[0], blocked, "target with an occluder")
    for ax, loss in zip(axes[1:], ("linear", "cauchy"), strict=True):
        r, e = robust[loss]
        _residual(ax, residual(source, blocked, r.params[0]),
                  f"residual, loss='{loss}': {e:.2g} px")
    fig.tight_layout()
    fig.savefig(img / "vision_robust.png", dpi=90)
    plt.close(fig)
    fig = plot_jacobian_determinant(field, domain="reference",
                                    title="det J of a bump of x displacement (folds in blue)")
    fig.set_size_inches(5.6, 4.6)
    fig.savefig(img / "vision_folding.png", dpi=90)
    plt.close(fig)
    return out


if __name__ == "__main__":
    main()
