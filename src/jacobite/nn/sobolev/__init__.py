"""Training on values and Jacobians (Sobolev training, Jacobian-enhanced networks): the loss,
its targets, checks of training data, and :class:`JENNRegressor` (an MLP fitted to both).

>>> import torch
>>> from jacobite.nn.sobolev import sobolev_loss
>>> sobolev_loss(lambda b: 2 * b, torch.ones(3, 1), 2 * torch.ones(3, 1),
...              2 * torch.ones(3, 1, 1)).total.item()
0.0
"""

from ._check import DataCheck, check_sobolev_data
from .data import SobolevData, sobolev_data
from .loss import SobolevLoss, sobolev_loss
from .regressor import JENNRegressor

__all__ = ["DataCheck", "JENNRegressor", "SobolevData", "SobolevLoss", "check_sobolev_data",
           "sobolev_data", "sobolev_loss"]
