"""Bad input to the pictures raises typed errors whose message names the fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from jacobite.errors import (
    ArgumentTypeError,
    DtypeError,
    InvalidOptionError,
    NonFiniteInputError,
    OutputTypeError,
    ShapeError,
)

pytest.importorskip("matplotlib")
from jacobite.viz import deformed_grid, heatmap, save_figure, softmax_panels, spy


def test_heatmap_bad_matrices():
    with pytest.raises(ShapeError, match="flat=True"):
        heatmap(torch.ones(2, 2, 2))
    with pytest.raises(DtypeError, match=r"J\.real"):
        heatmap(torch.ones(2, 2, dtype=torch.complex128))
    with pytest.raises(DtypeError):
        heatmap(np.array([["a", "b"]]))
    with pytest.raises(ShapeError, match="one per column"):
        heatmap(torch.ones(2, 3), labels=(["a", "b"], ["x"]))
    with pytest.raises(ShapeError, match="square"):
        heatmap(torch.ones(2, 3), labels=["a", "b"])
    with pytest.raises(InvalidOptionError, match="annotate"):
        heatmap(torch.ones(2, 2), annotate="yes")
    with pytest.raises(InvalidOptionError, match="colormap"):
        heatmap(torch.ones(2, 2), cmap="no-such-map")
    with pytest.raises(InvalidOptionError, match="Axes"):
        heatmap(torch.ones(2, 2), ax="left")


def test_heatmap_nan_cells_are_drawn_not_refused():
    fig = heatmap(torch.tensor([[1.0, math.nan], [-2.0, 0.0]]))
    assert fig.axes[0].images[0].norm.vmax == 2.0


def test_softmax_panels_bad_logits():
    with pytest.raises(ShapeError, match="z\\[i\\]"):
        softmax_panels(torch.ones(2, 3))
    with pytest.raises(ShapeError):
        softmax_panels([])
    with pytest.raises(NonFiniteInputError):
        softmax_panels([1.0, math.nan])


def test_deformed_grid_bad_input():
    ident = lambda p: p  # noqa: E731
    with pytest.raises(InvalidOptionError, match="low < high"):
        deformed_grid(ident, (1, -1))
    with pytest.raises(InvalidOptionError, match="finite"):
        deformed_grid(ident, (0, math.inf))
    with pytest.raises(InvalidOptionError, match="n must be"):
        deformed_grid(ident, n=1)
    with pytest.raises(InvalidOptionError, match="refine"):
        deformed_grid(ident, refine=0)
    with pytest.raises(ShapeError, match="R\\^2 to R\\^2"):
        deformed_grid(lambda p: torch.stack([p[0], p[1], p[0] * p[1]]), n=3, refine=1)
    with pytest.raises(NonFiniteInputError, match="singularity"):
        deformed_grid(lambda p: p / p[0], (0, 1), (0, 1), n=3, refine=1)
    with pytest.raises(OutputTypeError):
        deformed_grid("polar")


def test_spy_bad_input():
    with pytest.raises(InvalidOptionError, match="precision"):
        spy(torch.eye(2), precision=-1)
    with pytest.raises(ShapeError, match="empty"):
        spy(np.zeros((0, 3)))
    with pytest.raises(ShapeError, match="flat=True"):
        spy(torch.ones(2, 2, 2))
    with pytest.raises(DtypeError):
        spy(np.array([["a"]]))


def test_save_figure_bad_paths(tmp_path):
    fig = heatmap(torch.eye(2))
    with pytest.raises(InvalidOptionError, match=r"\.png"):
        save_figure(fig, tmp_path / "J.unknown")
    with pytest.raises(InvalidOptionError, match="mkdir"):
        save_figure(fig, tmp_path / "missing" / "J.png")
    with pytest.raises(ArgumentTypeError, match="Figure"):
        save_figure("fig", tmp_path / "J.png")
    with pytest.raises(ArgumentTypeError, match="file path"):
        save_figure(fig, 3)
    for dpi in (0, 2.5, 10**9):
        with pytest.raises((InvalidOptionError, ArgumentTypeError), match="dpi must be"):
            save_figure(fig, tmp_path / "J.png", dpi=dpi)


def test_bad_figure_options():
    with pytest.raises(InvalidOptionError, match="figsize width"):
        softmax_panels([1.0, 2.0], figsize=(-1.0, 4.0))
    with pytest.raises(ArgumentTypeError, match="z must be a vector"):
        softmax_panels("abc")
    with pytest.raises(InvalidOptionError, match="markersize"):
        spy(torch.eye(2), markersize=-1.0)
    with pytest.raises(InvalidOptionError, match="precision"):
        spy(torch.eye(2), precision=float("inf"))


@pytest.mark.parametrize("shape", [(0, 0), (0, 3), (3, 0)])
def test_heatmap_of_an_empty_matrix_is_refused_like_spy(shape):
    # matplotlib would draw a singular axis with warnings: a picture of nothing
    for draw in (heatmap, spy):
        with pytest.raises(ShapeError, match="empty") as info:
            draw(torch.zeros(shape))
        assert type(info.value) is ShapeError
