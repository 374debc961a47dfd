"""Normalizing-flow pieces: flow layers, densities under a change of variables, log-det checks.

>>> import torch
>>> from jacobite.transforms.flows import Planar
>>> Planar(2).event_dim
1
"""

from .check import LogDetCheck, check_logdet
from .density import TransformedDensity
from .layers import Planar, Radial, Sylvester

__all__ = ["LogDetCheck", "Planar", "Radial", "Sylvester", "TransformedDensity", "check_logdet"]
