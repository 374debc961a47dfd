"""The pictures' script of the image-alignment guide: the photograph is aligned to its true
homography, the Cauchy loss shrugs off the occluder that moves least squares, the folding
field's smallest det J is the analytic one, and the three pictures are written."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from jacobite.vision import warp

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vision_alignment.py"

pytest.importorskip("skimage")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("vision_alignment_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_target_is_the_source_through_the_true_matrix(example) -> None:
    _, source, target, H = example.photo_pair()
    corners = torch.tensor([[0.0, 0], [127, 0], [127, 127], [0, 127]], dtype=torch.float64)
    moved = torch.cat([corners, torch.ones(4, 1, dtype=torch.float64)], 1) @ H.T
    assert 0 < float((moved[:, :2] / moved[:, 2:] - corners).abs().max()) <= 8
    ours = warp(source, "homography", example.params(H))
    inside = warp(torch.ones_like(source), "homography", example.params(H)) > 0.999
    assert inside.float().mean() > 0.8
    torch.testing.assert_close(ours[inside], target[inside], rtol=0, atol=1e-12)


def test_the_numbers_and_the_pictures(example, tmp_path) -> None:
    info = example.main(["--out", str(tmp_path)])
    assert info["status"] == "converged" and info["corner_error"] < 1e-3
    assert info["occluded_cauchy"] < 1e-3 < 0.1 < info["occluded_linear"]
    # u_x = A exp(-r² / 2σ²): the steepest ∂u_x/∂x is -A/σ · e^(-1/2), at one σ right of centre
    assert info["det_min"] == pytest.approx(1 - 12 / 5 * math.exp(-0.5), abs=0.03)
    assert info["fraction_folded"] > 0
    for name in ("vision_alignment.png", "vision_robust.png", "vision_folding.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) < 150_000
