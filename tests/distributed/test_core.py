"""jacobite.distributed on real gloo process groups (2 and 3 processes): resolve, the guarded
collectives and their failure flag, shares, scatter / gather of batches, the traffic counter —
every result against the values computed in one process."""

from __future__ import annotations

import itertools
import pickle
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from jacobite import distributed as D
from jacobite.distributed._batch import share
from jacobite.distributed.internal import share_each
from jacobite.errors import ArgumentTypeError, DistributedError, InvalidOptionError, ShapeError

from ._spawn import run

pytestmark = pytest.mark.distributed


@dataclass
class Result:
    x: torch.Tensor
    status: list[str]
    method: str


def _problems(n: int) -> Result:
    x = torch.arange(n * 3, dtype=torch.float64).reshape(n, 3)
    return Result(x, [f"p{i}" for i in range(n)], "lm")


def _failing(g: D.Group, like: torch.Tensor, bad_rank: int) -> tuple[str, str, float]:
    """One rank raises inside a guarded block; what each rank ends with, and how long it took."""
    t0 = time.monotonic()
    try:
        with D.guarded(g, like=like):
            if g.rank == bad_rank:
                raise ValueError("boom on purpose")
            D.guarded_all_reduce(like, g)
    except Exception as exc:
        return type(exc).__name__, str(exc), time.monotonic() - t0
    return "none", "", time.monotonic() - t0


def _two(rank: int, size: int) -> dict:
    g = D.resolve("world")
    assert g is not None and (g.rank, g.size, g.device.type) == (rank, 2, "cpu")
    assert D.resolve(g) is g and D.resolve(dist.group.WORLD) == g
    out: dict = {}
    # reductions: the same bits on both ranks, equal to the single-process value
    v = torch.tensor([1.5, -2.0, 3.25], dtype=torch.float64) * (rank + 1)
    with D.traffic() as t:
        out["sum"] = D.guarded_all_reduce(v, g)
    out["bytes"], out["calls"] = t.bytes, t.calls
    out["max"] = D.guarded_all_reduce(v, g, op="max")
    out["min"] = D.guarded_all_reduce(torch.tensor([rank, 5 - rank]), g, op="min")
    out["bcast"] = D.guarded_broadcast(torch.full((2, 2), float(rank + 7)), g, src=1)
    out["gather"] = D.guarded_all_gather(torch.tensor([rank, 10 * rank]), g)
    # shares: contiguous, rank order, sizes within one
    out["shard"] = (D.shard(5, g).start, D.shard(5, g).stop)
    out["shard_batch"] = D.shard_batch((torch.arange(5.0), ["a", "b", "c", "d", "e"]), g)
    # scatter from rank 1 (others pass None), gather back on rank 0 and on all
    part = D.scatter_batch(_problems(5) if rank == 1 else None, g, src=1)
    out["part"] = (part.x, part.status, part.method)
    back = D.gather_batch(part, g, dst=0)
    out["back0"] = None if back is None else (back.x, back.status)
    both = D.gather_batch(part, g, dst=None)
    out["back_all"] = (both.x, both.status, both.method)
    # an empty share gathers too
    empty = torch.zeros((0 if rank == 0 else 2, 2))
    out["uneven"] = D.gather_batch({"e": empty}, g, dst=None)["e"].shape
    # a failing rank: the other raises RankFailedError naming it, no hang; the group still works
    out["fail"] = _failing(g, torch.ones(4), bad_rank=1)
    out["after"] = D.guarded_all_reduce(torch.ones(1), g)
    try:  # a rank whose tree is malformed fails gather_batch on every rank
        D.gather_batch(torch.tensor(1.0) if rank == 0 else torch.ones(2), g)
    except Exception as exc:
        out["gather_fail"] = (type(exc).__name__, str(exc))
    try:  # a malformed tree on the scatter's source
        D.scatter_batch((torch.ones(3), torch.ones(2)) if rank == 0 else None, g)
    except Exception as exc:
        out["scatter_fail"] = (type(exc).__name__, str(exc))
    try:
        D.gather_batch(torch.ones(2) if rank == 0 else torch.ones(2, dtype=torch.int64), g)
    except ShapeError as exc:
        out["mismatch"] = str(exc)
    return out


