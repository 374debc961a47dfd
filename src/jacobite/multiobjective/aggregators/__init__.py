"""Aggregators for Jacobian descent: each maps a Jacobian ``J`` (m × n, one row per objective)
to an update of length n. Class names and default parameters follow TorchJD 0.18.0.

Gramian-weighted ones (:class:`GramianWeightedAggregator`) also give ``weights(G)`` from the
Gramian ``G = JJᵀ`` alone, so the update ``Jᵀw`` can be formed without storing ``J``.

>>> import torch
>>> from jacobite.multiobjective.aggregators import UPGrad
>>> J = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> UPGrad()(J)
tensor([0.5000, 0.5000])
"""

from ._base import Aggregator, GramianWeightedAggregator
from .mean import Mean
from .upgrad import UPGrad

__all__ = [
    "Aggregator",
    "GramianWeightedAggregator",
    "Mean",
    "UPGrad",
]
