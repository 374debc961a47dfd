"""Test functions with analytic Jacobians, each in a NumPy and a torch version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Case:
    name: str
    f_np: Callable
    f_torch: Callable
    jac: Callable  # analytic Jacobian at a NumPy point, shape out_shape + in_shape
    x: np.ndarray
    analytic: bool = True  # complex-analytic (complex step applies)


_rng = np.random.default_rng(1234)
_A = _rng.standard_normal((4, 5))
_At = torch.from_numpy(_A)
_C = _rng.standard_normal((3, 3))
_Ct = torch.from_numpy(_C)


def _rosen_np(x):
    return np.concatenate([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])


def _rosen_t(x):
    return torch.cat([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])


def _rosen_jac(x):
    n = x.size
    J = np.zeros((2 * (n - 1), n))
    for i in range(n - 1):
        J[i, i], J[i, i + 1], J[n - 1 + i, i] = -20 * x[i], 10.0, -1.0
    return J


def _mat2d_jac(X):
    # f(X) = exp(X).sum(axis=1) * X[:, 0]  for X of shape (3, 2); output shape (3,)
    J = np.zeros((3, 3, 2))
    rows = np.exp(X).sum(axis=1)
    for i in range(3):
        J[i, i, :] = np.exp(X[i]) * X[i, 0]
        J[i, i, 0] += rows[i]
    return J


def _poly_jac(x):
    return _C * (3 * x ** 2)[None, :] + np.diag(2 * x - 3)


CASES = [
    Case("exp", np.exp, torch.exp, lambda x: np.diag(np.exp(x)), np.array([-1.0, 0.3, 2.0])),
    Case("sin", np.sin, torch.sin, lambda x: np.diag(np.cos(x)), np.array([0.1, 1.5, -2.5, 4.0])),
    Case("polynomial", lambda x: _C @ x ** 3 + x ** 2 - 3 * x,
         lambda x: _Ct.to(x.dtype) @ x ** 3 + x ** 2 - 3 * x, _poly_jac,
         np.array([1.5, -2.0, 0.7])),
    Case("rosenbrock", _rosen_np, _rosen_t, _rosen_jac, np.array([-1.2, 1.0, 0.5, 2.0])),
    Case("matvec", lambda x: _A @ x, lambda x: _At.to(x.dtype) @ x, lambda x: _A.copy(),
         np.array([0.5, -1.0, 2.0, 0.0, 3.0])),
    Case("matrix input", lambda X: np.exp(X).sum(axis=1) * X[:, 0],
         lambda X: torch.exp(X).sum(dim=1) * X[:, 0], _mat2d_jac,
         np.array([[0.1, -0.4], [1.0, 0.5], [-0.7, 0.2]])),
    Case("scalar->vector", lambda t: np.stack([np.sin(t), t ** 3, np.exp(-t)]),
         lambda t: torch.stack([torch.sin(t), t ** 3, torch.exp(-t)]),
         lambda t: np.array([np.cos(t), 3 * t ** 2, -np.exp(-t)]), np.array(0.8)),
    Case("vector->scalar", lambda x: np.sum(x ** 2) * np.exp(x[0]),
         lambda x: torch.sum(x ** 2) * torch.exp(x[0]),
         lambda x: 2 * x * np.exp(x[0]) + np.eye(x.size)[0] * np.sum(x ** 2) * np.exp(x[0]),
         np.array([0.3, -1.1, 0.6])),
    Case("scalar->scalar", lambda t: np.log1p(t ** 2), lambda t: torch.log1p(t ** 2),
         lambda t: np.array(2 * t / (1 + t ** 2)), np.array(1.3), analytic=True),
]


def mlp64() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3), torch.nn.Softplus()
    ).double()


def counting(f: Callable) -> tuple[Callable, list[int]]:
    """Wrap ``f`` so that every call is counted in ``calls[0]``."""
    calls = [0]

    def g(*a, **k):
        calls[0] += 1
        return f(*a, **k)

    return g, calls
