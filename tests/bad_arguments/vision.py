"""Entries for jacobite.vision (warps, sampling, warp Jacobians)."""

from __future__ import annotations

import torch

from jacobite import vision as V
from jacobite.errors import ArgumentTypeError, DtypeError, InvalidOptionError, ShapeError

from . import F64, choice, entry, flag, fn, posint, tensor, tol, typed

IMG = torch.rand(2, 5, 6, dtype=F64)
THETA = torch.zeros(8, dtype=F64)
CTRL = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]], dtype=F64)
PTS = torch.zeros(1, 3, 4, 2, dtype=F64)
G = torch.zeros(1, 2, 6, 2, dtype=F64)
M = torch.zeros(1, 6, 2, 3, dtype=F64)
SMOOTH = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 16, 16, dtype=F64), 3, 1, 1)
FIELD = 0.1 * torch.ones(1, 2, 5, 6, dtype=F64)


def _warp_cases() -> list:
    return [*tensor(0, (5,), (1, 1, 1, 5, 6)),
            typed(1, "no-such-model", InvalidOptionError), typed(1, 3, ArgumentTypeError),
            typed(1, None, ArgumentTypeError),
            *tensor(2, (3,), (2, 2, 8)),
            typed("size", (0, 4), ShapeError), typed("size", "big", ShapeError),
            typed("size", (2.5, 3), ShapeError),
            *choice("mode"), *choice("padding_mode"), *flag("align_corners")]


ENTRIES = [
    entry("jacobite.vision.warp", V.warp, IMG, "homography", THETA, cases=_warp_cases()),
    entry("jacobite.vision.warp_jacobian", V.warp_jacobian, IMG, "homography", THETA,
          cases=_warp_cases()),
    entry("jacobite.vision.sample", V.sample, IMG[None], PTS,
          cases=[*tensor(0, (5, 6), (1, 2, 5)), *tensor(1, (1, 3, 4, 3), (2, 3, 4, 2)),
                 *choice("mode"), *choice("padding_mode"), *flag("align_corners")]),
    entry("jacobite.vision.to_normalized", V.to_normalized, PTS[0, 0], (5, 6),
          cases=[*tensor(0, (4, 3)), typed(1, (0, 6), ShapeError), typed(1, 5, ShapeError),
                 typed(1, None, ShapeError), *flag(2)]),
    entry("jacobite.vision.pixel_grid", V.pixel_grid, 3, 4,
          cases=[*posint(0), *posint(1), typed("dtype", torch.int64, DtypeError),
                 typed("dtype", "float", ArgumentTypeError),
                 typed("device", "no-such-device", InvalidOptionError)]),
    entry("jacobite.vision.get_warp", V.get_warp, "affine",
          cases=[typed(0, "no-such-model", InvalidOptionError), typed(0, 3, ArgumentTypeError),
                 typed(0, None, ArgumentTypeError), typed(0, object(), ArgumentTypeError),
                 typed(0, lambda t, p: p, ArgumentTypeError), typed(0, "", InvalidOptionError),
                 typed(0, "Homography", InvalidOptionError),
                 typed(0, ["affine"], ArgumentTypeError)]),
    entry("jacobite.vision.MatrixWarp", V.MatrixWarp, "affine",
          cases=[*choice(0), typed(0, None, InvalidOptionError),
                 typed(0, "Affine", InvalidOptionError), typed(0, "", InvalidOptionError),
                 typed(0, "thin_plate_spline", InvalidOptionError),
                 typed(0, 2.5, InvalidOptionError), typed(0, object(), InvalidOptionError)]),
    entry("jacobite.vision.ThinPlateSpline", V.ThinPlateSpline, CTRL,
          cases=[*tensor(0, (3,), (3, 3), (2, 2)),
                 typed(0, torch.tensor([[0.0, 0], [1, 1], [2, 2]]), InvalidOptionError),
                 typed(0, torch.tensor([[0.0, 0], [1, 0], [1, 0], [0, 1]]),
                       InvalidOptionError)]),
    entry("jacobite.vision.CoordinateMap", V.CoordinateMap, lambda t, p: p + t, 2,
          cases=[*fn(0), *posint(1)]),
    entry("jacobite.vision.align", V.align, SMOOTH, SMOOTH, "affine",
          cases=[*tensor(0, (5,), (1, 1, 1, 16, 16), (2, 1, 16, 16), (1, 1)),
                 *tensor(1, (5,), (3, 16, 16), (1, 1)),
                 typed(1, SMOOTH.float(), DtypeError), *choice(2),
                 typed(2, "thin_plate_spline", InvalidOptionError),
                 *tensor("params0", (5,), (3, 6), none=False), *posint("pyramid"),
                 typed("pyramid", 9, InvalidOptionError), *choice("loss"),
                 *tol("loss_scale"), typed("loss_scale", 0.0, InvalidOptionError),
                 *tensor("mask", (4, 4), none=False),
                 typed("mask", -SMOOTH[0, 0], InvalidOptionError),
                 *posint("max_iter"), *tol("tol"), *choice("method")]),
    entry("jacobite.vision.WarpJacobian", V.WarpJacobian, G, M,
          cases=[*tensor(0, (2, 6, 2), (1, 2, 6, 3)), *tensor(1, (6, 2, 3), (1, 5, 2, 3)),
                 typed("warped", "abc", ArgumentTypeError), *flag("shared")]),
    entry("jacobite.vision.jacobian_determinant", V.jacobian_determinant, FIELD,
          cases=[*tensor(0, (2, 5, 6), (1, 3, 5, 6), (1, 2, 2, 6), (1, 2, 5, 6, 7)),
                 typed("spacing", -1.0, InvalidOptionError),
                 typed("spacing", "1", ArgumentTypeError),
                 typed("spacing", (1.0, 1.0, 1.0), ShapeError),
                 typed("spacing", float("nan"), InvalidOptionError),
                 *choice("kind"), *choice("method")]),
    entry("jacobite.vision.plot_jacobian_determinant", V.plot_jacobian_determinant, FIELD,
          cases=[*tensor(0, (1, 3, 4, 4, 4), (1, 3, 5, 6)), *choice("kind"), *choice("method"),
                 *posint("step"), typed("index", 1, InvalidOptionError),
                 typed("index", -1, InvalidOptionError), typed("index", 1.5, ArgumentTypeError),
                 typed("cmap", "no-such-map", InvalidOptionError), *choice("domain")]),
]
