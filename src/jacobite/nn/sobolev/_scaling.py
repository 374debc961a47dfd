"""Standardisation of training data for :class:`~jacobite.nn.JENNRegressor`.

Each input column is mapped to ``(x − μ_x) / σ_x`` and each output column to
``(y − μ_y) / σ_y``; by the chain rule a partial ``∂y_i/∂x_j`` becomes
``∂y_i/∂x_j · σ_x[j] / σ_y[i]`` in those units. Predictions go back the other way:
``y = μ_y + σ_y · ŷ`` and ``∂y_i/∂x_j = σ_y[i] / σ_x[j] · Ĵ_ij``.

>>> import torch
>>> x = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
>>> y = torch.tensor([[1.0], [5.0]], dtype=torch.float64)
>>> s = Scaling.fit(x, y)
>>> s.x_in(x).flatten().tolist(), s.dydx_in(torch.full((2, 1, 1), 2.0)).flatten().tolist()
([-1.0, 1.0], [1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ScaledModule", "Scaling"]


def _spread(t: torch.Tensor) -> torch.Tensor:
    """Column standard deviations (population), 1 where a column is constant."""
    s = t.std(0, correction=0) if t.shape[0] > 1 else torch.zeros_like(t[0])
    tiny = torch.finfo(t.dtype).eps * t.abs().amax(0).clamp_min(1.0)
    return torch.where(s > tiny, s, torch.ones_like(s))


@dataclass(frozen=True)
class Scaling:
    """Column means and spreads of ``x`` ``(n,)`` and ``y`` ``(m,)``; the identity when
    built by :meth:`identity`."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor) -> Scaling:
        """Means and population standard deviations of ``x`` ``(N, n)`` and ``y`` ``(N, m)``
        (a constant column keeps its scale: its spread is taken as 1)."""
        return cls(x.mean(0), _spread(x), y.mean(0), _spread(y))

    @classmethod
    def identity(cls, n: int, m: int, dtype: torch.dtype, device: torch.device) -> Scaling:
        """No scaling: zero means, unit spreads."""
        def z(k: int) -> torch.Tensor:
            return torch.zeros(k, dtype=dtype, device=device)

        def o(k: int) -> torch.Tensor:
            return torch.ones(k, dtype=dtype, device=device)

        return cls(z(n), o(n), z(m), o(m))

    def to(self, device: torch.device, dtype: torch.dtype) -> Scaling:
        """The same scaling on another device or dtype."""
        return Scaling(*(t.to(device=device, dtype=dtype)
                         for t in (self.x_mean, self.x_std, self.y_mean, self.y_std)))

    def x_in(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(N, n)`` in training units."""
        return (x - self.x_mean) / self.x_std

    def y_in(self, y: torch.Tensor) -> torch.Tensor:
        """Outputs ``(N, m)`` in training units."""
        return (y - self.y_mean) / self.y_std

    def dydx_in(self, dydx: torch.Tensor) -> torch.Tensor:
        """Partials ``(N, m, n)`` in training units (NaN entries stay NaN)."""
        return dydx * (self.x_std[None, None, :] / self.y_std[None, :, None])

    def y_out(self, y: torch.Tensor) -> torch.Tensor:
        """Predicted outputs ``(N, m)`` back in the data's units."""
        return y * self.y_std + self.y_mean

    def dydx_out(self, dydx: torch.Tensor) -> torch.Tensor:
        """Predicted partials ``(N, m, n)`` back in the data's units."""
        return dydx * (self.y_std[None, :, None] / self.x_std[None, None, :])


class ScaledModule(torch.nn.Module):
    """A network trained in standardised units, seen in the data's units: ``(N, n) → (N, m)``.

    It shares its parameters with ``net``; differentiate it (``torch.func.jacrev``,
    :func:`jacobite.batch_jacobian`) to get partials in the data's units.
    """

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, net: torch.nn.Module, scaling: Scaling) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("x_mean", scaling.x_mean)
        self.register_buffer("x_std", scaling.x_std)
        self.register_buffer("y_mean", scaling.y_mean)
        self.register_buffer("y_std", scaling.y_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net((x - self.x_mean) / self.x_std)
        return out.reshape(out.shape[0], -1) * self.y_std + self.y_mean
