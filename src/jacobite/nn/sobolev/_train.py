"""The training loop of :class:`~jacobite.nn.JENNRegressor`: full-batch L-BFGS or Adam on the
Sobolev loss, a stopping rule on the loss, early stopping on a validation split.

One *iteration* is one L-BFGS step (:mod:`._optim`: a strong-Wolfe line search, usually one
or two loss evaluations) or one Adam epoch (a pass over the training data in mini-batches).
The run stops after ``max_iter`` iterations, or when the monitored loss (the training loss, or
the validation loss with early stopping) has not dropped by more than ``tol`` for
``n_iter_no_change`` iterations in a row, or when L-BFGS finds no descent step (a zero
gradient, or rounding).

>>> import torch
>>> net = torch.nn.Linear(1, 1).double()
>>> x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
>>> data = Batch(x, 3 * x, torch.full((8, 1, 1), 3.0, dtype=torch.float64), None, 1.0)
>>> h = train(net, data, None, Settings("lbfgs", 1.0, 0.0, 50, 1e-12, 5, None, "auto", None, False))
>>> round(net.weight.item(), 6), h.stop
(3.0, 'converged')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import ConvergenceError
from . import _jac
from ._lm import levenberg_marquardt
from ._optim import Adam, lbfgs
from .loss import SobolevLoss, sobolev_loss

__all__ = ["HISTORY", "Batch", "History", "Settings", "train"]

#: L-BFGS memory: the number of recent steps its curvature model keeps
HISTORY = 20


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
    """Per-iteration losses (training units) and why the run stopped."""

    total: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    jacobian: list[float] = field(default_factory=list)
    validation: list[float] | None = None
    best_iter: int | None = None
    stop: str = "max_iter"

    @property
    def n_iter(self) -> int:
        return len(self.total)


def _loss(module: torch.nn.Module, b: Batch, s: Settings) -> tuple[torch.Tensor, SobolevLoss]:
    """The training objective (Sobolev loss plus the L2 penalty ``α/(2N) Σ‖W‖²`` on the
    weight matrices) and the loss terms."""
    res = sobolev_loss(module, b.x, b.y, b.dydx, weight=b.weight, mask=b.mask,
                       jac_mode=s.jac_mode)  # type: ignore[arg-type]
    if s.alpha == 0:
        return res.total, res
    sq = sum((p * p).sum() for p in module.parameters() if p.requires_grad and p.ndim >= 2)
    return res.total + (0.5 * s.alpha / len(b)) * sq, res


def _terms(total: torch.Tensor, res: SobolevLoss) -> tuple[float, float, float]:
    return float(total.detach()), float(res.value.detach()), float(res.jacobian.detach())


class _Flat:
    """The trainable parameters as one flat vector: ``fg(v)`` loads ``v``, evaluates the
    objective and returns it with its gradient, remembering the loss terms of its last few
    points (the optimiser reports the point it accepted, which it has evaluated already)."""

    def __init__(self, module: torch.nn.Module, s: Settings) -> None:
        self.module, self.settings = module, s
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.memory: list[tuple[torch.Tensor, tuple[float, float, float]]] = []

    def get(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def load(self, v: torch.Tensor) -> None:
        with torch.no_grad():
            i = 0
            for p in self.params:
                p.copy_(v[i:i + p.numel()].view_as(p))
                i += p.numel()

    def grad(self) -> torch.Tensor:
        return torch.cat([torch.zeros_like(p).reshape(-1) if p.grad is None
                          else p.grad.reshape(-1) for p in self.params])

    def evaluate(self, v: torch.Tensor, data: Batch) -> tuple[tuple[float, float, float],
                                                              torch.Tensor]:
        self.load(v)
        for p in self.params:
            p.grad = None
        total, res = _loss(self.module, data, self.settings)
        total.backward()
        return _terms(total, res), self.grad()

    def fg(self, data: Batch) -> Callable[[torch.Tensor], tuple[float, torch.Tensor]]:
        def fg(v: torch.Tensor) -> tuple[float, torch.Tensor]:
            terms, g = self.evaluate(v, data)
            self.memory = [(v, terms), *self.memory[:7]]
            return terms[0], g
        return fg

    def terms_at(self, v: torch.Tensor, data: Batch) -> tuple[float, float, float]:
        for point, terms in self.memory:
            if point is v or torch.equal(point, v):
                return terms
        return self.evaluate(v, data)[0]


def _lbfgs(module: torch.nn.Module, data: Batch, s: Settings,
           after: Callable[[tuple[float, float, float]], bool]) -> str:
    flat = _Flat(module, s)

    def callback(v: torch.Tensor, f: float) -> bool:
        terms = flat.terms_at(v, data)
        flat.load(v)
        return after(terms)

    v, why = lbfgs(flat.fg(data), flat.get(), s.max_iter, HISTORY, callback, s.lr)
    flat.load(v)
    return {"callback": "stopped"}.get(why, why)


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


def _lm(module: torch.nn.Module, data: Batch, s: Settings,
        after: Callable[[tuple[float, float, float]], bool]) -> str:
    flat = _Flat(module, s)
    N, m = data.y.shape
    n = data.x.shape[1]
    penalty = torch.cat([torch.full((p.numel(),), s.alpha / N if p.ndim >= 2 else 0.0,
                                    dtype=data.x.dtype, device=data.x.device)
                         for p in flat.params])
    known = data.mask
    count = N * m * n if known is None else int(known.sum())
    scale = (data.weight / max(count, 1)) ** 0.5
    if isinstance(scale, torch.Tensor):
        scale = scale.reshape(-1) if known is None else scale[known]

    def residuals(v: torch.Tensor) -> tuple[torch.Tensor, Callable[[], torch.Tensor]]:
        # the per-sample Jacobians sobolev_loss uses, without its argument checks (done once,
        # by the first evaluation's terms matching it: tests/nn/test_jenn_regressor.py)
        flat.load(v)
        if data.dydx is None:
            out, J = _jac._run(module, data.x, N), None
        else:
            out, J = _jac.full(module, data.x, m, s.jac_mode)  # type: ignore[arg-type]
        rv = (out - data.y).reshape(-1) / (N * m) ** 0.5
        value = float((rv @ rv).detach())
        jterm = weighted = 0.0
        parts = [rv]
        if J is not None and data.dydx is not None:
            diff = (J - data.dydx).reshape(-1) if known is None else (J - data.dydx)[known]
            rj = scale * diff
            jterm = float((diff @ diff).detach()) / max(count, 1)
            weighted = float((rj @ rj).detach())
            parts.append(rj)
        r = torch.cat(parts)
        pen = float((0.5 * penalty * v * v).sum())
        flat.memory = [(v, (value + weighted + pen, value, jterm)), *flat.memory[:7]]
        return r.detach(), lambda: _residual_jacobian(r, flat.params)

    def callback(v: torch.Tensor, f: float) -> bool:
        terms = flat.terms_at(v, data)
        flat.load(v)
        return after(terms)

    v, why = levenberg_marquardt(residuals, flat.get(), penalty, s.max_iter, callback)
    flat.load(v)
    return {"callback": "stopped"}.get(why, why)


def _adam(module: torch.nn.Module, data: Batch, s: Settings,
          after: Callable[[tuple[float, float, float]], bool]) -> str:
    flat = _Flat(module, s)
    opt = Adam(s.lr)
    v = flat.get()
    N = len(data)
    size = N if s.batch_size is None else min(s.batch_size, N)
    for _ in range(s.max_iter):
        order = (torch.randperm(N, generator=s.generator).to(data.x.device) if size < N
                 else None)
        sums = [0.0, 0.0, 0.0]
        for start in range(0, N, size):
            b = data if order is None else data.rows(order[start:start + size])
            terms, g = flat.evaluate(v, b)
            v = opt.step(v, g)
            for i, t in enumerate(terms):
                sums[i] += t * len(b)
        flat.load(v)
        if after((sums[0] / N, sums[1] / N, sums[2] / N)):
            return "stopped"
    return "max_iter"


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def train(module: torch.nn.Module, data: Batch, valid: Batch | None, s: Settings) -> History:
    """Train ``module`` in place on ``data``; with ``valid``, stop on its loss and restore the
    parameters of the best validation loss. Returns the loss history."""
    from ._progress import FitProgress

    h = History(validation=None if valid is None else [])
    best = math.inf
    stale = 0
    best_state: dict[str, torch.Tensor] | None = None

    with FitProgress(s.progress, s.max_iter, f"{s.optimizer} fit") as bar:
        def after(terms: tuple[float, float, float]) -> bool:
            nonlocal best, stale, best_state
            if not math.isfinite(terms[0]):
                raise ConvergenceError(
                    f"the training loss became {terms[0]} at iteration {h.n_iter + 1}; lower "
                    "lr, keep normalize=True, or check the data for huge values")
            for curve, t in zip((h.total, h.value, h.jacobian), terms, strict=True):
                curve.append(t)
            watched = terms[0]
            if valid is not None and h.validation is not None:
                watched = float(_loss(module, valid, s)[1].total.detach())
                h.validation.append(watched)
            stale = 0 if watched < best - s.tol else stale + 1
            if watched < best:
                best = watched
                h.best_iter = h.n_iter
                if valid is not None:
                    best_state = _state(module)
            bar.update(h.n_iter, terms[0])
            return stale >= s.n_iter_no_change

        run = {"lbfgs": _lbfgs, "lm": _lm, "adam": _adam}[s.optimizer]
        stop = run(module, data, s, after)
    h.stop = {"stopped": "early_stopping" if valid is not None else "tol"}.get(stop, stop)
    if best_state is not None:
        module.load_state_dict(best_state)
    return h
