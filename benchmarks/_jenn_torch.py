"""The torch side of ``bench_jenn``: jacobite fits (``JENNRegressor``), Adam steps on
``sobolev_loss`` (and a hand-written one), and a short Adam training with its test scores.

    >>> import numpy as np
    >>> from benchmarks import _jenn_cases as jc
    >>> x, y, dydx = standardise(jc.sample_uniform(jc.ROSENBROCK_2D, 8, seed=0))
    >>> tuple(dydx.shape), round(float(x.std(0, unbiased=False)[0]), 12)
    ((8, 1, 2), 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import _jenn_cases as jc
from ._common import median
from .bench_dense_overhead import bench_clock, time_interleaved

DT = torch.float64


def as_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=DT)


def as_numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def mlp(n: int, hidden: tuple[int, ...], m: int, seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for a, b in zip((n, *hidden), hidden, strict=False):
        layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
    layers.append(torch.nn.Linear(hidden[-1] if hidden else n, m))
    return torch.nn.Sequential(*layers).to(DT)


def standardise(d: jc.Data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, y, dydx scaled to zero mean and unit spread (the units a regressor trains in)."""
    sx, sy = d.x.std(0), d.y.std(0)
    x = (d.x - d.x.mean(0)) / sx
    y = (d.y - d.y.mean(0)) / sy
    dydx = d.dydx * sx[None, None, :] / sy[None, :, None]
    return as_tensor(x), as_tensor(y), as_tensor(dydx)


# ---------------------------------------------------------------------------------------------
# jacobite fits


def jacobite_outcome(data: jc.Data, test: jc.Data, *, enhanced: bool = True,
                     **settings: Any) -> tuple[jc.Outcome, Any]:
    """A ``JENNRegressor(**settings)`` fitted to ``data`` (values only unless ``enhanced``),
    scored on ``test``; returns the outcome and the fitted regressor."""
    from jacobite.nn import JENNRegressor

    reg = JENNRegressor(**settings)
    x, y = as_tensor(data.x), as_tensor(data.y)
    dydx = as_tensor(data.dydx) if enhanced else None
    clock = bench_clock()
    t0 = clock()
    reg.fit(x, y, dydx)
    secs = clock() - t0
    xt = as_tensor(test.x)
    pred = as_numpy(reg.predict(xt)).reshape(test.y.shape)
    jac = as_numpy(reg.predict_jacobian(xt)).reshape(test.dydx.shape)
    return jc.Outcome(jc.r2(pred, test.y), jc.r2(jac, test.dydx), secs), reg


def iterations(reg: Any) -> object:
    for name in ("n_iter_", "n_iter"):
        v = getattr(reg, name, None)
        if v is not None:
            return int(v)
    return "?"


# ---------------------------------------------------------------------------------------------
# Per-step cost of sobolev_loss


def adam_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               dydx: torch.Tensor | None, lr: float = 1e-3, **loss_kw: Any
               ) -> Callable[[], None]:
    from jacobite.nn import sobolev_loss

    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step() -> None:
        opt.zero_grad()
        sobolev_loss(net, x, y, dydx, **loss_kw).total.backward()
        opt.step()

    return step


def hand_written_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                       dydx: torch.Tensor) -> Callable[[], None]:
    """The same Adam step on values + partials written in plain PyTorch for one output: the
    input gradient by ``autograd.grad(create_graph=True)``, then a backward through it."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        xr = x.detach().requires_grad_(True)
        out = net(xr)
        (g,) = torch.autograd.grad(out.sum(), xr, create_graph=True)
        loss = ((out - y) ** 2).mean() + ((g - dydx[:, 0, :]) ** 2).mean()
        loss.backward()
        opt.step()

    return step


def loss_steps(data: jc.Data, hidden: tuple[int, ...],
               variants: Sequence[dict[str, Any] | None]) -> list[Callable[[], None]]:
    """One Adam step per variant, each on its own copy of the same initial net: the
    values-only loss for None, else ``sobolev_loss(..., dydx, **variant)``."""
    x, y, dydx = standardise(data)
    m, n = y.shape[1], x.shape[1]
    return [adam_step(mlp(n, hidden, m, 0), x, y, None if kw is None else dydx, **kw or {})
            for kw in variants]


def step_times(steps: Sequence[Callable[[], None]], *, repeats: int,
               min_time: float) -> list[float]:
    """Median seconds per call of each step, timed round-robin on the benchmarks' clock
    (process CPU time when single-threaded)."""
    return [median(s) for s in time_interleaved(steps, repeats=repeats, min_time=min_time)]


def rel_err(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(pred - true) / np.linalg.norm(true))


def train_adam(train: jc.Data, test: jc.Data, hidden: tuple[int, ...], steps: int, lr: float,
           kw: dict[str, Any] | None) -> tuple[jc.Outcome, float, float]:
    """Adam on ``sobolev_loss(**kw)`` (values only when ``kw`` is None) for ``steps``
    full-batch steps from the same initial weights; the test outcome, seconds per step, and
    the test partials' relative error ``‖Ĵ − J‖ / ‖J‖``."""
    x, y, dydx = standardise(train)
    mx, sx = train.x.mean(0), train.x.std(0)
    my, sy = train.y.mean(0), train.y.std(0)
    net = mlp(x.shape[1], hidden, y.shape[1], 0)
    step = adam_step(net, x, y, None if kw is None else dydx, lr=lr, **(kw or {}))
    torch.manual_seed(1)  # the projected mode's random directions
    clock = bench_clock()
    t0 = clock()
    for _ in range(steps):
        step()
    secs = clock() - t0
    xt = as_tensor((test.x - mx) / sx)
    with torch.no_grad():
        pred = as_numpy(net(xt)) * sy + my
    J = torch.func.vmap(torch.func.jacrev(lambda v: net(v[None])[0]))(xt)
    jac = as_numpy(J) * sy[None, :, None] / sx[None, None, :]
    out = jc.Outcome(jc.r2(pred, test.y), jc.r2(jac, test.dydx), secs)
    return out, secs / steps, rel_err(jac, test.dydx)
