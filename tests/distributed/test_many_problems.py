"""Many independent problems shared by a gloo group of two processes (``least_squares`` /
``curve_fit`` with ``batch=True, process_group=``, and ``kinematics.ik``): every rank gets every
result, equal to the whole batch solved in one process; uneven shares, per-problem data and
options, full_output, and the refusals (a closure over per-problem data, a failing rank, fewer
problems than ranks). One spawn checks everything."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from jacobite import curve_fit, least_squares
from jacobite.errors import InvalidOptionError
from jacobite.kinematics import Chain, ik

from ._spawn import outcome as _error
from ._spawn import run

pytestmark = pytest.mark.distributed

F64 = torch.float64
B = 7  # shares of 4 and 3
T = torch.linspace(0, 2, 15, dtype=F64)


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    a = 1 + torch.rand(B, 1, generator=g, dtype=F64)
    k = 0.3 + torch.rand(B, 1, generator=g, dtype=F64)
    y = a * torch.exp(-k * T) + 0.01 * torch.randn(B, T.numel(), generator=g, dtype=F64)
    return y, torch.ones(B, 2, dtype=F64), 0.5 + torch.rand(B, generator=g, dtype=F64)


def _residuals(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return p[:, :1] * torch.exp(-p[:, 1:] * T) - y


def _model(x: torch.Tensor, a: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return a * torch.exp(-k * x)


def _solve(group: Any = None) -> dict[str, Any]:
    y, x0, fs = _data()
    hi = torch.full((B, 2), 10.0, dtype=F64)
    hi[0, 1] = 0.2  # a bound that binds for problem 0 only
    x0[0, 1] = 0.1
    solve: Any = least_squares  # batch=True returns a BatchLeastSquaresResult
    res = solve(_residuals, x0, batch=True, args=(y,), bounds=(0.0, hi),
              loss="soft_l1", f_scale=fs, process_group=group)
    sigma = 0.5 + torch.arange(B * T.numel(), dtype=F64).reshape(B, -1) / 100
    popt, pcov, info, mesg, ier = curve_fit(_model, T, y, x0 + 0.1, sigma=sigma, batch=True,
                                            full_output=True, process_group=group)
    return {"x": res.x, "status": res.status, "message": res.message, "nfev": res.nfev,
            "cov": res.covariance, "active": res.active_mask, "n": len(res),
            "popt": popt, "pcov": pcov, "fvec": info["fvec"], "mesg": mesg, "ier": ier,
            "res_x": info["result"].x}


def _ik(group: Any = None) -> dict[str, Any]:
    """Five position goals of a 3-joint arm (shares of 3 and 2), the first seed given."""
    arm = Chain.from_dh([[0.0, np.pi / 2, 0.3, 0.0], [0.4, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]])
    q = torch.linspace(-1, 1, 15, dtype=F64).reshape(5, 3)
    goals = arm.fk(q)[:, :3, 3]
    res = ik(arm, goals, q0=torch.zeros(5, 3, dtype=F64), seeds=4, position_only=True,
             process_group=group)
    return {"q": res.q, "success": res.success, "status": res.status, "seed": res.seed,
            "iterations": res.iterations, "nfev": res.nfev, "error": res.position_error}


def _ranks(rank: int, size: int) -> dict[str, Any]:
    out = _solve("world")
    out["ik"] = _ik("world")
    y, x0, _ = _data()
    # per-problem data through a closure cannot be split
    out["closure"] = _error(lambda: least_squares(lambda p: _residuals(p, y), x0, batch=True,
                                                  process_group="world"))
    # a tensor all problems share whose first dimension happens to be B: not cut silently
    shared = torch.linspace(1, 2, B, dtype=F64)
    out["shared"] = _error(lambda: least_squares(lambda p, w: p * w.sum() - 1, x0, batch=True,
                                                 args=(shared,), process_group="world"))
    bad = y.clone()
    bad[6, 0] = float("nan")  # in rank 1's share: its third problem
    out["fail"] = _error(lambda: least_squares(_residuals, x0, batch=True, args=(bad,),
                                               process_group="world"))
    out["few"] = _error(lambda: least_squares(_residuals, x0[:1], batch=True, args=(y[:1],),
                                              process_group="world"))
    return out


@pytest.fixture(scope="module")
def ranks() -> list[dict[str, Any]]:
    return run(_ranks, 2, timeout=90)


def test_every_rank_gets_the_one_process_results(ranks: list[dict[str, Any]]) -> None:
    ref = _solve()
    for r in ranks:
        assert r["n"] == B and r["message"] == ref["message"] and r["mesg"] == ref["mesg"]
        for key in ("x", "status", "nfev", "cov", "active", "popt", "pcov", "fvec", "ier",
                    "res_x"):
            want = ref[key].numpy() if isinstance(ref[key], torch.Tensor) else ref[key]
            np.testing.assert_allclose(r[key], want, rtol=1e-10, atol=1e-12, err_msg=key)
    assert ref["active"][0, 1] == 1 and (ref["active"][1:] == 0).all()


def test_ik_goals_shared_by_the_ranks_equal_one_process(ranks: list[dict[str, Any]]) -> None:
    ref = _ik()
    assert ref["success"].all()
    for r in ranks:
        got = r["ik"]
        assert got["status"] == ref["status"]
        for key in ("q", "success", "seed", "iterations", "nfev", "error"):
            np.testing.assert_allclose(got[key], ref[key].numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=key)


def test_a_closure_over_per_problem_data_is_refused(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        kind, msg = r["closure"]
        assert kind == "ShapeError" and "args=" in msg


def test_a_shared_tensor_of_first_dimension_b_is_not_cut(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        kind, msg = r["shared"]
        assert kind == "ShapeError" and "t[None]" in msg


def test_a_failing_share_stops_every_rank(ranks: list[dict[str, Any]]) -> None:
    kind, own = ranks[1]["fail"]
    assert kind == "NonFiniteInputError" and "problem 2" in own and "add 4" in own
    kind, msg = ranks[0]["fail"]
    assert kind == "RankFailedError" and "rank 1 failed: NonFiniteInputError" in msg


def test_fewer_problems_than_ranks_is_refused(ranks: list[dict[str, Any]]) -> None:
    assert [r["few"][0] for r in ranks] == ["InvalidOptionError"] * 2


def test_process_group_needs_batch() -> None:
    with pytest.raises(InvalidOptionError, match="batch=True"):
        least_squares(lambda p: p - 1, torch.zeros(2), process_group="world")
    with pytest.raises(InvalidOptionError, match="batch=True"):
        curve_fit(_model, T, T, [1.0, 1.0], process_group="world")
