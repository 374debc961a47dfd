"""Curvature of a network over a dataset as lazy operators: the generalised Gauss–Newton
matrix, the Hessian of the loss and the Jacobian of the outputs, in the model's parameters.

The parameter vector stacks the parameters in ``model.named_parameters()`` order, each
flattened row-major; ``data`` is one batch ``(X, y)`` or an iterable of batches. For
cross-entropy the Gauss–Newton matrix is ``Σ_n J_nᵀ (diag(p_n) − p_n p_nᵀ) J_n`` — the softmax
Jacobian in the middle (see ``docs/conventions.md``, section Curvature).

>>> import torch
>>> from jacobite.curvature import ggn, jacobian
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
>>> X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
>>> G = ggn(model, torch.nn.CrossEntropyLoss(), (X, y))
>>> J = jacobian(model, X)
>>> G.shape, J.shape
((67, 67), (48, 67))
"""

from ._diag_estimate import DiagonalEstimate, diagonal_estimate
from ._diagonal import ggn_diagonal
from ._ggn import ggn
from ._hessian import hessian
from ._jacobian import jacobian
from .fisher import fisher
from .kfac import KFACOperator, kfac
from .laplace import Laplace, Predictive, laplace

__all__ = ["DiagonalEstimate", "KFACOperator", "Laplace", "Predictive", "diagonal_estimate",
           "fisher", "ggn", "ggn_diagonal", "hessian", "jacobian", "kfac", "laplace"]
