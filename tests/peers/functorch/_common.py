"""Shared helpers: jacobite's modes and chunk sizes as parameters, seeded float64 inputs, strict
xfail marks and the torch.func oracle."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import torch

import jacobite
from tests.battery import assert_tree_close

D = torch.float64
MODES = ("forward", "reverse", "auto")
CHUNKS = (None, "auto", 1, 2)
TOL = 1e-10

# A reason keyed by mode, or by (mode, chunk_size) for one configuration (which wins; an empty
# reason there exempts that configuration from its mode's xfail).
Fails = Mapping[Any, str]


def xfail(reason: str) -> pytest.MarkDecorator:
    """A strict expected failure: it turns into an error the day the bug is fixed."""
    return pytest.mark.xfail(strict=True, reason=reason)


def modes(fails: Fails | None = None) -> list[Any]:
    """``forward``, ``reverse`` and ``auto`` as parameters, with strict xfails where named."""
    fails = fails or {}
    return [pytest.param(m, id=m, marks=[xfail(fails[m])] if m in fails else [])
            for m in MODES]


def configs(fails: Fails | None = None) -> list[Any]:
    """Every (mode, chunk_size) pair as a parameter, with strict xfails where named."""
    fails = fails or {}
    out = []
    for m, c in itertools.product(MODES, CHUNKS):
        reason = fails.get((m, c), fails.get(m))
        out.append(pytest.param(m, c, id=f"{m}-{c}", marks=[xfail(reason)] if reason else []))
    return out


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """A float64 tensor from a private generator: the same numbers in every run and order.
    ``randn()`` is a 0-dim tensor."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=D)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=D)


def jac(f: Callable[..., Any], *args: Any, mode: str, chunk: Any = "auto", **kw: Any) -> Any:
    """``jacobite.jacobian`` with this test's mode and chunk size."""
    return jacobite.jacobian(f, *args, mode=mode, chunk_size=chunk, **kw)


def close(actual: Any, expected: Any, what: str = "") -> None:
    """Same pytree structure and values (float64 tolerance)."""
    assert_tree_close(actual, expected, rtol=TOL, atol=TOL, what=what)


def diag(v: torch.Tensor) -> torch.Tensor:
    return torch.diagflat(v)
