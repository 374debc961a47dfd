"""Structured Jacobians of neural-network layers, and backpropagation written out.

* softmax: :func:`softmax_jacobian` (``diag(σ) − σσᵀ``, lazy, O(K)), :func:`softmax_vjp`,
  :func:`softmax_jvp`, :class:`BatchedSoftmaxJacobian` for batches;
* losses: :func:`cross_entropy_gradient` (``σ − y``), :func:`mse_gradient`;
* the worked example of reference 000: :func:`softmax_example`;
* activations: :func:`activation_jacobian` (``diag(σ'(z))``), :func:`activation_derivative`;
* layers: :func:`linear_layer_jacobian` (``diag(σ'(z)) W``), :func:`layer_jacobian` (Linear,
  activations, Softmax, Sequential by the chain rule, anything else via ``jacobite.linearize``),
  :class:`RepeatedBlockDiagonal` (``I_B ⊗ W``);
* :func:`backprop`: gradients w.r.t. input and weights by chaining the layers' VJPs, step by step;
* training on values and Jacobians: :func:`sobolev_loss` (Jacobian-enhanced / Sobolev training),
  its targets :func:`sobolev_data` (AD, or finite differences for black boxes) and
  :func:`check_sobolev_data` (supplied data against ``f``, each bad sample diagnosed), and
  :class:`JENNRegressor` (a scikit-learn style regressor fitted to values and partials).

Part of the compute layer: built on :mod:`jacobite.operators` and :mod:`jacobite.dense`.

>>> import torch, jacobite.nn as jnn
>>> J = jnn.softmax_jacobian(torch.randn(131072, dtype=torch.float64))
>>> J.shape, sorted(J.tags)
((131072, 131072), ['low_rank', 'psd', 'symmetric'])
"""

from .activations import ACTIVATIONS, activation_derivative, activation_jacobian, activation_spec
from .backprop import BackpropResult, BackpropStep, backprop
from .batched import RepeatedBlockDiagonal
from .example import SoftmaxExample, softmax_example
from .layers import layer_jacobian, linear_layer_jacobian
from .losses import cross_entropy_gradient, cross_entropy_loss, mse_gradient, one_hot_target
from .regularization import jacobian_penalty
from .sobolev import (
    DataCheck,
    JENNRegressor,
    SobolevData,
    SobolevLoss,
    check_sobolev_data,
    sobolev_data,
    sobolev_loss,
)
from .softmax import (
    BatchedSoftmaxJacobian,
    SoftmaxJacobian,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)

__all__ = [
    "ACTIVATIONS",
    "BackpropResult",
    "BackpropStep",
    "BatchedSoftmaxJacobian",
    "DataCheck",
    "JENNRegressor",
    "RepeatedBlockDiagonal",
    "SobolevData",
    "SobolevLoss",
    "SoftmaxExample",
    "SoftmaxJacobian",
    "activation_derivative",
    "activation_jacobian",
    "activation_spec",
    "backprop",
    "check_sobolev_data",
    "cross_entropy_gradient",
    "cross_entropy_loss",
    "jacobian_penalty",
    "layer_jacobian",
    "linear_layer_jacobian",
    "mse_gradient",
    "one_hot_target",
    "sobolev_data",
    "sobolev_loss",
    "softmax_example",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]
