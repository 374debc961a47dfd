"""Shared pieces of the hostile probes: a time bound, an exact-class refusal check, a memory
bound and an oracle comparison.

>>> with within(5.0):
...     _ = sum(range(10))
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

#: the default wall-clock bound of one probe, in seconds (generous: CI machines are shared)
SECONDS = 10.0


@contextmanager
def within(seconds: float = SECONDS) -> Iterator[None]:
    """Assert that the block finishes within ``seconds`` of wall-clock time."""
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    assert elapsed < seconds, f"took {elapsed:.2f} s, over the bound of {seconds} s"


@contextmanager
def refuses(cls: type[BaseException], *fix: str, seconds: float = SECONDS) -> Iterator[None]:
    """The block must raise exactly ``cls`` (not a subclass or parent) within ``seconds``, and the
    message must contain every string in ``fix`` (the names of the remedy)."""
    start = time.perf_counter()
    try:
        yield
    except BaseException as exc:  # the class is asserted exactly below
        elapsed = time.perf_counter() - start
        assert type(exc) is cls, f"expected {cls.__name__}, got {type(exc).__name__}: {exc}"
        message = str(exc)
        for word in fix:
            assert word in message, f"{cls.__name__} message does not name {word!r}: {message}"
        assert elapsed < seconds, f"refused after {elapsed:.2f} s, over the bound of {seconds} s"
    else:
        raise AssertionError(f"expected {cls.__name__}, nothing was raised")


@contextmanager
def python_peak(limit_bytes: int) -> Iterator[None]:
    """Assert that Python-level allocations (NumPy arrays included) peak under ``limit_bytes``."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak allocation {peak} B over the bound of {limit_bytes} B"


def as_array(value: Any) -> np.ndarray:
    """A float64 (or complex128) NumPy copy of a tensor, array, list or number."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            return value.to(torch.complex128).numpy()
        return value.to(torch.float64).numpy()
    return np.asarray(value, dtype=np.complex128 if np.iscomplexobj(value) else np.float64)


def assert_close(got: Any, want: Any, *, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """``got`` equals the oracle ``want`` entrywise within ``atol + rtol * |want|``; same shape."""
    g, w = as_array(got), as_array(want)
    assert g.shape == w.shape, f"shape {g.shape} != oracle shape {w.shape}"
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
