"""Per-call overhead of least_squares outside its loop: work that repeated solves share."""

from __future__ import annotations

import torch

import jacobite

DT = torch.float64


def test_a_second_solve_of_the_same_fun_evaluates_it_only_for_the_solve() -> None:
    t = torch.linspace(0, 4, 50, dtype=DT)
    y = 2.5 * torch.exp(-1.3 * t) + 0.5
    calls = [0]

    def fun(p: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return p[0] * torch.exp(-p[1] * t) + p[2] - y

    x0 = torch.tensor([1.0, 1.0, 0.0], dtype=DT)
    first = jacobite.least_squares(fun, x0)
    calls[0] = 0
    second = jacobite.least_squares(fun, x0)
    # one evaluation per residual and per Jacobian: the dense probe of fun is not run again
    assert calls[0] == second.nfev + second.njev
    assert torch.equal(first.x, second.x)
    torch.testing.assert_close(second.x, torch.tensor([2.5, 1.3, 0.5], dtype=DT), rtol=1e-12,
                               atol=1e-12)
