"""Shared battery of square nonlinear systems ``F(x) = 0`` with known roots.

Mostly the MINPACK-1 ``hybrj`` test set (Moré, Garbow & Hillstrom, "Testing unconstrained
optimization software", ACM TOMS 7, 1981, and "User guide for MINPACK-1", ANL-80-74, §4),
written in torch on a flat float64 vector, with their standard starting points, plus
Freudenstein–Roth (a local minimum of ``‖F‖`` traps from the standard start) and a small 2-D
Bratu problem. ``root`` is a known root where one is known in closed form (or to the digits
given in the literature, ``root_atol``), else ``None`` (then tests compare with SciPy and check
the residual). ``reachable`` says whether a globally convergent method is expected to find a
root from ``x0`` (False: the standard start leads to a local minimum of ``‖F‖``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

DT = torch.float64


@dataclass(frozen=True)
class RootProblem:
    name: str
    fun: Callable[[torch.Tensor], torch.Tensor]
    x0: list[float]
    root: list[float] | None = None
    root_atol: float = 1e-10
    reachable: bool = True
    singular_at_root: bool = False

    def start(self) -> torch.Tensor:
        return torch.tensor(self.x0, dtype=DT)


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([10 * (x[1] - x[0] ** 2), 1 - x[0]])


def powell_singular(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([x[0] + 10 * x[1], math.sqrt(5) * (x[2] - x[3]), (x[1] - 2 * x[2]) ** 2,
                        math.sqrt(10) * (x[0] - x[3]) ** 2])


def powell_badly_scaled(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([1e4 * x[0] * x[1] - 1, torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001])


def wood(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = x[0], x[1], x[2], x[3]
    return torch.stack([
        -200 * a * (b - a ** 2) - (1 - a),
        200 * (b - a ** 2) + 20.2 * (b - 1) + 19.8 * (d - 1),
        -180 * c * (d - c ** 2) - (1 - c),
        180 * (d - c ** 2) + 20.2 * (d - 1) + 19.8 * (b - 1),
    ])


def helical_valley(x: torch.Tensor) -> torch.Tensor:
    theta = torch.atan(x[1] / x[0]) / (2 * math.pi) + 0.5 * (x[0] < 0).to(x.dtype)
    return torch.stack([10 * (x[2] - 10 * theta), 10 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1),
                        x[2]])


def trigonometric(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=x.dtype)
    return n - torch.cos(x).sum() + i * (1 - torch.cos(x)) - torch.sin(x)


def _shift(x: torch.Tensor, k: int) -> torch.Tensor:
    """``y_i = x_{i+k}`` with zeros outside (``k`` = ±1)."""
    z = x.new_zeros(1)
    return torch.cat([x[1:], z]) if k == 1 else torch.cat([z, x[:-1]])


def broyden_tridiagonal(x: torch.Tensor) -> torch.Tensor:
    return (3 - 2 * x) * x - _shift(x, -1) - 2 * _shift(x, 1) + 1


def broyden_banded(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    i = torch.arange(n)
    band = ((i[None, :] >= i[:, None] - 5) & (i[None, :] <= i[:, None] + 1)
            & (i[None, :] != i[:, None])).to(x.dtype)
    return x * (2 + 5 * x ** 2) + 1 - band @ (x * (1 + x))


def discrete_boundary_value(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    h = 1.0 / (n + 1)
    t = torch.arange(1, n + 1, dtype=x.dtype) * h
    return 2 * x - _shift(x, -1) - _shift(x, 1) + h ** 2 * (x + t + 1) ** 3 / 2


def discrete_integral_equation(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    h = 1.0 / (n + 1)
    t = torch.arange(1, n + 1, dtype=x.dtype) * h
    w = (x + t + 1) ** 3
    lower = torch.tril(torch.ones(n, n, dtype=x.dtype))  # j <= i
    return x + h / 2 * ((1 - t) * (lower @ (t * w)) + t * ((1 - lower) @ ((1 - t) * w)))


def brown_almost_linear(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    return torch.cat([x[:-1] + x.sum() - (n + 1), (torch.prod(x) - 1).reshape(1)])


def freudenstein_roth(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([-13 + x[0] + ((5 - x[1]) * x[1] - 2) * x[1],
                        -29 + x[0] + ((x[1] + 1) * x[1] - 14) * x[1]])


def bratu(N: int = 6, lam: float = 6.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """2-D Bratu ``−Δu − λ eᵘ = 0`` on an ``N × N`` interior grid, zero boundary values,
    5-point Laplacian, scaled by ``h²``: ``F = 4u − Σ neighbours − h² λ eᵘ``."""
    h2 = 1.0 / (N + 1) ** 2

    def F(u: torch.Tensor) -> torch.Tensor:
        U = torch.nn.functional.pad(u.reshape(N, N), (1, 1, 1, 1))
        lap = 4 * U[1:-1, 1:-1] - U[:-2, 1:-1] - U[2:, 1:-1] - U[1:-1, :-2] - U[1:-1, 2:]
        return (lap - h2 * lam * torch.exp(U[1:-1, 1:-1])).reshape(-1)

    return F


# Powell's badly scaled root (Moré, Garbow & Hillstrom: 1.098...e-5, 9.106...), by mpmath's
# findroot at 40 digits for the double nearest 1.0001 that the torch function uses, rounded
_PBS_ROOT = [1.0981593296998053e-05, 9.106146739866624]

PROBLEMS: list[RootProblem] = [
    RootProblem("rosenbrock", rosenbrock, [-1.2, 1.0], [1.0, 1.0]),
    RootProblem("powell_singular", powell_singular, [3.0, -1.0, 0.0, 1.0], [0.0] * 4,
                root_atol=1e-6, singular_at_root=True),
    RootProblem("powell_badly_scaled", powell_badly_scaled, [0.0, 1.0], _PBS_ROOT,
                root_atol=1e-12),
    # roots: (1, 1, 1, 1) and a saddle of Wood's function near (−0.97, 0.95, −0.97, 0.95)
    RootProblem("wood", wood, [-3.0, -1.0, -3.0, -1.0]),
    RootProblem("helical_valley", helical_valley, [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
    RootProblem("trigonometric", trigonometric, [0.1] * 10),
    RootProblem("broyden_tridiagonal", broyden_tridiagonal, [-1.0] * 10),
    RootProblem("broyden_banded", broyden_banded, [-1.0] * 10),
    RootProblem("discrete_boundary_value", discrete_boundary_value,
                [t * (t - 1) for t in (i / 11 for i in range(1, 11))]),
    RootProblem("discrete_integral_equation", discrete_integral_equation,
                [t * (t - 1) for t in (i / 11 for i in range(1, 11))]),
    RootProblem("brown_almost_linear", brown_almost_linear, [0.5] * 10),
    RootProblem("freudenstein_roth", freudenstein_roth, [0.5, -2.0], [5.0, 4.0],
                reachable=False),
    RootProblem("freudenstein_roth_near", freudenstein_roth, [6.0, 3.0], [5.0, 4.0]),
    RootProblem("bratu_6x6", bratu(6, 6.0), [0.0] * 36),
]

BY_NAME = {p.name: p for p in PROBLEMS}
