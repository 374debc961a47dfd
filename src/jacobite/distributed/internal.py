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
- :func:`record` ``(nbytes)``: add one collective of ``nbytes`` payload bytes to every active
  :func:`~jacobite.distributed.traffic` counter; call it once per collective issued.
- :func:`check_rank` ``(r, group, name)``: ``r`` as an int rank of ``group`` (``0`` for one
  process), or a typed error naming the argument ``name`` and the valid range.

>>> from jacobite.distributed import traffic
>>> from jacobite.distributed.internal import check_rank, record
>>> with traffic() as t:
...     record(12)
>>> t.bytes, t.calls, check_rank(0, None, "dst")
(12, 1, 0)
"""

from __future__ import annotations

from ._guard import _raise_failures as raise_failures
from ._guard import check_rank
from ._traffic import record

__all__ = ["check_rank", "raise_failures", "record"]
