"""Shared pytest configuration: Hypothesis profiles.

Profiles (choose with ``HYPOTHESIS_PROFILE=<name>``; ``ci`` is the default):

* ``ci``: few examples and no deadline, so the whole suite runs in well under 5 minutes on
  two cores (``pytest -n 2``) and timing noise on shared machines never fails a test.
* ``dev``: more examples, still without a deadline, for local runs.
* ``thorough``: many examples, for a nightly or pre-release run.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    print_blob=True,
    derandomize=True,  # CI runs the same examples every time: main stays green or red, not flaky
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The battery's tensors are tiny: one intra-op thread per process is faster, and keeps
# `pytest -n 2` from oversubscribing two cores with 2 x N threads.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    """Tests marked ``cuda`` (the device battery, ``make test-gpu``) skip without a GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
