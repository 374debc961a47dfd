"""The pictures' script of the kinematics guide, shortened: the path is followed to the
tolerance, the least-conditioned point is the apex of the V, and both pictures are written."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kinematics_path.py"

pytest.importorskip("yourdfpy")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("kinematics_path_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_path_is_a_tool_down_v(example) -> None:
    poses = example.tool_down_path(5)
    torch.testing.assert_close(poses[2, :3, 3], torch.tensor([0.76, 0.0, 0.45],
                                                             dtype=torch.float64))
    torch.testing.assert_close(poses[:, :3, 2], torch.tensor([0.0, 0.0, -1.0],
                                                             dtype=torch.float64).expand(5, 3))


def test_the_arm_follows_the_path_and_the_pictures_are_written(example, tmp_path) -> None:
    info = example.main(["--no-plot", "--waypoints", "21"])
    assert info["max_position_error"] <= 1e-4
    assert abs(info["nearest"].t - 0.5) < 0.05
    assert info["nearest"].sigma_min < 0.5 * info["sigma_min_first"]
    example.frames_picture(tmp_path / "frames.png")
    example.path_picture(tmp_path / "path.png", example.Chain.from_urdf(example.KUKA), info)
    for name in ("frames.png", "path.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
