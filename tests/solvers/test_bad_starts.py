"""A start point of the wrong length, shape or type is a typed error that names the fix."""

from __future__ import annotations

import pytest
import torch

import jacobite
from jacobite.errors import ArgumentTypeError, ShapeError
from jacobite.solvers import newton_minimize

DT = torch.float64


def res(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[0] - 1, p[1] - 2, p[0] * p[1]])


def sq(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([p[0] ** 2 - 1, p[1] - 2])


@pytest.mark.parametrize("x0", [torch.ones(1, dtype=DT), torch.ones((), dtype=DT), [[1.0, 2.0]]])
@pytest.mark.parametrize("solve", [
    lambda x0: jacobite.least_squares(res, x0),
    lambda x0: jacobite.root(sq, x0),
    lambda x0: newton_minimize(lambda p: (p[0] - 1) ** 2 + p[1] ** 2, x0),
    lambda x0: jacobite.solve_implicit(lambda x, t: torch.stack([x[0] - t[0], x[1] - t[1]]),
                                       x0, torch.ones(2, dtype=DT)),
])
def test_a_start_of_the_wrong_length_names_the_shape(solve, x0) -> None:
    with pytest.raises(ShapeError, match=r"x0 of shape .*check that x0 has the length") as info:
        solve(x0)
    assert isinstance(info.value.__cause__, IndexError)


def test_implicit_jacobian_with_a_mismatched_x_star() -> None:
    F = lambda x, t: x - 0.5 * torch.tanh(x) - t  # noqa: E731
    with pytest.raises(ShapeError, match="length"):
        jacobite.implicit_jacobian(F, torch.zeros(3, dtype=DT), torch.zeros(2, dtype=DT))
    with pytest.raises(ArgumentTypeError, match="x_star must be a tensor"):
        jacobite.implicit_jacobian(F, [0.0, 0.0], torch.zeros(2, dtype=DT))


@pytest.mark.parametrize("solve", [
    lambda f: jacobite.least_squares(f, [1.0]),
    lambda f: jacobite.root(f, [1.0]),
    lambda f: jacobite.curve_fit(f, [0.0, 1.0], [1.0, 2.0], p0=[1.0]),
    lambda f: newton_minimize(f, [1.0]),
    lambda f: jacobite.implicit_jacobian(f, torch.zeros(1, dtype=DT), torch.zeros(1, dtype=DT)),
])
def test_a_non_callable_function(solve) -> None:
    with pytest.raises(ArgumentTypeError, match="must be a callable"):
        solve("x**2")


def test_curve_fit_with_mismatched_data_and_start() -> None:
    model = lambda t, a, b: a * torch.exp(b * t)  # noqa: E731
    t = torch.linspace(0, 1, 5, dtype=DT)
    with pytest.raises(ShapeError, match="one entry per model output"):
        jacobite.curve_fit(model, t, torch.ones(4, dtype=DT), p0=[1.0, 0.0])
    with pytest.raises(ShapeError, match="one entry per model parameter"):
        jacobite.curve_fit(model, t, torch.ones(5, dtype=DT), p0=[1.0, 0.0, 2.0])
    with pytest.raises(ShapeError, match="pair"):
        jacobite.curve_fit(model, t, torch.ones(5, dtype=DT), p0=[1.0, 0.0], bounds="wide")


def test_implicit_jacobian_of_an_empty_solution() -> None:
    with pytest.raises(ShapeError, match="x_star is empty"):
        jacobite.implicit_jacobian(lambda x, t: x - t, torch.zeros(0, dtype=DT),
                                   torch.zeros(0, dtype=DT))
