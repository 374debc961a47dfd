"""Inverse kinematics for many goals over a process group: ``ik(..., process_group=pg)``.

Every rank passes all the goals; each draws the starts of every goal exactly as one process
would (the same generator, the same order), keeps its contiguous share of goals
(:func:`jacobite.distributed.shard`) and solves them with the seed width one process would use
for the whole batch; the results are gathered on every rank in goal order. A goal's answer can
still differ from one process's in the last iterations of a hard goal: the solver widens the
rows of the goals left once few remain, which depends on the goals solved beside it.

A rank whose share fails re-raises its error; the others raise
:class:`~jacobite.errors.RankFailedError` naming it instead of waiting.

>>> from jacobite.kinematics._ik_sharded import on_group
>>> on_group(None, lambda: "solved in this process", None)
'solved in this process'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from ..distributed import gather_batch, guarded, resolve
from ..distributed.internal import share_each
from ..errors import UnsupportedOperationError
from ._ik import SHARE

__all__ = ["on_group"]

T = TypeVar("T")


def _goals(shape: tuple[int, ...]) -> int:
    """The number of goals in a target of this shape: ``(G, 4, 4)`` poses or ``(G, 3)``
    positions; 1 for a single ``(4, 4)`` or ``(3,)`` (ik refuses other shapes)."""
    if len(shape) == 3 or (len(shape) == 2 and shape != (4, 4)):
        return int(shape[0])
    return 1


def on_group(process_group: Any, solve: Callable[[], T], target: Any) -> T:
    """``solve()`` (an :func:`~jacobite.kinematics.ik` call without the group) on this rank's
    share of the goals, every rank's results gathered in goal order."""
    group = resolve(process_group)
    if group is None:
        return solve()
    with guarded(group, like=torch.zeros(2, dtype=torch.int64), kind="all_gather"):
        goals = _goals(np.shape(target.detach() if isinstance(target, torch.Tensor)
                                else target))
        if isinstance(target, torch.Tensor) and target.requires_grad:
            raise UnsupportedOperationError(
                "ik(process_group=...) gathers the solutions without their derivatives; solve "
                "in one process to differentiate q in the targets")
        part = share_each(goals, group, "goal(s)",
                          "stack the goals into one (G, 4, 4) or (G, 3) batch with G ≥ the "
                          "number of ranks, or solve in one process (process_group=None)")
        token = SHARE.set(part)
        try:
            mine = solve()
        finally:
            SHARE.reset(token)
        return gather_batch(mine, group, dst=None)
