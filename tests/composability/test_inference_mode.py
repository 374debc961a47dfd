"""Public entry points inside ``torch.inference_mode()``: Jacobians and Hessians equal
torch.func's (computed outside it), for functions and modules, and come back as plain tensors;
a function closing over an inference tensor that autograd would save is refused naming the fix."""

from __future__ import annotations

from typing import Literal

import pytest
import torch

import jacobite
from jacobite.errors import UnsupportedOperationError

F64 = torch.float64


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_jacobian_in_inference_mode_equals_torch_func(
    mode: Literal["auto", "forward", "reverse"],
) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    net = net.double()
    x = torch.randn(4, dtype=F64)
    want = torch.func.jacrev(net)(x)
    with torch.inference_mode():
        xi = x.clone()  # an inference tensor
        got = jacobite.jacobian(net, xi, mode=mode)
    assert not got.is_inference()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_hessian_in_inference_mode_equals_torch_func() -> None:
    x = torch.tensor([0.3, -1.2, 2.0], dtype=F64)

    def f(v: torch.Tensor) -> torch.Tensor:
        return (v.sin() * v.roll(1)).sum()

    want = torch.func.hessian(f)(x)
    with torch.inference_mode():
        got = jacobite.hessian(f, x.clone())
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_closing_over_a_saved_inference_tensor_is_refused() -> None:
    with torch.inference_mode():
        w = torch.tensor([2.0, 3.0], dtype=F64)
        with pytest.raises(UnsupportedOperationError, match="inference_mode"):
            jacobite.jacobian(lambda v: (w * v).sin(), torch.ones(2, dtype=F64), mode="reverse")
