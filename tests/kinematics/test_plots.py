"""Pictures of ellipsoids and of measures along a path: what they draw, and typed errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jacobite.errors import ArgumentTypeError, NonFiniteInputError, ShapeError
from jacobite.kinematics import force_ellipsoid, velocity_ellipsoid
from jacobite.kinematics.plots import plot_ellipsoids, plot_path_measures

pytest.importorskip("matplotlib")

F64 = torch.float64


def _jacobians() -> torch.Tensor:
    J = torch.zeros(2, 6, 3, dtype=F64)
    J[:, 0, 0], J[:, 1, 1], J[:, 2, 2] = 0.3, 0.2, 0.1
    return J


def _wire_points(ax: object) -> np.ndarray:
    """Every vertex of the wireframes drawn in a 3-D axes, (N, 3)."""
    return np.concatenate([np.asarray(seg, dtype=float).reshape(-1, 3)
                           for c in ax.collections for seg in c._segments3d])  # type: ignore[attr-defined]


def test_ellipsoid_wireframes_have_the_radii_along_the_axes(tmp_path) -> None:
    centers = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=F64)
    path = tmp_path / "e.png"
    fig = plot_ellipsoids(velocity_ellipsoid(_jacobians()), centers, path=centers, save=path)
    ax = fig.axes[0]
    assert ax.name == "3d" and path.read_bytes()[:4] == b"\x89PNG"
    # each wireframe spans ±radius about its centre along x (radius 0.3 on x)
    segs = _wire_points(ax)
    assert segs[:, 0].min() == pytest.approx(-0.3, abs=0.01)
    assert segs[:, 0].max() == pytest.approx(1.3, abs=0.01)
    assert segs[:, 2].max() == pytest.approx(0.1, abs=0.01)


def test_infinite_force_radii_are_capped() -> None:
    J = torch.zeros(6, 2, dtype=F64)
    J[0, 0], J[1, 1] = 2.0, 0.5
    ell = force_ellipsoid(J)
    assert math.isinf(float(ell.radii[2]))
    fig = plot_ellipsoids(ell, torch.zeros(3))
    segs = _wire_points(fig.axes[0])
    assert np.isfinite(segs).all() and segs[:, 2].max() == pytest.approx(3 * 2.0, rel=0.01)


def test_path_measures_are_drawn_with_the_mark() -> None:
    from jacobite.kinematics.analysis import NearestSingularity

    t = torch.linspace(0, 1, 11)
    r = NearestSingularity(0.5, torch.zeros(2), 0.0, 0.0, math.inf, t, t, t)
    fig = plot_path_measures(t, {"w": (t - 0.5).abs(), "s": t}, nearest=r, log=False)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()][:2] == ["w", "s"]
    assert ax.get_lines()[2].get_xdata()[0] == 0.5


@pytest.mark.parametrize("call, error", [
    (lambda: plot_ellipsoids("e", torch.zeros(3)), ArgumentTypeError),
    (lambda: plot_ellipsoids(velocity_ellipsoid(_jacobians()), torch.zeros(3)), ShapeError),
    (lambda: plot_ellipsoids(velocity_ellipsoid(_jacobians(), part="full"), torch.zeros(2, 3)),
     ShapeError),
    (lambda: plot_ellipsoids(velocity_ellipsoid(_jacobians()), torch.full((2, 3), math.nan)),
     NonFiniteInputError),
    (lambda: plot_path_measures([0, 1], {"w": [1, 2]}), ArgumentTypeError),
    (lambda: plot_path_measures(torch.zeros(3), {}), ArgumentTypeError),
    (lambda: plot_path_measures(torch.zeros(3), {"w": torch.zeros(4)}), ShapeError),
])
def test_bad_arguments_raise_typed_errors(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]
