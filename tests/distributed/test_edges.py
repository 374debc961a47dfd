"""The edges of every process_group= path: a group of one process, a group with more ranks than
samples (a rank with an empty share), and float32 beside float64. Results are checked against
torch.func (the GGN as ``Jᵀ H J``, the Hessian, the dense Jacobian); two spawns check everything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, hessian, jacfwd, jacrev

import jacobite
from jacobite import curvature as C
from jacobite import distributed as D
from jacobite import least_squares
from jacobite.curvature._sharded import global_count
from jacobite.dense import JacobianBlock
from jacobite.kinematics import Chain, ik

from ._spawn import outcome as _error
from ._spawn import run

pytestmark = pytest.mark.distributed

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _close(a: torch.Tensor, b: torch.Tensor, dt: torch.dtype) -> None:
    err = float((a - b).norm() / b.norm().clamp_min(1e-30))
    assert err <= TOL[dt], f"relative error {err:.3g} > {TOL[dt]:g} ({dt})"


def _problem(dt: torch.dtype, n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(dt)
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(n, 3, generator=g, dtype=dt), torch.randint(0, 3, (n,), generator=g)


def _oracles(model: nn.Module, X: torch.Tensor, y: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The GGN ``Jᵀ H J`` and the Hessian of the mean cross-entropy by torch.func."""
    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def out(th: torch.Tensor) -> torch.Tensor:
        parts = torch.split(th, [s.numel() for s in shapes])
        p = {k: t.view(s) for k, t, s in zip(names, parts, shapes, strict=True)}
        return functional_call(model, p, (X,))

    o = out(theta)
    J = jacrev(out)(theta).reshape(o.numel(), -1)
    H = hessian(lambda z: nn.functional.cross_entropy(z, y))(o).reshape(o.numel(), o.numel())
    return J.T @ H @ J, hessian(lambda th: nn.functional.cross_entropy(out(th), y))(theta)


def _wide(x: torch.Tensor) -> torch.Tensor:  # 2 inputs -> 40 outputs: forward mode
    return torch.sin(torch.outer(torch.arange(1.0, 21.0, dtype=x.dtype), x)).reshape(-1)


def _tall(x: torch.Tensor) -> torch.Tensor:  # 30 inputs -> 2 outputs: reverse mode
    return torch.stack([torch.tanh(x).sum(), (x * x).sum()])


def _dense(g: D.Group, dt: torch.dtype) -> None:
    """Each rank's block (possibly empty) and the gathered Jacobian against torch.func."""
    for f, x, jac in ((_wide, torch.linspace(-1, 1, 2, dtype=dt), jacfwd),
                      (_tall, torch.linspace(-1, 1, 30, dtype=dt), jacrev)):
        oracle = jac(f)(x)
        blk = jacobite.jacobian(f, x, process_group=g)
        assert isinstance(blk, JacobianBlock) and blk.block.dtype == dt
        want = oracle[blk.index] if blk.dim == 0 else oracle[:, blk.index]
        assert blk.block.shape == want.shape
        if want.numel():
            _close(blk.block, want, dt)
        whole = jacobite.jacobian(f, x, process_group=g, gather=g.size - 1)
        if g.rank == g.size - 1:
            _close(whole, oracle, dt)
        else:
            assert whole is None


def _fails_guarded(g: D.Group, v: torch.Tensor) -> None:
    with D.guarded(g, like=v):
        raise ValueError("only rank")


def _one_rank(rank: int, size: int) -> dict[str, Any]:
    """A group of one process: every path equals torch.func (and one process without a group)."""
    g = D.resolve("world")
    assert g is not None and g.size == 1
    v = torch.tensor([1.5, -2.0, 3.25])
    for each in (D.guarded_all_reduce(v, g, op="max"), D.guarded_broadcast(v, g),
                 D.guarded_all_gather(v, g)[0], D.scatter_batch(v, g),
                 D.gather_batch(v, g, dst=None)):
        np.testing.assert_array_equal(each.numpy(), v.numpy())
    assert D.shard(5, g) == slice(0, 5)
    assert _error(lambda: _fails_guarded(g, v)) == ("ValueError", "only rank")
    for dt in (torch.float64, torch.float32):
        model, X, y = _problem(dt, 5)
        G, H = _oracles(model, X, y)
        ce = nn.CrossEntropyLoss()
        v = torch.randn(G.shape[0], 2, dtype=dt, generator=torch.Generator().manual_seed(2))
        Gd = C.ggn(model, ce, (X, y), process_group=g)
        _close(Gd.mm(v), G @ v, dt)
        _close(Gd.diagonal(), G.diagonal(), dt)
        _close(C.ggn_diagonal(model, ce, (X, y), process_group=g), G.diagonal(), dt)
        _close(C.fisher(model, ce, (X, y), kind="exact", process_group=g).mv(v[:, 0]),
               G @ v[:, 0], dt)
        _close(C.hessian(model, ce, (X, y), process_group=g).mm(v), H @ v, dt)
        K1 = C.kfac(model, ce, (X, y), kind="empirical")
        Kd = C.kfac(model, ce, (X, y), kind="empirical", process_group=g)
        for (_, A1, B1), (_, Ad, Bd) in zip(K1.factors, Kd.factors, strict=True):
            _close(Ad, A1, dt)
            _close(Bd, B1, dt)
        _dense(g, dt)
    t = torch.linspace(0, 1, 6, dtype=torch.float64)
    ys = torch.stack([2 * t + 1, -t + 3])
    res = least_squares(lambda p, yy: p[:, :1] * t + p[:, 1:] - yy, torch.zeros(2, 2),
                        batch=True, args=(ys,), process_group=g)
    np.testing.assert_allclose(res.x.numpy(), [[2.0, 1.0], [-1.0, 3.0]], atol=1e-8)
    arm = Chain.from_dh([[0.0, np.pi / 2, 0.3, 0.0], [0.4, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]])
    q = torch.tensor([[0.3, -0.2, 0.5], [-0.4, 0.6, 0.1]], dtype=torch.float64)
    goals = arm.fk(q)[:, :3, 3]
    got = ik(arm, goals, seeds=2, position_only=True, process_group=g)
    assert bool(got.success.all())
    np.testing.assert_allclose(arm.fk(got.q)[:, :3, 3].numpy(), goals.numpy(), atol=1e-4)
    return {"ok": True}


