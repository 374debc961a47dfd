"""Dense Jacobians by blocks over 2 gloo processes: each rank's rows (reverse) or columns
(forward) and the whole matrix gathered on one rank equal jacobite.jacobian in one process and
torch.func; a gathered matrix over the budget is refused on every rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import jacobite
from jacobite.dense import JacobianBlock
from jacobite.errors import InvalidOptionError

from ._spawn import run

pytestmark = pytest.mark.distributed


def _wide(x: torch.Tensor) -> torch.Tensor:  # 5 inputs -> 300 outputs: forward mode
    return torch.sin(torch.outer(torch.arange(1.0, 61.0, dtype=x.dtype), x)).reshape(-1)


def _tall(x: torch.Tensor) -> torch.Tensor:  # (3, 4) inputs -> 5 outputs: reverse mode
    return torch.tanh(x.sum(0)[:, None] * x[0, :, None] * torch.ones(4, 5, dtype=x.dtype)).sum(0)


def _pair(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (x * w).cumsum(0), torch.exp(w).sum().reshape(1) * x[:2]


def _dense(rank: int, size: int) -> dict:
    out: dict = {}
    x5 = torch.linspace(-1, 1, 5, dtype=torch.float64)
    x34 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4)
    for name, f, x in (("wide", _wide, x5), ("tall", _tall, x34)):
        blk = jacobite.jacobian(f, x, process_group="world")
        assert isinstance(blk, JacobianBlock)
        whole = jacobite.jacobian(f, x, flat=True)
        ref = whole[blk.index] if blk.dim == 0 else whole[:, blk.index]
        torch.testing.assert_close(blk.block, ref, rtol=1e-12, atol=1e-12)
        out[name] = (blk.mode, blk.dim, blk.index.start, blk.index.stop, blk.shape)
        got = jacobite.jacobian(f, x, process_group="world", gather=1)
        if rank == 1:
            oracle = torch.func.jacrev(f)(x)
            torch.testing.assert_close(got, oracle, rtol=1e-12, atol=1e-12)
        else:
            assert got is None
    # two arguments, pytree outputs, flat and unflat gathers
    x, w = torch.linspace(0.1, 1, 4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    got = jacobite.jacobian(_pair, x, w, argnums=(0, 1), process_group="world", gather=0)
    if rank == 0:
        ref = jacobite.jacobian(_pair, x, w, argnums=(0, 1))
        for a, b in zip(torch.utils._pytree.tree_leaves(got),
                        torch.utils._pytree.tree_leaves(ref), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a gathered matrix over the budget: refused on every rank, nobody waits
    try:
        jacobite.jacobian(_wide, x5, process_group="world", gather=0, memory_budget=4000)
    except Exception as exc:
        out["too_large"] = type(exc).__name__
    # a rank whose function fails: the other is told
    def fails(v: torch.Tensor) -> torch.Tensor:
        if rank == 0 and v.shape[0] > 0:
            raise ValueError("f failed on purpose")
        return v * 2

    try:
        jacobite.jacobian(fails, x5, process_group="world")
    except Exception as exc:
        out["fail"] = (type(exc).__name__, str(exc))
    return out


def test_dense_jacobian_by_blocks_over_two_ranks() -> None:
    r0, r1 = run(_dense, 2)
    assert r0["wide"] == ("forward", 1, 0, 3, (300, 5)) and r1["wide"][2:4] == (3, 5)
    assert r0["tall"] == ("reverse", 0, 0, 3, (5, 12)) and r1["tall"][2:4] == (3, 5)
    assert r0["too_large"] == r1["too_large"] == "JacobianTooLarge"
    assert r0["fail"][0] == "ValueError"
    assert r1["fail"][0] == "RankFailedError" and "rank 0 failed: ValueError" in r1["fail"][1]


def test_gather_needs_a_process_group() -> None:
    with pytest.raises(InvalidOptionError, match="process_group"):
        jacobite.jacobian(torch.sin, torch.ones(2), gather=0)
    J = jacobite.jacobian(torch.sin, torch.zeros(2, dtype=torch.float64), process_group=None)
    np.testing.assert_array_equal(J.numpy(), np.eye(2))
