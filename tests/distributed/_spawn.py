"""Run a function on N CPU processes joined by a ``gloo`` process group, for the distributed
tests.

``run(fn, nprocs, *args)`` starts ``nprocs`` processes (forked from a ``forkserver`` that has
imported torch and jacobite once, so a start costs milliseconds after the first), joins them
through a ``FileStore`` in a temporary directory (no port to collide on), runs
``fn(rank, size, *args)`` in each with one intra-op thread, and returns the results in rank
order, tensors turned into NumPy arrays. A rank that raises makes ``run`` raise
:class:`RankError` with that rank's traceback text, whatever the other ranks' timing (they get
10 s to report, then any still running are killed); a run past ``timeout`` seconds without an
error kills every process and raises :class:`TimeoutError` — a test never hangs. ``fn`` must be
a module-level function (it is pickled by name).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["RankError", "outcome", "run"]

PRELOAD = ("torch", "torch.distributed", "jacobite", "jacobite.distributed", "jacobite.dense",
           "jacobite.curvature", "jacobite.analysis", "numpy")


class RankError(RuntimeError):
    """A rank's function raised; the message holds its traceback."""


def _to_plain(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_to_plain(v) for v in x)
    return x


def _child(fn: Callable[..., Any], rank: int, size: int, store_path: str, args: tuple[Any, ...],
           out: Any) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist

    try:
        store = dist.FileStore(store_path, size)
        dist.init_process_group("gloo", store=store, rank=rank, world_size=size)
        try:
            result = fn(rank, size, *args)
        finally:
            dist.destroy_process_group()
        out.put((rank, True, _to_plain(result)))
    except BaseException as exc:  # report everything, KeyboardInterrupt included
        out.put((rank, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run(fn: Callable[..., Any], nprocs: int, *args: Any, timeout: float = 60.0) -> list[Any]:
    """``[fn(0, nprocs, *args), ..., fn(nprocs - 1, nprocs, *args)]``, each run in its own
    process of one ``gloo`` group."""
    ctx = mp.get_context("forkserver")
    # the fork server imports torch and jacobite once; every run forks from it in milliseconds
    ctx.set_forkserver_preload(list(PRELOAD))
    out = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="jacobite-dist-") as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_child, args=(fn, r, nprocs, store, args, out), daemon=True)
                 for r in range(nprocs)]
        for p in procs:
            p.start()
        results: dict[int, Any] = {}
        errors: dict[int, str] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(results) + len(errors) < nprocs:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(set(range(nprocs)) - set(results) - set(errors))
                    if errors:  # the error is the cause; the ranks still running are killed
                        break
                    raise TimeoutError(f"ranks {missing} did not finish within {timeout} s")
                try:
                    rank, ok, value = out.get(timeout=min(left, 1.0))
                except queue.Empty:
                    dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0)
                            and r not in results and r not in errors]
                    if dead:
                        raise RankError(f"ranks {dead} died without a result (exit codes "
                                        f"{[procs[r].exitcode for r in dead]})") from None
                    continue
                (results if ok else errors)[rank] = value
                if not ok:  # the others get a few seconds to fail too (their errors are
                    # reported with it), then the first error is raised, whatever their timing
                    deadline = min(deadline, time.monotonic() + 10.0)
        finally:  # every rank reported: let them exit; else kill the ones still running
            done = len(results) + len(errors) == nprocs
            for p in procs:
                if done:
                    p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join()
            out.close()
    if errors:
        rank = min(errors)
        killed = sorted(set(range(nprocs)) - set(results) - set(errors))
        tail = f"\n(ranks {killed} were still running and were killed)" if killed else ""
        raise RankError(f"rank {rank} of {nprocs} raised:\n{errors[rank]}{tail}")
    return [results[r] for r in range(nprocs)]


def outcome(call: Callable[[], Any]) -> tuple[str, str]:
    """``(error class name, message)`` of what ``call()`` raised, or ``("none", "")``: a rank's
    refusal sent back as plain data."""
    try:
        call()
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return "none", ""
