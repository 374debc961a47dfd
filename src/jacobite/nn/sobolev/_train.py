"""The training loop of :class:`~jacobite.nn.JENNRegressor`: the objective, the loss curves,
the stopping rule and early stopping; the optimisers themselves are the libraries' —
``torch.optim.LBFGS`` and ``torch.optim.Adam`` (:mod:`._fit_torch`) and SciPy's
Levenberg–Marquardt, ``scipy.optimize.least_squares(method="lm")`` (:mod:`._fit_lm`).

Each optimiser reports its loss *entries* to a :class:`Monitor`: L-BFGS one per loss
evaluation (the first at the initial parameters, then each point its line searches try,
usually one or two per iteration), Levenberg–Marquardt one per accepted step, Adam one per
epoch (the mean over its mini-batches). The run stops after ``max_iter`` iterations, or once
the monitored loss (the training loss, or the validation loss with early stopping) has not
dropped by more than ``tol`` for ``n_iter_no_change`` entries in a row, or when the optimiser
finds no step that lowers the loss (``"converged"``).

>>> import torch
>>> net = torch.nn.Linear(1, 1).double()
>>> x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
>>> data = Batch(x, 3 * x, torch.full((8, 1, 1), 3.0, dtype=torch.float64), None, 1.0)
>>> h = train(net, data, None, Settings("lbfgs", 1.0, 0.0, 50, 1e-12, 5, None, "auto", None, False))
>>> round(net.weight.item(), 6), h.stop in ("converged", "tol")    # which: the start's luck
(3.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import ConvergenceError
from .loss import SobolevLoss, sobolev_loss

__all__ = ["Batch", "History", "Monitor", "Settings", "Terms", "objective", "train"]

#: the objective, the values' term and the (unweighted) partials' term at one point
Terms = tuple[float, float, float]


@dataclass(frozen=True)
class Batch:
    """Training targets in training units: ``x`` ``(N, n)``, ``y`` ``(N, m)``, ``dydx``
    ``(N, m, n)`` or None, ``mask`` ``(N, m, n)`` or None, ``weight`` a float or ``(N, m, n)``."""

    x: torch.Tensor
    y: torch.Tensor
    dydx: torch.Tensor | None
    mask: torch.Tensor | None
    weight: float | torch.Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def rows(self, idx: torch.Tensor) -> Batch:
        """The samples ``idx``."""
        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[idx]

        w = self.weight[idx] if isinstance(self.weight, torch.Tensor) else self.weight
        return Batch(self.x[idx], self.y[idx], pick(self.dydx), pick(self.mask), w)


@dataclass(frozen=True)
class Settings:
    """The optimiser and the stopping rule (see :class:`~jacobite.nn.JENNRegressor`)."""

    optimizer: str
    lr: float
    alpha: float
    max_iter: int
    tol: float
    n_iter_no_change: int
    batch_size: int | None
    jac_mode: str
    generator: torch.Generator | None
    progress: bool | None


@dataclass
class History:
    """The loss entries (training units), the iterations run and why the run stopped."""

    total: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    jacobian: list[float] = field(default_factory=list)
    validation: list[float] | None = None
    best_iter: int | None = None
    n_iter: int = 0
    stop: str = "max_iter"


def objective(module: torch.nn.Module, b: Batch, s: Settings
              ) -> tuple[torch.Tensor, SobolevLoss]:
    """The training objective (Sobolev loss plus the L2 penalty ``α/(2N) Σ‖W‖²`` on the
    weight matrices) and the loss terms."""
    res = sobolev_loss(module, b.x, b.y, b.dydx, weight=b.weight, mask=b.mask,
                       jac_mode=s.jac_mode)  # type: ignore[arg-type]
    if s.alpha == 0:
        return res.total, res
    sq = sum((p * p).sum() for p in module.parameters() if p.requires_grad and p.ndim >= 2)
    return res.total + (0.5 * s.alpha / len(b)) * sq, res


def terms(total: torch.Tensor, res: SobolevLoss) -> Terms:
    """The recorded terms of one evaluation."""
    return float(total.detach()), float(res.value.detach()), float(res.jacobian.detach())


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Monitor:
    """Receives the loss entries (``monitor(terms)``, at the module's current parameters):
    appends them to the history, computes the validation loss, keeps the parameters of the
    best one and says when to stop (True); ``progress(iterations)`` moves the bar."""

    def __init__(self, module: torch.nn.Module, valid: Batch | None, s: Settings,
                 bar: Callable[[int, float], None]) -> None:
        self.module, self.valid, self.settings, self.bar = module, valid, s, bar
        self.history = History(validation=None if valid is None else [])
        self.best = math.inf
        self.stale = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def __call__(self, entry: Terms) -> bool:
        h, s = self.history, self.settings
        if not math.isfinite(entry[0]):
            raise ConvergenceError(
                f"the training loss became {entry[0]} after {len(h.total)} loss entries; lower "
                "lr, keep normalize=True, or check the data for huge values")
        for curve, t in zip((h.total, h.value, h.jacobian), entry, strict=True):
            curve.append(t)
        watched = entry[0]
        if self.valid is not None and h.validation is not None:
            watched = float(objective(self.module, self.valid, s)[1].total.detach())
            h.validation.append(watched)
        self.stale = 0 if watched < self.best - s.tol else self.stale + 1
        if watched < self.best:
            self.best = watched
            h.best_iter = len(h.total)
            if self.valid is not None:
                self.best_state = _state(self.module)
        return self.stale >= s.n_iter_no_change

    def progress(self, iterations: int) -> None:
        if self.history.total:
            self.bar(iterations, self.history.total[-1])


def train(module: torch.nn.Module, data: Batch, valid: Batch | None, s: Settings) -> History:
    """Train ``module`` in place on ``data``; with ``valid``, stop on its loss and restore the
    parameters of the best validation loss. Returns the loss history."""
    from ._progress import FitProgress

    with FitProgress(s.progress, s.max_iter, f"{s.optimizer} fit") as bar:
        monitor = Monitor(module, valid, s, bar.update)
        if s.optimizer == "lm":
            from ._fit_lm import levenberg_marquardt as run
        else:
            from ._fit_torch import adam, lbfgs
            run = lbfgs if s.optimizer == "lbfgs" else adam
        stop, iterations = run(module, data, s, monitor)
    h = monitor.history
    h.n_iter = iterations
    h.stop = {"stopped": "early_stopping" if valid is not None else "tol"}.get(stop, stop)
    if monitor.best_state is not None:
        module.load_state_dict(monitor.best_state)
    return h
