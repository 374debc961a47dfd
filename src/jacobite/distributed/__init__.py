"""jacobite on ``torch.distributed``: the process groups, collectives and batch splitting that
the ``process_group=`` arguments of the curvature operators, dense Jacobians, Jacobian descent
and batched solvers build on. jacobite never starts processes itself: launch with ``torchrun``
(or any launcher) and call ``torch.distributed.init_process_group`` as usual.

- :func:`resolve` turns a ``process_group=`` argument into a :class:`Group` (``None``: one
  process).
- :func:`guarded_all_reduce`, :func:`guarded_broadcast`, :func:`guarded_all_gather` and the
  :class:`guarded` block: a rank that raises still joins the collective, and the others raise
  :class:`~jacobite.errors.RankFailedError` naming it instead of hanging.
- :func:`shard` / :func:`shard_batch`: this rank's contiguous share of a dataset or batch.
- :func:`scatter_batch` / :func:`gather_batch`: many independent problems handed out from one
  rank and their results collected (uneven shares, lists of objects too).
- :func:`traffic`: the bytes and calls of the collectives jacobite issues.
- :mod:`jacobite.distributed.internal`: what jacobite's own packages use to issue a
  collective of their own under the same contract (not needed in user code).

Every function takes ``None`` for the single-process path:

>>> import torch
>>> from jacobite import distributed as D
>>> D.resolve(None) is None, D.shard(10, None)
(True, slice(0, 10, None))
>>> with D.traffic() as t:
...     D.guarded_all_reduce(torch.ones(2), None)
tensor([1., 1.])
>>> t.bytes
0
"""

from ._batch import shard, shard_batch
from ._group import Group, resolve
from ._group import ProcessGroupLike as ProcessGroupLike  # the type of process_group=
from ._guard import guarded, guarded_all_gather, guarded_all_reduce, guarded_broadcast
from ._scatter import gather_batch, scatter_batch
from ._traffic import Traffic, traffic

__all__ = [
    "Group",
    "Traffic",
    "gather_batch",
    "guarded",
    "guarded_all_gather",
    "guarded_all_reduce",
    "guarded_broadcast",
    "resolve",
    "scatter_batch",
    "shard",
    "shard_batch",
    "traffic",
]
