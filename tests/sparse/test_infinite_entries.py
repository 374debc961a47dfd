"""A computed sparse Jacobian may hold an infinite derivative: it is returned, as the dense path
returns it, never refused as a bad operator."""

from __future__ import annotations

import math

import torch

import jacobite


def test_an_infinite_derivative_is_the_answer() -> None:
    x = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    J = jacobite.jacobian(torch.sqrt, x, sparse=True).to_dense()
    assert math.isinf(J[0, 0].item())
    torch.testing.assert_close(J[1:, 1:], torch.diag(0.5 / x[1:].sqrt()))
    # structural zeros stay zeros (a dense VJP gives 0 · inf = NaN there)
    assert J[1:, 0].eq(0).all() and J[0, 1:].eq(0).all()
