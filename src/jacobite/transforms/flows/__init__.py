"""Normalizing flows: densities under a change of variables, and checks of their log-dets.

>>> import torch
>>> from jacobite.transforms.flows import check_logdet
>>> check_logdet(torch.distributions.SigmoidTransform(), torch.zeros(3, 2)).ok
True
"""

from .check import LogDetCheck, check_logdet

__all__ = ["LogDetCheck", "check_logdet"]
