"""The test harness itself: results in rank order (tensors as NumPy), a rank's error raised
with its traceback, and a hard timeout that kills a hanging run."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from ._spawn import RankError, run

pytestmark = pytest.mark.distributed


def _ranks(rank: int, size: int, scale: float) -> dict:
    return {"rank": rank, "size": size, "t": torch.full((2,), scale * rank),
            "world": dist.get_world_size(), "threads": torch.get_num_threads()}


def _raises(rank: int, size: int) -> int:
    if rank == 1:
        raise KeyError("only on rank 1")
    return rank


HANG = 600.0  # how long a hanging rank sleeps: far beyond any timeout below, so a run that
# ends in time was killed by the harness, on a loaded machine too


def _hangs(rank: int, size: int) -> None:
    if rank == 0:
        dist.barrier()  # rank 1 never joins
    else:
        time.sleep(HANG)


def _raises_while_the_other_sleeps(rank: int, size: int) -> int:
    if rank == 1:
        raise KeyError("only on rank 1")
    time.sleep(HANG)
    return rank


def test_results_errors_and_timeout() -> None:
    res = run(_ranks, 2, 3.0)
    assert [r["rank"] for r in res] == [0, 1] and {r["size"] for r in res} == {2}
    assert {r["world"] for r in res} == {2} and {r["threads"] for r in res} == {1}
    np.testing.assert_array_equal(res[1]["t"], [3.0, 3.0])
    with pytest.raises(RankError, match=r"rank 1 of 2 raised:\nKeyError(.|\n)*_raises"):
        run(_raises, 2)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"ranks \[0, 1\] did not finish within 3.0 s"):
        run(_hangs, 2, timeout=3.0)
    assert time.monotonic() - t0 < HANG / 10  # killed at the timeout, not after the sleep


def test_an_error_is_raised_while_another_rank_still_runs() -> None:
    """The failing rank's error, not a timeout, however long the others take; they are
    killed."""
    t0 = time.monotonic()
    with pytest.raises(RankError, match=r"rank 1 of 2 raised:\nKeyError(.|\n)*ranks \[0\] were "
                                        r"still running and were killed"):
        run(_raises_while_the_other_sleeps, 2, timeout=2 * HANG)
    assert time.monotonic() - t0 < HANG / 10