def test_two_processes() -> None:
    r0, r1 = run(_two, 2)
    v = np.array([1.5, -2.0, 3.25])
    for r in (r0, r1):
        np.testing.assert_array_equal(r["sum"], 3 * v)
        np.testing.assert_array_equal(r["max"], np.maximum(v, 2 * v))
        np.testing.assert_array_equal(r["min"], [0, 4])
        np.testing.assert_array_equal(r["bcast"], np.full((2, 2), 8.0))
        np.testing.assert_array_equal(r["gather"], [[0, 0], [1, 10]])
        assert (r["bytes"], r["calls"]) == (4 * 8, 1)  # 3 values and the flag
        np.testing.assert_array_equal(r["back_all"][0], _problems(5).x.numpy())
        assert r["back_all"][1:] == (_problems(5).status, "lm")
        assert tuple(r["uneven"]) == (2, 2)
        np.testing.assert_array_equal(r["after"], [2.0])
        assert r["gather_fail"][0] in {"ShapeError", "RankFailedError"}
        assert r["scatter_fail"][0] in {"ShapeError", "RankFailedError"}
        assert "different structure" in r["mismatch"]
    assert r0["shard"] == (0, 3) and r1["shard"] == (3, 5)
    np.testing.assert_array_equal(r1["shard_batch"][0], [3.0, 4.0])
    assert r1["shard_batch"][1] == ["d", "e"]
    np.testing.assert_array_equal(r0["part"][0], _problems(5).x[:3].numpy())
    assert r1["part"][1:] == (["p3", "p4"], "lm")
    np.testing.assert_array_equal(r0["back0"][0], _problems(5).x.numpy())
    assert r1["back0"] is None
    # the failing rank re-raises its own error, the healthy one names it, within seconds
    assert r1["fail"][:2] == ("ValueError", "boom on purpose")
    assert r0["fail"][0] == "RankFailedError"
    assert "rank 1 failed: ValueError: boom on purpose" in r0["fail"][1]
    assert max(r0["fail"][2], r1["fail"][2]) < 5.0
    assert r0["gather_fail"][0] == "ShapeError" and "rank 0 failed" in r1["gather_fail"][1]
    assert r0["scatter_fail"][0] == "ShapeError" and "rank 0 failed" in r1["scatter_fail"][1]


def _three(rank: int, size: int) -> dict:
    g = D.resolve(dist.group.WORLD)
    assert g is not None
    out: dict = {"shard": D.shard(7, g)}
    part = D.scatter_batch({"x": torch.arange(7.0).reshape(7, 1), "s": list("abcdefg")}, g)
    out["part"] = part["s"]
    out["all"] = D.gather_batch(part, g, dst=2)
    out["fail"] = _failing(g, torch.zeros(3, dtype=torch.int64), bad_rank=0)
    sub = dist.new_group([0, 2])
    if rank == 1:
        try:
            D.resolve(sub)
        except DistributedError as exc:
            out["not_member"] = str(exc)
    else:
        s = D.resolve(sub)
        assert s is not None and s.size == 2 and s.rank == rank // 2
        out["sub"] = D.guarded_broadcast(torch.tensor([float(rank)]), s, src=1)
    return out


def test_three_processes_uneven_shares_subgroups_and_a_failing_rank() -> None:
    rs = run(_three, 3)
    assert [r["shard"] for r in rs] == [slice(0, 3), slice(3, 5), slice(5, 7)]
    assert [r["part"] for r in rs] == [list("abc"), list("de"), list("fg")]
    assert rs[0]["all"] is None and rs[1]["all"] is None
    np.testing.assert_array_equal(rs[2]["all"]["x"], np.arange(7.0).reshape(7, 1))
    assert rs[2]["all"]["s"] == list("abcdefg")
    assert rs[0]["fail"][0] == "ValueError"
    for r in rs[1:]:
        assert r["fail"][0] == "RankFailedError" and "rank 0 failed: ValueError" in r["fail"][1]
    assert "not a member" in rs[1]["not_member"]
    for r in (rs[0], rs[2]):
        np.testing.assert_array_equal(r["sub"], [2.0])  # src=1 within the subgroup is rank 2


