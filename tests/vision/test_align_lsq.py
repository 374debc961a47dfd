"""The level solver against jacobite.least_squares on the same residual: an independent route
(the public warp and warp_jacobian, the batched Levenberg–Marquardt engine with a user jac)
must reach the same parameters."""

from __future__ import annotations

import pytest
import torch

from jacobite import least_squares
from jacobite.vision import MatrixWarp, align, warp, warp_jacobian
from jacobite.vision._align_solve import Level, solve_level

from .test_align import TRUE, corner_error, texture

F64 = torch.float64
SHIFT = {"euclidean": [1, 2], "affine": [2, 5], "homography": [2, 5]}  # the translation's entries


def _inside(model: str, x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, P): which target pixels read inside the n x n source, by the public warp's points."""
    ys, xs = torch.meshgrid(torch.arange(n, dtype=F64), torch.arange(n, dtype=F64),
                            indexing="ij")
    pts = MatrixWarp(model).apply(x, torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
    return ((pts >= 0) & (pts <= n - 1)).all(-1).to(F64)


@pytest.mark.parametrize("model", ["euclidean", "affine", "homography"])
def test_least_squares_reaches_the_level_solvers_parameters(model: str) -> None:
    n = 64
    g = torch.Generator().manual_seed(8)
    src = torch.cat([texture(n, seed=s) for s in (1, 2)])  # two pairs
    theta = torch.tensor(TRUE[model], dtype=F64)
    tgt = warp(src, model, torch.stack([theta, 0.5 * theta]))
    tgt = tgt + 0.02 * torch.randn(tgt.shape, generator=g, dtype=F64)  # a minimum with r != 0
    x0 = align(src, tgt, model).params.clone()
    x0[:, SHIFT[model]] += torch.tensor([0.4, -0.3], dtype=F64)  # start a fraction of a pixel off
    lvl = Level(src, tgt, torch.ones(2, n * n, dtype=F64), model, "linear",
                torch.ones(2, dtype=F64), 50, 1e-9)
    own = solve_level(lvl, x0)

    def residual(x: torch.Tensor) -> torch.Tensor:
        r = (warp(src, model, x) - tgt).reshape(2, -1)
        return r * _inside(model, x, n)

    def jac(x: torch.Tensor) -> torch.Tensor:
        return warp_jacobian(src, model, x).blocks() * _inside(model, x, n)[..., None]

    ref = least_squares(residual, x0, jac=jac, method="lm", batch=True)
    assert own.code.tolist() == [0, 0] and bool(ref.success.all())
    H_own, H_ref = MatrixWarp(model).matrix(own.params), MatrixWarp(model).matrix(ref.x)
    for b in range(2):
        assert corner_error(H_own[b], H_ref[b], n, n) < 1e-6
    torch.testing.assert_close(own.cost, ref.cost, rtol=1e-9, atol=0)
