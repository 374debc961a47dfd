"""Levenberg–Marquardt for :class:`~jacobite.nn.JENNRegressor` on small problems: SciPy's
``least_squares(method="lm")`` (MINPACK) on the flat parameter vector, in float64.

The Sobolev loss is a sum of squares. The residuals are the values' errors scaled by
``1/√(N·m)``, the known partials' errors scaled by ``√(λ/count)`` and, for the L2 penalty
``½ Σ c_i θ_i²`` (``c = α/N`` on the weight matrices, 0 elsewhere), one residual
``√(c_i/2)·θ_i`` per parameter — so the squared norm of the residuals is the recorded
objective, and there are always at least as many residuals as parameters (as MINPACK needs).
MINPACK asks for the residuals' Jacobian (``∂r/∂θ``, batched backward passes through the
graph kept from the residuals' evaluation) once per accepted step; that request is where each
accepted point is reported to the :class:`~._train.Monitor` (one entry per step), and where the
run is stopped, by an exception, at ``max_iter`` steps or when the monitor says so. MINPACK's
own tolerances are at float64 rounding, so its ``"converged"`` means it finds no step that
lowers the loss; ``max_nfev`` bounds its evaluations at ``10·max_iter + 10``.

>>> import torch
>>> from jacobite.nn.sobolev._train import Batch, Monitor, Settings
>>> net = torch.nn.Linear(1, 1).double()
>>> x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
>>> s = Settings("lm", 1.0, 0.0, 30, 0.0, 5, None, "auto", None, False)
>>> why, steps = levenberg_marquardt(net, Batch(x, 2 * x, None, None, 1.0), s,
...                                  Monitor(net, None, s, lambda i, f: None))
>>> round(net.weight.item(), 6)
2.0
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from ...errors import ConvergenceError
from . import _jac
from ._train import Batch, Monitor, Settings, Terms

__all__ = ["levenberg_marquardt"]

#: MINPACK's tolerances: a few units of float64 rounding (at exactly the rounding unit, MINPACK
#: could end on its "tolerance too small" codes, which SciPy does not map)
_TOL = 4 * float(np.finfo(np.float64).eps)


class _Stop(Exception):
    """Ends the SciPy run from inside its Jacobian request."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _residual_jacobian(r: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
    """``∂r/∂θ`` ``(R, P)`` by batched backward passes (at most 256 rows each)."""
    eye = torch.eye(r.numel(), dtype=r.dtype, device=r.device)
    rows = []
    for part in eye.split(256):
        grads = torch.autograd.grad(r, params, grad_outputs=part, is_grads_batched=True,
                                    retain_graph=True, allow_unused=True,
                                    materialize_grads=True)
        rows.append(torch.cat([g.reshape(part.shape[0], -1) for g in grads], 1))
    return torch.cat(rows)


