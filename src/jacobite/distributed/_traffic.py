"""Counting the bytes jacobite sends through ``torch.distributed``.

Every collective jacobite issues adds the payload this rank contributes (the tensor it reduces,
broadcasts, scatters or gathers, or the pickled object) to each active :func:`traffic` counter,
so a benchmark *measures* what an operation communicates instead of estimating it. The count is
the payload, not the wire: a ring all-reduce of ``b`` bytes moves about ``2 (N − 1) / N · b``
bytes per rank, whatever the payload.

>>> from jacobite.distributed import traffic
>>> with traffic() as t:
...     pass
>>> t.bytes, t.calls
(0, 0)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Traffic", "traffic"]

_active = threading.local()


@dataclass
class Traffic:
    """What the collectives issued inside one :func:`traffic` block carried from this rank.

    Attributes:
        bytes: payload bytes this rank contributed, summed over the collectives.
        calls: the number of collectives.
    """

    bytes: int = 0
    calls: int = 0


def _counters() -> list[Traffic]:
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def counting() -> bool:
    """Whether a :func:`traffic` block is active on this thread: a payload whose size costs
    work to find (a pickled object) needs measuring only then.

    >>> counting()
    False
    """
    return bool(_counters())


def record(nbytes: int) -> None:
    """Add one collective of ``nbytes`` payload bytes to every active counter."""
    for counter in _counters():
        counter.bytes += int(nbytes)
        counter.calls += 1


@contextlib.contextmanager
def traffic() -> Iterator[Traffic]:
    """Count the collectives jacobite issues on this thread inside the ``with`` block.

    Blocks nest: an inner block's collectives count in the outer ones too.

    >>> with traffic() as t:
    ...     record(400)
    >>> (t.bytes, t.calls)
    (400, 1)
    """
    counter = Traffic()
    stack = _counters()
    stack.append(counter)
    try:
        yield counter
    finally:
        stack.remove(counter)
