"""Jacobian descent over a gloo group of two processes (``backward`` / ``mtl_backward`` with
``process_group=``), each rank holding half of the batch, against Jacobian descent in one
process on the whole batch: the same ``.grad`` and weights to 1e-10 in float64 (1e-6 in
float32), through DistributedDataParallel models for several optimizer steps, one row per
collective under a small memory budget, the bytes each rank sent, ranks failing before and
inside their backward pass, disagreeing ranks and DTensor parameters the losses use directly
(refused; FSDP2 models are checked in test_jd_fsdp.py). One spawn checks everything."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from jacobite import config
from jacobite import distributed as D
from jacobite.multiobjective import UPGrad, backward, mtl_backward
from jacobite.multiobjective.aggregators import MGDA, TrimmedMean

from ._jd_model import F64, STEPS, M, assert_steps_close
from ._jd_model import data as _data
from ._jd_model import losses as _losses
from ._jd_model import net as _net
from ._spawn import outcome, run

pytestmark = pytest.mark.distributed

def _trunk_heads() -> tuple[nn.Module, nn.ModuleList]:
    torch.manual_seed(2)
    return nn.Linear(5, 4).to(F64), nn.ModuleList(nn.Linear(4, 1).to(F64) for _ in range(2))


def _mtl_losses(trunk: nn.Module, heads: nn.ModuleList, x: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    z = torch.tanh(trunk(x))
    return z, [((h(z)[:, 0] - y[:, i]) ** 2).mean() for i, h in enumerate(heads)]


def _flat(params: Any) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, aggregator: Any,
           group: Any = None) -> tuple[list[torch.Tensor], list[Any]]:
    """STEPS steps of SGD with Jacobian descent; the ``.grad`` and weights of each step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    grads, weights = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        w = backward(_losses(model, x, y), list(model.parameters()), aggregator,
                     process_group=group)
        grads.append(_flat(model.parameters()).clone())
        weights.append(w)
        opt.step()
    return grads, weights


def _mtl(x: torch.Tensor, y: torch.Tensor, group: Any = None) -> torch.Tensor:
    trunk, heads = _trunk_heads()
    z, ls = _mtl_losses(trunk, heads, x, y)
    mtl_backward(ls, z, UPGrad(), process_group=group)
    return torch.cat([_flat(trunk.parameters()), _flat(heads.parameters())])


def _failing(g: D.Group, bad_rank: int) -> tuple[str, str, float]:
    model, (x, y) = _net(), _data()
    t0 = time.monotonic()
    losses = _losses(model, x, y)
    if g.rank == bad_rank:
        losses = losses * torch.tensor([1.0, float("nan"), 1.0], dtype=F64)
    name, message = outcome(lambda: backward(losses, list(model.parameters()), process_group=g))
    return name, message, time.monotonic() - t0


class _FailsBackward(torch.autograd.Function):
    """The identity, whose backward pass raises on the rank given."""

    @staticmethod
    def forward(x: torch.Tensor, rank: int) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.bad = inputs[1] == D.resolve("world").rank  # type: ignore[union-attr]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        if ctx.bad:
            raise ValueError("backward failed on purpose")
        return grad, None


def _failing_backward(g: D.Group, bad_rank: int) -> tuple[str, str]:
    """A rank whose backward pass raises after the shape check: every rank stops."""
    model, (x, y) = _net(), _data()
    losses = _losses(lambda v: _FailsBackward.apply(model(v), bad_rank), x, y)
    return outcome(lambda: backward(losses, list(model.parameters()), process_group=g))


def _sharded(g: D.Group) -> str:
    """DTensor parameters that the losses use directly (through ``full_tensor()``, not through
    FSDP2's unsharding) are refused on every rank."""
    from torch.distributed.tensor import Shard, distribute_tensor, init_device_mesh

    mesh = init_device_mesh("cpu", (g.size,))
    w: Any = nn.Parameter(distribute_tensor(torch.ones(4, 3, dtype=F64), mesh, [Shard(0)]))
    full = w.full_tensor()
    return outcome(lambda: backward(torch.stack([(full ** 2).sum(), full.sum()]), [w],
                                    process_group=g))[0]