class _Residuals:
    """``fun`` and ``jac`` for ``least_squares``, remembering the last point's graph."""

    def __init__(self, module: torch.nn.Module, data: Batch, s: Settings) -> None:
        self.module, self.data, self.settings = module, data, s
        self.params = [p for p in module.parameters() if p.requires_grad]
        N, m = data.y.shape
        self.root = np.concatenate([
            np.full(p.numel(), (0.5 * s.alpha / N) ** 0.5 if p.ndim >= 2 else 0.0)
            for p in self.params])
        known = data.mask
        self.count = N * m * data.x.shape[1] if known is None else int(known.sum())
        scale = (data.weight / max(self.count, 1)) ** 0.5
        if isinstance(scale, torch.Tensor):
            scale = scale.reshape(-1) if known is None else scale[known]
        self.scale = scale
        self.memory: list[tuple[np.ndarray, torch.Tensor, Terms]] = []  # the last point

    def x0(self) -> np.ndarray:
        return torch.cat([p.detach().reshape(-1) for p in self.params]).cpu().double().numpy()

    def load(self, v: np.ndarray) -> None:
        p0 = self.params[0]
        t = torch.from_numpy(v).to(device=p0.device, dtype=p0.dtype)
        with torch.no_grad():
            i = 0
            for p in self.params:
                p.copy_(t[i:i + p.numel()].view_as(p))
                i += p.numel()

    def at(self, v: np.ndarray) -> tuple[torch.Tensor, Terms]:
        """The residuals' graph and the terms at ``v``, the module's parameters left at ``v``
        (re-evaluated unless ``v`` is the last point evaluated: loading parameters in place
        invalidates the graphs of earlier points)."""
        if not (self.memory and np.array_equal(self.memory[0][0], v)):
            self.fun(v)
        return self.memory[0][1], self.memory[0][2]

    def fun(self, v: np.ndarray) -> np.ndarray:
        # the per-sample Jacobians sobolev_loss uses, without its argument checks (the recorded
        # terms match sobolev_loss: tests/nn/test_jenn_regressor.py)
        d, s = self.data, self.settings
        N, m = d.y.shape
        self.load(v)
        if d.dydx is None:
            out, J = _jac._run(self.module, d.x, N), None
        else:
            out, J = _jac.full(self.module, d.x, m, s.jac_mode)  # type: ignore[arg-type]
        rv = (out - d.y).reshape(-1) / (N * m) ** 0.5
        value = float((rv @ rv).detach())
        jterm = weighted = 0.0
        parts = [rv]
        if J is not None and d.dydx is not None:
            diff = (J - d.dydx).reshape(-1) if d.mask is None else (J - d.dydx)[d.mask]
            rj = self.scale * diff
            jterm = float((diff @ diff).detach()) / max(self.count, 1)
            weighted = float((rj @ rj).detach())
            parts.append(rj)
        r = torch.cat(parts)
        pen = self.root * v
        self.memory = [(v.copy(), r, (value + weighted + float(pen @ pen), value, jterm))]
        return np.concatenate([r.detach().cpu().double().numpy(), pen])

    def jac(self, v: np.ndarray) -> np.ndarray:
        r, _ = self.at(v)
        J = _residual_jacobian(r, self.params).detach().cpu().double().numpy()
        return np.vstack([J, np.diag(self.root)])


def levenberg_marquardt(module: torch.nn.Module, data: Batch, s: Settings,
                        monitor: Monitor) -> tuple[str, int]:
    """Train with MINPACK's Levenberg–Marquardt; returns why it stopped (``"max_iter"``,
    ``"converged"`` or ``"stopped"`` by the monitor) and the accepted steps."""
    from scipy.optimize import least_squares

    res = _Residuals(module, data, s)
    x0 = res.x0()
    last = [x0]  # the last point reported (the start, then each accepted one)

    def report(v: np.ndarray) -> None:
        _, entry = res.at(v)
        last[0] = v.copy()
        stop = monitor(entry)
        monitor.progress(len(monitor.history.total))
        if stop:
            raise _Stop("stopped")
        if len(monitor.history.total) >= s.max_iter:
            raise _Stop("max_iter")

    def jac(v: np.ndarray) -> np.ndarray:
        if not np.array_equal(v, x0) or monitor.history.total:
            report(v)
        return res.jac(v)

    start = len(monitor.history.total)
    try:
        out: Any = least_squares(res.fun, x0, jac=jac, method="lm", x_scale="jac", ftol=_TOL,
                                 xtol=_TOL, gtol=_TOL, max_nfev=10 * s.max_iter + 10)
    except _Stop as stop:
        res.at(last[0])
        return stop.why, len(monitor.history.total) - start
    if out.status < 0:
        raise ConvergenceError(f"Levenberg–Marquardt failed: {out.message}; pass "
                               "optimizer='lbfgs'")
    if not np.array_equal(out.x, last[0]):
        with contextlib.suppress(_Stop):  # the run has ended anyway
            report(np.asarray(out.x, dtype=np.float64))
    res.at(last[0])
    return ("converged" if out.status > 0 else "max_iter"), len(monitor.history.total) - start