# ---- the single-process path and the refusals (no process group) -------------------------

def test_without_a_process_group() -> None:
    assert D.resolve(None) is None
    with pytest.raises(DistributedError, match="init_process_group"):
        D.resolve("world")
    with pytest.raises(ArgumentTypeError, match="ProcessGroup"):
        D.resolve("everyone")
    t = torch.arange(4.0)
    with D.traffic() as traffic:
        assert D.guarded_all_reduce(t, None) is t
        assert D.guarded_broadcast(t, None) is t
        assert D.guarded_all_gather(t, None).shape == (1, 4)
        assert D.scatter_batch(t, None) is t and D.gather_batch(t, None) is t
    assert (traffic.bytes, traffic.calls) == (0, 0)
    with pytest.raises(ShapeError, match="same batch dimension"):
        D.shard_batch((torch.ones(2), torch.ones(3)), None)
    with pytest.raises(ValueError, match="boom"), D.guarded(None, like=t):
        raise ValueError("boom")


@given(n=st.integers(0, 10_000), size=st.integers(1, 64))
def test_shares_cover_the_items_in_order(n: int, size: int) -> None:
    parts = [share(n, r, size) for r in range(size)]
    assert parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
    assert lengths == [len(a) for a in np.array_split(np.arange(n), size)]  # NumPy's split


@given(n=st.integers(0, 100), size=st.integers(1, 8))
def test_share_each_refuses_fewer_problems_than_ranks(n: int, size: int) -> None:
    groups = [D.Group(None, r, size, torch.device("cpu")) for r in range(size)]
    if n < size:
        with pytest.raises(InvalidOptionError,
                           match=rf"^{n} goal\(s\) cannot be shared by {size} ranks \(each rank "
                                 r"needs at least one\); stack them$"):
            share_each(n, groups[0], "goal(s)", "stack them")
    else:
        assert [share_each(n, g, "goal(s)", "stack them") for g in groups] == \
            [share(n, r, size) for r in range(size)]
    assert share_each(n, None, "problems", "-") == slice(0, n)


class _CountedPickle:
    """Stands for the ``pickle`` module of ``jacobite.distributed._scatter``: the sizes of the
    objects it pickles, in order."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def dumps(self, obj: object) -> bytes:
        data = pickle.dumps(obj)
        self.sizes.append(len(data))
        return data


def _object_traffic(rank: int, size: int) -> dict:
    """scatter_batch and gather_batch of a tree with a list leaf, outside and inside traffic()."""
    from jacobite.distributed import _scatter

    g = D.resolve("world")
    assert g is not None
    counted = _scatter.pickle = _CountedPickle()  # type: ignore[assignment]
    tree = (torch.arange(8.0, dtype=torch.float64).reshape(4, 2), ["a", "b", "c", "d"])

    def both() -> None:
        part = D.scatter_batch(tree if rank == 0 else None, g)
        D.gather_batch(part, g, dst=None)

    both()
    out: dict = {"outside": list(counted.sizes)}
    with D.traffic() as guard:  # gather_batch's check of the leading sizes and structures
        D.guarded_all_gather(torch.tensor([2, 0]), g)
    with D.traffic() as t:
        both()
    out["inside"] = (t.bytes, t.calls, list(counted.sizes), guard.bytes, guard.calls)
    return out


def test_object_payloads_are_pickled_for_traffic_only_inside_a_block() -> None:
    for rank, r in enumerate(run(_object_traffic, 2)):
        assert r["outside"] == []  # no second pickling where no counter reads it
        nbytes, calls, sizes, guard_bytes, guard_calls = r["inside"]
        # the scatter: the description and the list's shares from rank 0 (pickled), the
        # tensor's two shares of 2 × 2 float64; the gather: the guard, this rank's list share
        # (pickled) and its 2 × 2 float64 rows
        assert len(sizes) == (3 if rank == 0 else 1)
        scatter = sum(sizes[:2]) + 2 * 32 if rank == 0 else 0
        assert nbytes == scatter + guard_bytes + sizes[-1] + 32
        assert calls == 3 + guard_calls + 2
