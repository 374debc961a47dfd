"""Diagonal activation Jacobians against torch.func.jacrev's dense Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.func as tf
import torch.nn.functional as F
from torch import nn

from jacobite.errors import DtypeError, InvalidOptionError
from jacobite.nn import ACTIVATIONS, activation_derivative, activation_jacobian
from jacobite.operators import DiagonalOperator

DT = torch.float64

FUNCTIONS = {
    "identity": lambda x: x,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "softplus": F.softplus,
    "elu": F.elu,
    "celu": F.celu,
    "selu": F.selu,
    "mish": F.mish,
    "softsign": F.softsign,
    "logsigmoid": F.logsigmoid,
    "hardtanh": F.hardtanh,
    "hardsigmoid": F.hardsigmoid,
    "hardswish": F.hardswish,
}
# torch's hardsigmoid backward multiplies by the float32 constant 1/6 even in float64.
ATOL = {"hardsigmoid": 1e-8}

# Random points plus every kink (0, +-1, +-3, 6) and large magnitudes, where conventions matter.
Z = torch.cat([torch.randn(40, dtype=DT, generator=torch.Generator().manual_seed(0)) * 4,
               torch.tensor([0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 25.0, -25.0, 1e4, -1e4], dtype=DT)])


def _dense(f, z: torch.Tensor) -> torch.Tensor:
    return tf.jacrev(f)(z).reshape(z.numel(), z.numel())


def test_every_activation_is_tested() -> None:
    assert set(FUNCTIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_matches_jacrev(name: str) -> None:
    J = activation_jacobian(name, Z)
    assert isinstance(J, DiagonalOperator) and J.is_diagonal()
    ref = _dense(FUNCTIONS[name], Z)
    assert torch.count_nonzero(ref - torch.diag(ref.diagonal())) == 0  # truly elementwise
    torch.testing.assert_close(J.to_dense(), ref, rtol=0, atol=ATOL.get(name, 1e-15))
    assert torch.isfinite(J.diagonal()).all()


@pytest.mark.parametrize("module", [
    nn.GELU(approximate="tanh"), nn.GELU(), nn.LeakyReLU(0.2), nn.Softplus(beta=2.0, threshold=5.0),
    nn.ELU(alpha=0.5), nn.CELU(alpha=2.0), nn.Hardtanh(-2.0, 3.0), nn.ReLU6(), nn.SiLU(),
    nn.Sigmoid(), nn.Tanh(), nn.ReLU(), nn.Mish(), nn.Identity(),
], ids=repr)
def test_modules_and_their_parameters(module: nn.Module) -> None:
    torch.testing.assert_close(activation_jacobian(module, Z).to_dense(), _dense(module, Z),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize(("fn", "name"), [(torch.tanh, "tanh"), (torch.sigmoid, "sigmoid"),
                                          (F.relu, "relu"), (F.silu, "silu"), (F.gelu, "gelu")])
def test_functions_are_recognised(fn, name: str) -> None:
    torch.testing.assert_close(activation_derivative(fn, Z), activation_derivative(name, Z))


def test_keyword_parameters_and_shapes() -> None:
    z = torch.randn(3, 4, dtype=DT, generator=torch.Generator().manual_seed(1))
    J = activation_jacobian("leaky_relu", z, negative_slope=0.3)
    assert J.shape == (12, 12)
    torch.testing.assert_close(J.to_dense(), _dense(lambda v: F.leaky_relu(v, 0.3), z))
    J32 = activation_jacobian("swish", z.float())
    assert J32.dtype == torch.float32
    torch.testing.assert_close(J32.to_dense(), _dense(F.silu, z.float()))


def test_sigmoid_derivative_is_sigma_one_minus_sigma() -> None:
    s = torch.sigmoid(Z)
    torch.testing.assert_close(activation_derivative("sigmoid", Z), s * (1 - s), rtol=0, atol=0)
    assert activation_jacobian("sigmoid", Z).is_psd()


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(InvalidOptionError, match="tanh"):
        activation_jacobian("tanhh", Z)
    with pytest.raises(InvalidOptionError, match="layer_jacobian"):
        activation_jacobian(nn.Linear(2, 2), Z)
    with pytest.raises(InvalidOptionError, match="negative_slope"):
        activation_jacobian("relu", Z, negative_slope=0.1)
    with pytest.raises(InvalidOptionError):
        activation_jacobian(lambda v: v**3, Z)
    with pytest.raises(DtypeError, match="float64"):
        activation_jacobian("tanh", torch.tensor([1, 2]))


def test_subclasses_are_not_trusted() -> None:
    class Shifted(nn.Tanh):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(2 * x)

    with pytest.raises(InvalidOptionError):
        activation_jacobian(Shifted(), Z)


@pytest.mark.parametrize(("value", "error"), [("big", "ArgumentTypeError"),
                                              (float("nan"), "InvalidOptionError"),
                                              (True, "ArgumentTypeError")])
def test_activation_parameters_must_be_finite_numbers(value, error) -> None:
    from jacobite import errors
    from jacobite.nn import activation_spec

    with pytest.raises(getattr(errors, error), match="negative_slope must be"):
        activation_spec("leaky_relu", negative_slope=value)
