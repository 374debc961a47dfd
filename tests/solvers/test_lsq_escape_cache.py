"""least_squares watches the first AD Jacobian of a fun for values of x leaving torch once per
fun (and its args' signature), not at every solve; the verdict holds for later solves."""

from __future__ import annotations

import math

import pytest
import torch

import jacobite
from jacobite.solvers.lsq import _curve_model

T = torch.linspace(0.0, 4.0, 50, dtype=torch.float64)
Y = 2.5 * torch.exp(-1.3 * T) + 0.5  # noise free: the fit is exact, (a, k, c) = (2.5, 1.3, 0.5)
X0 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)


@pytest.fixture
def watches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many escape watches were started."""
    started: list[int] = []
    init = _curve_model._Escapes.__init__

    def counting(self: _curve_model._Escapes) -> None:
        started.append(1)
        init(self)

    monkeypatch.setattr(_curve_model._Escapes, "__init__", counting)
    jacobite.clear_cache()
    return started


def _exp_fit(p: torch.Tensor) -> torch.Tensor:
    return p[0] * torch.exp(-p[1] * T) + p[2] - Y


def test_a_torch_fun_is_watched_once_across_solves(watches: list[int]) -> None:
    first = jacobite.least_squares(_exp_fit, X0)
    second = jacobite.least_squares(_exp_fit, X0 + 0.25)
    assert len(watches) == 1
    for res in (first, second):
        assert res.success and res.jac_mode != "3-point"
        torch.testing.assert_close(res.x, torch.tensor([2.5, 1.3, 0.5], dtype=torch.float64),
                                   rtol=1e-10, atol=1e-10)


def test_new_args_signature_or_clear_cache_watch_again(watches: list[int]) -> None:
    def fit(p: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return p[0] * torch.exp(-p[1] * t) + p[2] - y

    jacobite.least_squares(fit, X0, args=(T, Y))
    jacobite.least_squares(fit, X0, args=(T, Y))
    assert len(watches) == 1
    jacobite.least_squares(fit, X0, args=(T[:20], Y[:20]))  # another shape: another key
    assert len(watches) == 2
    jacobite.clear_cache()
    jacobite.least_squares(fit, X0, args=(T, Y))
    assert len(watches) == 3


def test_a_fun_reading_x_into_python_stays_differenced(watches: list[int]) -> None:
    def fun(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.tensor(math.exp(float(p[0])), dtype=torch.float64) - 2.0,
                            p[1] - 1.0])

    x0 = torch.zeros(2, dtype=torch.float64)
    for _ in range(2):  # the second solve reads the verdict: differences from the start
        res = jacobite.least_squares(fun, x0)
        assert res.success and res.jac_mode == "3-point"
        assert res.x[0].item() == pytest.approx(math.log(2.0), abs=1e-8)
        assert res.x[1].item() == pytest.approx(1.0, abs=1e-12)
    assert len(watches) == 1
    for _ in range(2):
        with pytest.raises(jacobite.errors.UnsupportedOperationError, match="reads a value of x"):
            jacobite.least_squares(fun, x0, jac="dense")
