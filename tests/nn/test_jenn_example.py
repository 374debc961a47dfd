"""The accuracy example of the training-on-Jacobians guide, shortened: on the same training
points the Jacobian-enhanced fit beats the values-only one on values and on partials."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jenn_accuracy.py"


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("scipy")
    spec = importlib.util.spec_from_file_location("jenn_accuracy_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rosenbrock_targets_are_exact(example):
    x = example.training_points(5, seed=0)
    assert x.shape == (5, 2) and bool(((x >= -2) & (x <= 2)).all())
    d = example.sobolev_data(example.rosenbrock, x)
    a, b = x[:, 0], x[:, 1]
    analytic = torch.stack([-400 * a * (b - a**2) - 2 * (1 - a), 200 * (b - a**2)], dim=1)
    torch.testing.assert_close(d.dydx, analytic)


def test_jacobians_beat_values_on_the_same_points(example):
    result = example.sweep(sizes=(16,), seeds=1)
    (plain,) = result["values only"][16]
    (enhanced,) = result["values + Jacobians"][16]
    assert enhanced[0] > 0.98 and enhanced[0] > plain[0], example.table(result)
    assert enhanced[1] > 0.9 and enhanced[1] > plain[1] + 0.1, example.table(result)
    assert "N" in example.table(result)
    assert example.fewest(result, "values + Jacobians", target=0.98) == 16
