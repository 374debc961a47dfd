"""What jacobite's own packages build on beyond the public collectives: the failure exchange of a
guarded collective, the traffic counter's entry point and the check of a rank argument.

For code inside jacobite that issues a collective of its own (a reduce-scatter, a raw
``all_gather_object``) and must keep the contract of :mod:`jacobite.distributed`: a rank that
fails is named on the others instead of leaving them waiting, and ``traffic()`` counts every
payload. Users need none of it (the guarded collectives, ``guarded`` and ``traffic`` are the
public surface); the names here follow jacobite's packages rather than a compatibility promise.

- :func:`raise_failures` ``(group, message)``: exchange the ranks' failure messages (one
  ``all_gather_object``); a failed rank passes its one-line message and returns (then re-raises
  its own error), a healthy rank passes ``None`` and raises
  :class:`~jacobite.errors.RankFailedError` naming the failed ranks. Call it on every rank of
  the group once a flag in a collective's payload said some rank failed.
- :func:`failure_text` ``(error)``: the message a failed rank passes to
  :func:`raise_failures`: the error's class and the first line of its text.
- :func:`record` ``(nbytes)``: add one collective of ``nbytes`` payload bytes to every active
  :func:`~jacobite.distributed.traffic` counter; call it once per collective issued.
- :func:`check_rank` ``(r, group, name)``: ``r`` as an int rank of ``group`` (``0`` for one
  process), or a typed error naming the argument ``name`` and the valid range.
- :func:`share_each` ``(n, group, what, fix)``: this rank's :func:`~jacobite.distributed.shard`
  of ``n`` independent problems, refused (a typed error naming ``what`` and the ``fix``) when
  the group has more ranks than problems, so that every rank gets at least one.

>>> from jacobite.distributed import traffic
>>> from jacobite.distributed.internal import check_rank, record
>>> with traffic() as t:
...     record(12)
>>> t.bytes, t.calls, check_rank(0, None, "dst")
(12, 1, 0)
>>> share_each(3, None, "problems", "solve them in one process")
slice(0, 3, None)
"""

from __future__ import annotations

from ..errors import InvalidOptionError
from ._batch import shard
from ._group import Group
from ._guard import _raise_failures as raise_failures
from ._guard import check_rank, failure_text
from ._traffic import record

__all__ = ["check_rank", "failure_text", "raise_failures", "record", "share_each"]


def share_each(n: int, group: Group | None, what: str, fix: str) -> slice:
    """This rank's contiguous share of ``n`` problems (all of them for ``group=None``); a group
    with more ranks than problems is refused, the message naming ``what`` the problems are
    (``"problems"``, ``"goal(s)"``) and the ``fix``."""
    if group is not None and group.size > n:
        raise InvalidOptionError(
            f"{n} {what} cannot be shared by {group.size} ranks (each rank needs at least one); "
            f"{fix}")
    return shard(n, group)
