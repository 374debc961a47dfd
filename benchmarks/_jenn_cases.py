"""Test functions, samples, scores and the jenn side of ``bench_jenn``.

Everything here is in jacobite's layout: inputs ``x`` ``(N, n)``, values ``y`` ``(N, m)``,
partials ``dydx`` ``(N, m, n)``. jenn 2.1.1 takes the transposes (samples are columns:
``(n, N)``, ``(m, N)``, ``(m, n, N)``); :func:`jenn_fit` converts.

    >>> d = sample_uniform(ROSENBROCK_2D, 5, seed=0)
    >>> d.x.shape, d.y.shape, d.dydx.shape
    ((5, 2), (5, 1), (5, 1, 2))
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Problem:
    """A smooth map on a box with its analytic Jacobian.

    ``f``: ``(N, n) -> (N, m)``; ``df``: ``(N, n) -> (N, m, n)``.
    """

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    lb: float
    ub: float
    n: int


@dataclass(frozen=True)
class Data:
    """Samples of a problem: ``x (N, n)``, ``y (N, m)``, ``dydx (N, m, n)``."""

    x: Array
    y: Array
    dydx: Array


@dataclass
class Outcome:
    """One fit: test R² of the values and of the partials, its time in seconds, and the
    optimizer iterations it ran (None when not reported)."""

    r2_values: float
    r2_partials: float
    seconds: float
    iterations: int | None = None


# ---------------------------------------------------------------------------------------------
# Test functions


def _sinusoid(x: Array) -> Array:
    return x * np.sin(x)


def _sinusoid_d(x: Array) -> Array:
    return (np.sin(x) + x * np.cos(x))[:, :, None]


def _rastrigin(x: Array) -> Array:
    return (10.0 * x.shape[1] + np.sum(x**2 - 10.0 * np.cos(2 * np.pi * x), axis=1))[:, None]


def _rastrigin_d(x: Array) -> Array:
    return (2.0 * x + 20.0 * np.pi * np.sin(2 * np.pi * x))[:, None, :]


def _rosenbrock(x: Array) -> Array:
    """The chained Rosenbrock function Σ 100 (x_{i+1} − x_i²)² + (1 − x_i)²."""
    a, b = x[:, :-1], x[:, 1:]
    return np.sum(100.0 * (b - a**2) ** 2 + (1.0 - a) ** 2, axis=1)[:, None]


def _rosenbrock_d(x: Array) -> Array:
    a, b = x[:, :-1], x[:, 1:]
    r = b - a**2
    g = np.zeros_like(x)
    g[:, :-1] += -400.0 * a * r - 2.0 * (1.0 - a)
    g[:, 1:] += 200.0 * r
    return g[:, None, :]


SINUSOID = Problem("sinusoid x·sin(x)", _sinusoid, _sinusoid_d, -3.14, 3.14, 1)
RASTRIGIN_2D = Problem("Rastrigin 2-D", _rastrigin, _rastrigin_d, -1.0, 1.5, 2)
ROSENBROCK_2D = Problem("Rosenbrock 2-D", _rosenbrock, _rosenbrock_d, -2.0, 2.0, 2)
ROSENBROCK_10D = Problem("Rosenbrock 10-D", _rosenbrock, _rosenbrock_d, -1.0, 1.0, 10)


SCALE = 1.0


def ridge_map(n: int = 100, rank: int = 8, seed: int = 0) -> Problem:
    """A smooth ``n → n`` map ``f(x) = C sin(B x)`` with ``B`` ``(rank, n)``, ``C`` ``(n, rank)``
    Gaussian (seeded; ``B`` scaled by 1/√n so that ``B x`` is O(1) on ``[−1, 1]ⁿ``): every output
    depends on every input, and its Jacobian ``C diag(cos(B x)) B`` is dense."""
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((rank, n)) * (SCALE / np.sqrt(n))
    C = rng.standard_normal((n, rank)) / np.sqrt(rank)

    def f(x: Array) -> Array:
        return np.sin(x @ B.T) @ C.T

    def df(x: Array) -> Array:
        return np.einsum("ir,nr,rj->nij", C, np.cos(x @ B.T), B)

    return Problem(f"ridge map {n} → {n}", f, df, -1.0, 1.0, n)


# ---------------------------------------------------------------------------------------------
# Samples


def _evaluate(p: Problem, x: Array) -> Data:
    return Data(x, p.f(x), p.df(x))


def sample_uniform(p: Problem, size: int, seed: int) -> Data:
    """``size`` points drawn uniformly in the box (seeded)."""
    u = np.random.default_rng(seed).random((size, p.n))
    return _evaluate(p, p.lb + (p.ub - p.lb) * u)


def sample_lhs(p: Problem, size: int, seed: int) -> Data:
    """``size`` points of a seeded Latin hypercube in the box."""
    from scipy.stats import qmc

    u = qmc.LatinHypercube(d=p.n, seed=seed).random(size)
    return _evaluate(p, p.lb + (p.ub - p.lb) * u)


def sample_grid(p: Problem, levels: int) -> Data:
    """The full-factorial grid with ``levels`` evenly spaced levels per input (corners included)."""
    axis = np.linspace(p.lb, p.ub, levels)
    mesh = np.meshgrid(*([axis] * p.n))
    return _evaluate(p, np.stack([g.ravel() for g in mesh], axis=1))


# ---------------------------------------------------------------------------------------------
# Scores


def r2(pred: Array, true: Array) -> float:
    """Coefficient of determination pooled over every output (and partial) column:
    ``1 − Σ (pred − true)² / Σ (true − mean_over_samples(true))²``."""
    pred = np.asarray(pred, dtype=np.float64).reshape(true.shape)
    ss_res = float(np.sum((pred - true) ** 2))
    ss_tot = float(np.sum((true - true.mean(axis=0, keepdims=True)) ** 2))
    return 1.0 - ss_res / ss_tot


# ---------------------------------------------------------------------------------------------
# jenn


def jenn_fit(data: Data, layers: list[int], *, enhanced: bool = True,
             clock: Callable[[], float] | None = None, **fit_kw: Any) -> tuple[Any, float]:
    """A jenn ``NeuralNet(layers)`` fitted to ``data`` (its partials too when ``enhanced``);
    returns the model and the fit's time on ``clock`` (default: wall time). ``fit_kw`` go to
    ``NeuralNet.fit``."""
    jenn = importlib.import_module("jenn")  # an optional peer, imported only when used
    x, y = data.x.T.copy(), data.y.T.copy()
    dydx = data.dydx.transpose(1, 2, 0).copy() if enhanced else None
    model = jenn.NeuralNet(layer_sizes=layers, hidden_activation="tanh")
    clock = clock or time.perf_counter
    t0 = clock()
    model.fit(x=x, y=y, dydx=dydx, **fit_kw)
    return model, clock() - t0


def jenn_scores(model: Any, test: Data) -> tuple[float, float]:
    """Test R² of a fitted jenn model's values and partials."""
    x = test.x.T.copy()
    y = np.asarray(model.predict(x)).T
    dydx = np.asarray(model.predict_partials(x)).transpose(2, 0, 1)
    return r2(y, test.y), r2(dydx, test.dydx)


def jenn_outcome(data: Data, test: Data, layers: list[int], *, enhanced: bool = True,
                 clock: Callable[[], float] | None = None, **fit_kw: Any) -> Outcome:
    model, secs = jenn_fit(data, layers, enhanced=enhanced, clock=clock, **fit_kw)
    return Outcome(*jenn_scores(model, test), secs, jenn_iterations(model))


def jenn_iterations(model: Any) -> int:
    """Optimizer iterations a jenn fit ran (its cost history's length, over every batch)."""
    hist = model.history or {}
    return sum(len(costs or []) for batches in hist.values() for costs in batches.values())
