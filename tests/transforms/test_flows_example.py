"""The pictures' script of the change-of-variables guide, shortened: the flow's likelihood
rises from its start, the ring sampler is the ring, and the pushed-forward map's density is the
change-of-variables formula."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch.distributions import MultivariateNormal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flows_pictures.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("flows_pictures_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ring_samples_have_the_stated_radius(example):
    r = example.ring(20_000, seed=3).norm(dim=1)
    assert abs(float(r.mean()) - 2.0) < 0.01 and abs(float(r.std()) - 0.2) < 0.01


def test_short_training_lowers_the_negative_log_likelihood(example):
    layers, losses, held_out = example.train(steps=60, seed=0, batch=256)
    assert len(losses) == 60 and losses[-1] < losses[0] - 1.0
    assert math.isfinite(held_out) and held_out < losses[0]
    # the model's density is normalised: its mass over a wide grid is one
    s = torch.linspace(-6, 6, 241, dtype=torch.float64)
    with torch.no_grad():
        p = example.model(layers).log_prob(torch.cartesian_prod(s, s)).exp()
    assert abs(float(p.sum() * (s[1] - s[0]) ** 2) - 1.0) < 2e-2


def test_smooth_map_density_is_the_change_of_variables_formula(example):
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = x[:, 0]
    det = (1 + 0.6 * a**2) * torch.exp(0.3 * a)  # the map's Jacobian determinant by hand
    base = MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                              torch.eye(2, dtype=torch.float64))
    p_y = example.TransformedDensity(base, example.smooth_map)
    torch.testing.assert_close(p_y.log_prob(example.smooth_map(x)),
                               base.log_prob(x) - det.log())
