"""Marks SciPy's test files use (its own pytest plugins); registered so they collect cleanly."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fail_slow(seconds): SciPy's slow-test budget")
    config.addinivalue_line("markers", "parallel_threads_limit(n): SciPy's thread-safety mark")