def _ranks(rank: int, size: int) -> dict[str, Any]:
    g = D.resolve("world")
    assert g is not None
    x, y = _data()
    mine = D.shard(x.shape[0], g)
    out: dict[str, Any] = {}
    ddp = nn.parallel.DistributedDataParallel(_net())  # the reducer must not be left waiting
    with D.traffic() as t:
        out["upgrad"], out["upgrad_w"] = _train(ddp, x[mine], y[mine], UPGrad(), g)
    out["bytes"], out["calls"] = t.bytes, t.calls
    out["params"] = torch.cat([p.detach().reshape(-1) for p in ddp.parameters()])
    searching = nn.parallel.DistributedDataParallel(_net(), find_unused_parameters=True)
    out["unused"], _ = _train(searching, x[mine], y[mine], UPGrad(), g)
    static = nn.parallel.DistributedDataParallel(_net(), static_graph=True)
    out["static"], _ = _train(static, x[mine], y[mine], UPGrad(), g)
    out["mgda"], _ = _train(_net(), x[mine], y[mine], MGDA(), "world")
    out["trimmed"], _ = _train(_net(), x[mine], y[mine], TrimmedMean(trim_number=1), g)
    with config.memory_budget(2500), D.traffic() as t:  # room for one row at a time
        out["chunked"], _ = _train(_net(), x[mine], y[mine], UPGrad(), g)
    out["chunked_calls"] = t.calls
    out["fail_backward"] = _failing_backward(g, bad_rank=0)
    out["mtl"] = _mtl(x[mine], y[mine], g)
    out["float32"], _ = _train(_net().float(), x[mine].float(), y[mine].float(), UPGrad(), g)
    out["fail"] = _failing(g, bad_rank=1)
    out["sharded"] = _sharded(g)
    model = _net()
    out["mismatch"] = outcome(  # rank 1 passes two losses, rank 0 three
        lambda: backward(_losses(model, x[mine], y[mine])[:M - rank], list(model.parameters()),
                         process_group=g))[0]
    return out


@pytest.fixture(scope="module")
def ranks() -> list[dict[str, Any]]:
    return run(_ranks, 2, timeout=90)


def test_ddp_steps_equal_one_process_on_the_whole_batch(ranks: list[dict[str, Any]]) -> None:
    x, y = _data()
    for name, aggregator in (("upgrad", UPGrad()), ("mgda", MGDA()),
                             ("trimmed", TrimmedMean(trim_number=1)), ("chunked", UPGrad())):
        ref, ref_w = _train(_net(), x, y, aggregator)
        for r in ranks:
            assert_steps_close(r[name], ref, rtol=1e-10, atol=1e-12)
            if name == "upgrad":
                assert_steps_close(r["upgrad_w"], ref_w, rtol=1e-10)
    ref, _ = _train(_net(), x, y, UPGrad())
    for r in ranks:  # DDP searching for unused parameters, or with a static graph: the same
        assert_steps_close(r["unused"] + r["static"], ref + ref, rtol=1e-10, atol=1e-12)
    # the ranks' parameters are the same bits after the steps
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])


def test_float32_steps_equal_one_process_to_1e_6(ranks: list[dict[str, Any]]) -> None:
    x, y = _data()
    ref, _ = _train(_net().float(), x.float(), y.float(), UPGrad())
    for r in ranks:
        for got, want in zip(r["float32"], ref, strict=True):
            scale = float(want.abs().max())
            np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-6 * scale)


def test_mtl_backward_averages_heads_and_trunk(ranks: list[dict[str, Any]]) -> None:
    x, y = _data()
    ref = _mtl(x, y).numpy()
    for r in ranks:
        np.testing.assert_allclose(r["mtl"], ref, rtol=1e-10, atol=1e-12)


def test_bytes_are_the_reduce_scatter_the_gramian_and_the_update(
        ranks: list[dict[str, Any]]) -> None:
    P, N, m, item = 57, 2, M, 8
    width = -(-P // N)
    per_step = (10 + 1) * 8 + N * (m * width + 1) * item + (m * m + 1) * item \
        + (m + 1) * item + width * item  # check, reduce-scatter, Gramian, weights, update
    for r in ranks:
        assert r["bytes"] == STEPS * per_step
        assert r["calls"] == STEPS * 5
        assert r["chunked_calls"] == STEPS * (4 + m)  # one reduce-scatter per row


def test_a_failing_rank_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    (healthy, msg, took), (own, own_msg, _) = ranks[0]["fail"], ranks[1]["fail"]
    assert own == "NonFiniteInputError" and "NaN" in own_msg
    assert healthy == "RankFailedError" and "rank 1 failed: NonFiniteInputError" in msg
    assert took < 10


def test_a_rank_failing_in_its_backward_pass_stops_every_rank(
        ranks: list[dict[str, Any]]) -> None:
    (own, own_msg), (healthy, msg) = ranks[0]["fail_backward"], ranks[1]["fail_backward"]
    assert own == "ValueError" and "on purpose" in own_msg
    assert healthy == "RankFailedError" and "rank 0 failed: ValueError" in msg


def test_ranks_that_disagree_on_the_losses_are_refused(ranks: list[dict[str, Any]]) -> None:
    assert [r["mismatch"] for r in ranks] == ["ShapeError", "ShapeError"]


def test_dtensors_used_directly_are_refused(ranks: list[dict[str, Any]]) -> None:
    assert [r["sharded"] for r in ranks] == ["UnsupportedOperationError"] * 2
