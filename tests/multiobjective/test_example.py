"""The multi-task example, shortened: UPGrad ends lower than the mean gradient on every task."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multitask.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("multitask_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_upgrad_lower_on_every_task(example):
    histories = example.compare(seed=0, steps=120)
    mean, upgrad = histories["mean gradient"][-1], histories["UPGrad"][-1]
    assert histories["UPGrad"].shape == (121, 3)
    assert bool((upgrad < mean).all()), example.table(histories)
    assert "UPGrad" in example.table(histories)