def _empty_share(rank: int, size: int) -> dict[str, Any]:
    """Three ranks, two samples / inputs / problems: rank 2's share is empty."""
    g = D.resolve("world")
    assert g is not None and D.shard(2, g).stop - D.shard(2, g).start == (rank < 2)
    out: dict[str, Any] = {}
    for dt in (torch.float64, torch.float32):
        _dense(g, dt)
    part = D.scatter_batch(torch.arange(2.0) if rank == 0 else None, g)
    out["part"] = part
    out["back"] = D.gather_batch(part, g, dst=None)
    model, X, y = _problem(torch.float64, 2)
    Xs, ys = D.shard_batch((X, y), g)
    out["ggn"] = _error(lambda: C.ggn(model, nn.CrossEntropyLoss(), (Xs, ys), process_group=g))
    out["kfac"] = _error(lambda: C.kfac(model, nn.CrossEntropyLoss(), (Xs, ys), process_group=g))
    # parameter counts one apart at ten million: a sum of squares would round the gap away
    out["sizes"] = _error(lambda: global_count(1.0, 10**7 + (rank == 2), g))
    out["count"] = global_count(0.5 + rank, 10**7, g)
    # a model with one bias fewer on rank 2: refused on every rank, no collective of two lengths
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3, bias=rank != 2)).double()
    out["diag_sizes"] = _error(lambda: C.ggn_diagonal(other, nn.CrossEntropyLoss(), (X, y),
                                                      process_group=g))
    out["kfac_sizes"] = _error(lambda: C.kfac(other, nn.CrossEntropyLoss(), (X, y),
                                              process_group=g))
    out["lsq"] = _error(lambda: least_squares(lambda p: p - 1, torch.zeros(2, 2), batch=True,
                                              process_group=g))
    arm = Chain.from_dh([[0.0, 0.0, 0.4, 0.0], [0.0, 0.0, 0.3, 0.0]])
    out["ik"] = _error(lambda: ik(arm, torch.tensor([[0.5, 0.1, 0.0], [0.3, 0.3, 0.0]],
                                                    dtype=torch.float64),
                                  position_only=True, process_group=g))
    return out


def test_a_group_of_one_process_equals_torch_func() -> None:
    assert run(_one_rank, 1, timeout=90) == [{"ok": True}]


def test_a_rank_with_an_empty_share() -> None:
    rs = run(_empty_share, 3, timeout=90)
    assert [r["part"].tolist() for r in rs] == [[0.0], [1.0], []]
    for r in rs:
        np.testing.assert_array_equal(r["back"], [0.0, 1.0])
        # the problem solvers refuse fewer problems than ranks on every rank
        assert r["lsq"][0] == r["ik"][0] == "InvalidOptionError"
        assert r["count"] == 4.5
        assert r["sizes"][0] == "ShapeError" and "rank 2: 10000001" in r["sizes"][1]
        assert r["diag_sizes"][0] == "ShapeError" and "rank 2: 28" in r["diag_sizes"][1]
        assert r["kfac_sizes"][0] == "ShapeError" and "K-FAC factor" in r["kfac_sizes"][1]
    # the curvature refuses an empty shard (a batch of n = 0) on that rank; the others are told
    for key in ("ggn", "kfac"):
        assert rs[2][key][0] == "ShapeError" and "n >= 1" in rs[2][key][1]
        for r in rs[:2]:
            assert r[key][0] == "RankFailedError" and "rank 2 failed: ShapeError" in r[key][1]
