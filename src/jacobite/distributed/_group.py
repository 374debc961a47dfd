"""The ``process_group=`` argument: ``None`` (one process) or a ``torch.distributed`` group.

:func:`resolve` turns what a user passes into a :class:`Group` — the process group with this
process's rank in it, the group's size and the device its collectives run on — or ``None`` for
the single-process path, so a function written against it has one ``if group is None`` branch.

>>> from jacobite.distributed import resolve
>>> resolve(None) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ArgumentTypeError, DistributedError

__all__ = ["Group", "ProcessGroupLike", "resolve"]

_FIX = ("call torch.distributed.init_process_group(...) in every process first (or start the "
        "script with torchrun, e.g. `torchrun --standalone --nproc-per-node=2 script.py`, and "
        "call init_process_group() there), or pass process_group=None to run in one process")

_NOT_MEMBER = ("this process is not a member of the process group it was given; call the "
               "function only on the group's members, or pass a group this rank belongs to "
               "(torch.distributed.new_group(ranks=...) on every process)")


@dataclass(frozen=True)
class Group:
    """A process group as jacobite uses it.

    Attributes:
        pg: the ``torch.distributed.ProcessGroup``.
        rank: this process's rank *within* ``pg`` (``0 ≤ rank < size``).
        size: the number of processes in ``pg``.
        device: where the group's collectives run: the CPU for ``gloo``, the current CUDA
            device for ``nccl``.
    """

    pg: Any
    rank: int
    size: int
    device: torch.device


#: What a ``process_group=`` argument accepts.
ProcessGroupLike = Any


def _device(pg: Any) -> torch.device:
    backend = str(dist.get_backend(pg)).lower()
    if "nccl" in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve(process_group: ProcessGroupLike) -> Group | None:
    """The :class:`Group` a ``process_group=`` argument names, or ``None`` for one process.

    ``None`` runs in this process alone. A ``torch.distributed.ProcessGroup`` (or the string
    ``"world"`` for the default group, ``torch.distributed.group.WORLD``) needs an initialised
    ``torch.distributed`` and this process among the group's members. A :class:`Group` passes
    through unchanged.

    >>> resolve(None) is None
    True

    In each process of a job started by ``torchrun`` (not run as a doctest):

    ```python
    torch.distributed.init_process_group("gloo")
    group = resolve("world")      # Group(pg=..., rank=0, size=2, device=device(type='cpu'))
    ```
    """
    if process_group is None:
        return None
    if isinstance(process_group, Group):
        return process_group
    is_world = isinstance(process_group, str) and process_group == "world"
    if dist.is_available() and process_group is dist.GroupMember.NON_GROUP_MEMBER:
        raise DistributedError(_NOT_MEMBER)
    if not is_world and not (dist.is_available()
                             and isinstance(process_group, dist.ProcessGroup)):
        raise ArgumentTypeError(
            f"process_group must be None, 'world' or a torch.distributed.ProcessGroup, got "
            f"{type(process_group).__name__} {process_group!r:.40}; pass e.g. "
            "process_group=torch.distributed.group.WORLD (or 'world'), or None for one process")
    if not (dist.is_available() and dist.is_initialized()):
        raise DistributedError(f"process_group={process_group!r:.40} was given but "
                               f"torch.distributed is not initialised; {_FIX}")
    pg = dist.group.WORLD if is_world else process_group
    rank = dist.get_rank(pg)
    if rank < 0:
        raise DistributedError(_NOT_MEMBER)
    return Group(pg, rank, dist.get_world_size(pg), _device(pg))
