"""The small float64 model, data and losses that the Jacobian-descent tests over a process
group (test_jd.py, test_jd_fsdp.py) train, and the comparison of a rank's per-step tensors
with those of one process on the whole batch.

>>> x, y = data()
>>> losses(net(), x, y).shape
torch.Size([3])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

F64 = torch.float64
STEPS = 3
M = 3  # objectives: one mean squared error per output


def net() -> nn.Sequential:
    """5 → 6 → 3 with tanh, seeded: P = 57 parameters (odd, so a rank's column block is padded;
    the 6 and 3 rows shard unevenly on two ranks)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, M)).to(F64)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """12 seeded inputs and targets."""
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 5, generator=g, dtype=F64), torch.randn(12, M, generator=g, dtype=F64)


def losses(model: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One mean loss per output: m = M."""
    return ((model(x) - y) ** 2).mean(0)


def assert_steps_close(got: Sequence[Any], want: Sequence[torch.Tensor], rtol: float,
                       atol: float = 0.0) -> None:
    """A rank's arrays, step by step, equal the one-process tensors ``want``."""
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=rtol, atol=atol)
