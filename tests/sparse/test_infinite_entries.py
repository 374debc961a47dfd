"""A computed sparse Jacobian may hold an infinite derivative: it is returned, as the dense path
returns it, never refused as a bad operator."""

from __future__ import annotations

import math

import torch

import jacobite


def test_an_infinite_derivative_is_the_answer() -> None:
    x = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    J = jacobite.jacobian(torch.sqrt, x, sparse=True).to_dense()
    dense = jacobite.jacobian(torch.sqrt, x)
    assert math.isinf(J[0, 0].item())
    torch.testing.assert_close(J, dense)
