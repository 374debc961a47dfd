"""Repeated Jacobians of one function take the express lane; it must give the same answers and
refuse the same bad inputs as the first (general) call."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacfwd, jacrev

import jacobite
from jacobite.errors import NonFiniteInputError, UnsupportedOperationError

DT = torch.float64


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("flat", [False, True])
def test_repeated_calls_match_oracle(mode: str, flat: bool) -> None:
    W = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=DT)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(W @ x).reshape(2, 2)

    for seed in range(4):  # first call plans, later calls reuse the plan
        x = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=DT)
        J = jacobite.jacobian(f, x, mode=mode, flat=flat)
        ref = jacrev(f)(x)
        torch.testing.assert_close(J, ref.reshape(4, 3) if flat else ref, rtol=0, atol=1e-14)
        torch.testing.assert_close(jacfwd(f)(x), ref, rtol=0, atol=1e-14)


def test_bad_input_after_a_good_call_still_raises() -> None:
    f = torch.sin
    x = torch.tensor([0.1, 0.2], dtype=DT)
    jacobite.jacobian(f, x)
    with pytest.raises(NonFiniteInputError):
        jacobite.jacobian(f, torch.tensor([0.1, float("nan")], dtype=DT))
    with pytest.raises(jacobite.errors.DtypeError):
        jacobite.jacobian(f, torch.tensor([1, 2]))


def test_mutation_caught_on_later_calls_in_forward_mode() -> None:
    calls = {"n": 0}

    def f(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 2:  # behaves on the first calls, then starts mutating its input
            x.mul_(2)
        return x * x

    x = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    jacobite.jacobian(f, x, mode="forward")
    with pytest.raises(UnsupportedOperationError, match="in place"):
        for _ in range(3):
            jacobite.jacobian(f, x, mode="forward")
    assert x.tolist() == [0.5, -1.0, 2.0]
