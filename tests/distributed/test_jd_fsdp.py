"""Jacobian descent over a gloo group of two processes on an FSDP2 model
(``torch.distributed.fsdp.fully_shard``): ``backward(..., process_group=)`` with UPGrad through
a few SGD steps equals Jacobian descent in one process on the whole batch (the parameters
after each step, and the weights, to 1e-10 in float64; with and without resharding after the
forward pass); a second step without ``zero_grad`` adds to ``.grad``; jacobite's own traffic
is the m² Gramian entries and the m weights; a rank whose losses are wrong makes the other
raise RankFailedError; what the FSDP route cannot do is refused. One spawn checks everything."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from jacobite import distributed as D
from jacobite.multiobjective import UPGrad, backward, mtl_backward
from jacobite.multiobjective.aggregators import TrimmedMean

from ._jd_model import STEPS, M, assert_steps_close
from ._jd_model import data as _data
from ._jd_model import losses as _losses
from ._jd_model import net as _net
from ._spawn import outcome, run

pytestmark = pytest.mark.distributed

def _sharded_net(reshard: bool = True) -> nn.Sequential:
    from torch.distributed.fsdp import fully_shard

    model = _net()
    fully_shard(model[0], reshard_after_forward=reshard)
    fully_shard(model[2], reshard_after_forward=reshard)
    fully_shard(model, reshard_after_forward=reshard)
    return model


def _full(model: nn.Module) -> torch.Tensor:
    return torch.cat([getattr(p, "full_tensor", p.detach)().detach().reshape(-1)
                      for p in model.parameters()])


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
           group: Any = None) -> tuple[list[torch.Tensor], list[Any]]:
    """STEPS steps of SGD with UPGrad; the whole parameters and the weights after each."""
    # collected before the forward pass, like the optimizer's: afterwards, with
    # reshard_after_forward=False, model.parameters() yields FSDP's unsharded tensors
    mine = list(model.parameters())
    opt = torch.optim.SGD(mine, lr=0.1)
    params, weights = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        weights.append(backward(_losses(model, x, y), mine, UPGrad(), process_group=group))
        opt.step()
        params.append(_full(model))
    return params, weights


def _refused(call: Any) -> str:
    return outcome(call)[0]


def _accumulated(x: torch.Tensor, y: torch.Tensor, g: D.Group) -> float:
    """Two steps without zero_grad add up: the second .grad is twice the first."""
    model = _sharded_net()
    backward(_losses(model, x, y), list(model.parameters()), process_group=g)
    first = [p.grad.to_local().clone() for p in model.parameters()]  # type: ignore[union-attr]
    backward(_losses(model, x, y), list(model.parameters()), process_group=g)
    return max(float((p.grad.to_local() - 2 * f).abs().max())  # type: ignore[union-attr]
               for p, f in zip(model.parameters(), first, strict=True))


def _ranks(rank: int, size: int) -> dict[str, Any]:
    g = D.resolve("world")
    assert g is not None
    x, y = _data()
    mine = D.shard(x.shape[0], g)
    out: dict[str, Any] = {}
    model = _sharded_net()
    with D.traffic() as t:
        out["params"], out["weights"] = _train(model, x[mine], y[mine], g)
    out["bytes"], out["calls"] = t.bytes, t.calls
    out["kept"], _ = _train(_sharded_net(reshard=False), x[mine], y[mine], g)
    out["accumulated"] = _accumulated(x[mine], y[mine], g)
    out["local"] = sum(p.to_local().numel() for p in model.parameters())  # type: ignore[attr-defined]
    # a failing rank: rank 1 passes a 2-D tensor of losses
    losses = _losses(model, x[mine], y[mine])
    bad = losses.reshape(1, M) if rank == 1 else losses
    out["fail"] = _refused(lambda: backward(bad, list(model.parameters()), process_group=g))
    params = list(model.parameters())
    out["trimmed"] = _refused(lambda: backward(_losses(model, x[mine], y[mine]), params,
                                               TrimmedMean(trim_number=1), process_group=g))
    z = model[1](model[0](x[mine]))
    out["mtl"] = _refused(lambda: mtl_backward([model[2](z).sum(), z.sum()], z,
                                               tasks_params=[list(model[2].parameters()), []],
                                               shared_params=list(model[0].parameters()),
                                               process_group=g))
    out["default_params"] = _refused(lambda: backward(_losses(model, x[mine], y[mine]),
                                                       process_group=g))
    return out


@pytest.fixture(scope="module")
def ranks() -> list[dict[str, Any]]:
    return run(_ranks, 2, timeout=60)


def test_fsdp_steps_equal_one_process_on_the_whole_batch(ranks: list[dict[str, Any]]) -> None:
    x, y = _data()
    ref, ref_w = _train(_net(), x, y)
    for r in ranks:  # with and without resharding after the forward pass
        assert_steps_close(r["params"] + r["kept"], ref + ref, rtol=1e-10, atol=1e-12)
        assert_steps_close(r["weights"], ref_w, rtol=1e-10)


def test_jacobite_sends_the_gramian_and_the_weights(ranks: list[dict[str, Any]]) -> None:
    # per step: the shape check (10 int64 + flag), the Gramian (m² + flag), the weights (m +
    # flag); FSDP's own all-gathers and reduce-scatters are not counted
    per_step = 11 * 8 + (M * M + 1) * 8 + (M + 1) * 8
    assert [r["calls"] for r in ranks] == [3 * STEPS] * 2
    assert [r["bytes"] for r in ranks] == [per_step * STEPS] * 2
    assert sum(r["local"] for r in ranks) == sum(p.numel() for p in _net().parameters())


def test_a_failing_rank_stops_the_other(ranks: list[dict[str, Any]]) -> None:
    assert [r["fail"] for r in ranks] == ["RankFailedError", "ShapeError"]


def test_what_fsdp_cannot_do_is_refused(ranks: list[dict[str, Any]]) -> None:
    assert [r["trimmed"] for r in ranks] == ["UnsupportedOperationError"] * 2
    assert [r["mtl"] for r in ranks] == ["UnsupportedOperationError"] * 2
    # left to its default, params would be FSDP's freed unsharded parameters
    assert [r["default_params"] for r in ranks] == ["UnsupportedOperationError"] * 2


def test_steps_without_zero_grad_add_up(ranks: list[dict[str, Any]]) -> None:
    assert max(r["accumulated"] for r in ranks) < 1e-12
