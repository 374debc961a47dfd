"""Aggregators for Jacobian descent: each maps a Jacobian ``J`` (m × n, one row per objective)
to an update of length n. Class names and default parameters follow TorchJD 0.18.0.

Gramian-weighted ones (:class:`GramianWeightedAggregator`: UPGrad, DualProj, MGDA, PCGrad,
CAGrad, IMTLG, AlignedMTL, NashMTL, Krum, Mean, Sum, Random, Constant) also give
``weights(G)`` from the Gramian ``G = JJᵀ`` alone, so the update ``Jᵀw`` can be formed without
storing ``J``. ConFIG, GradDrop and TrimmedMean need ``J`` itself.

>>> import torch
>>> from jacobite.multiobjective.aggregators import UPGrad
>>> J = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> UPGrad()(J)
tensor([0.5000, 0.5000])
"""

from ._base import Aggregator, GramianWeightedAggregator
from .aligned_mtl import AlignedMTL
from .cagrad import CAGrad
from .config import ConFIG
from .constant import Constant
from .dualproj import DualProj
from .graddrop import GradDrop
from .imtlg import IMTLG
from .krum import Krum
from .mean import Mean
from .mgda import MGDA
from .nash_mtl import NashMTL
from .pcgrad import PCGrad
from .random import Random
from .sum import Sum
from .trimmed_mean import TrimmedMean
from .upgrad import UPGrad

__all__ = [
    "IMTLG",
    "MGDA",
    "Aggregator",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "Constant",
    "DualProj",
    "GradDrop",
    "GramianWeightedAggregator",
    "Krum",
    "Mean",
    "NashMTL",
    "PCGrad",
    "Random",
    "Sum",
    "TrimmedMean",
    "UPGrad",
]
