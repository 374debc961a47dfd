"""Multi-objective optimisation by Jacobian descent.

:mod:`jacobite.multiobjective.aggregators` holds the aggregators (UPGrad, DualProj, MGDA, ...),
each mapping the m × n Jacobian of m losses to one update that conflicts with none of them
where the method promises so; :func:`backward`, :func:`mtl_backward` and
:func:`per_example_backward` put an aggregated update into ``.grad``; :func:`gramian` computes
``G = JJᵀ`` without storing ``J``.

>>> import torch
>>> from jacobite.multiobjective import UPGrad
>>> J = torch.tensor([[1.0, 0.0], [-0.5, 1.0]], dtype=torch.float64)
>>> bool((J @ UPGrad()(J) >= 0).all())
True
"""

from . import aggregators
from .aggregators import *  # noqa: F403
from .aggregators import __all__ as _aggregators_all
from .backward import backward, mtl_backward, per_example_backward
from .gramian import gramian

__all__ = [
    "aggregators",
    "backward",
    "gramian",
    "mtl_backward",
    "per_example_backward",
    *_aggregators_all,
]
