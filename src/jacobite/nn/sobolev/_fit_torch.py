"""L-BFGS and Adam for :class:`~jacobite.nn.JENNRegressor`: ``torch.optim.LBFGS`` (strong-Wolfe
line search) and ``torch.optim.Adam`` on the module's trainable parameters, reporting their
loss entries to a :class:`~._train.Monitor`.

L-BFGS runs in chunks of :data:`CHUNK` iterations (one ``step`` call each: a call has a fixed
cost, and the monitor's stopping rule, early stopping and the progress bar are acted on between
chunks); each loss evaluation is one entry. torch's own stopping tests are off
(``tolerance_grad = tolerance_change = 0``) so that ``tol`` and ``n_iter_no_change`` decide, as
for the other optimisers; a chunk that leaves the parameters where they were (no step lowers
the loss) ends the run as ``"converged"``. The evaluation that opens each ``step`` call, at the
point the last call ended on, is answered from memory.

>>> import torch
>>> from jacobite.nn.sobolev._train import Batch, Monitor, Settings
>>> net = torch.nn.Linear(1, 1).double()
>>> x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]
>>> s = Settings("lbfgs", 1.0, 0.0, 30, 0.0, 5, None, "auto", None, False)
>>> why, iterations = lbfgs(net, Batch(x, 2 * x, None, None, 1.0), s,
...                         Monitor(net, None, s, lambda i, f: None))
>>> round(net.weight.item(), 6), why
(2.0, 'converged')
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._train import Batch, Monitor, Settings, Terms, objective, terms

__all__ = ["CHUNK", "HISTORY", "adam", "lbfgs"]

#: L-BFGS memory: the number of recent steps its curvature model keeps
HISTORY = 20
#: L-BFGS iterations per ``torch.optim.LBFGS.step`` call
CHUNK = 10
#: loss evaluations remembered (the accepted point of an iteration is one of its last few)
_MEMORY = 8


def _trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


class _Closure:
    """The closure ``torch.optim.LBFGS`` calls: the objective and its gradient, each new
    evaluation reported to the monitor and remembered with its point."""

    def __init__(self, module: torch.nn.Module, data: Batch, s: Settings,
                 monitor: Monitor) -> None:
        self.module, self.data, self.settings, self.monitor = module, data, s, monitor
        self.params = _trainable(module)
        self.memory: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Terms]] = []
        self.stop = False
        self.recall = False  # True: the next call may be a re-evaluation of a known point

    def _known(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Terms] | None:
        for point, loss, grad, entry in self.memory:
            if torch.equal(point, v):
                return loss, grad, entry
        return None

    def __call__(self) -> torch.Tensor:
        v = _flat(self.params)
        if self.recall:
            self.recall = False
            known = self._known(v)
            if known is not None:
                i = 0
                for p in self.params:
                    p.grad = known[1][i:i + p.numel()].view_as(p).clone()
                    i += p.numel()
                return known[0]
        for p in self.params:
            p.grad = None
        total, res = objective(self.module, self.data, self.settings)
        total.backward()
        grad = _flat([torch.zeros_like(p) if p.grad is None else p.grad for p in self.params])
        entry = terms(total, res)
        loss = total.detach()
        self.memory = [(v, loss, grad, entry), *self.memory[:_MEMORY - 1]]
        self.stop = self.monitor(entry) or self.stop
        return loss

    def finish(self) -> None:
        """Make the last entry the loss at the parameters the run ends on."""
        v = _flat(self.params)
        if self.memory and torch.equal(self.memory[0][0], v):
            return
        known = self._known(v)
        if known is not None:
            self.monitor(known[2])
        else:
            self.recall = False
            self()


def lbfgs(module: torch.nn.Module, data: Batch, s: Settings,
          monitor: Monitor) -> tuple[str, int]:
    """Train with ``torch.optim.LBFGS``; returns why it stopped (``"max_iter"``,
    ``"converged"`` or ``"stopped"`` by the monitor) and the iterations run."""
    closure = _Closure(module, data, s, monitor)
    opt = torch.optim.LBFGS(closure.params, lr=s.lr, max_iter=CHUNK, max_eval=2 * CHUNK + 25,
                            tolerance_grad=0.0, tolerance_change=0.0, history_size=HISTORY,
                            line_search_fn="strong_wolfe")
    done, why = 0, "max_iter"
    while done < s.max_iter:
        opt.param_groups[0]["max_iter"] = min(CHUNK, s.max_iter - done)
        before = _flat(closure.params)
        closure.recall = True
        opt.step(closure)
        done = int(opt.state[closure.params[0]].get("n_iter", done))
        monitor.progress(done)
        if closure.stop:
            why = "stopped"
            break
        if torch.equal(before, _flat(closure.params)):
            why = "converged"
            break
    closure.finish()
    return why, done


def adam(module: torch.nn.Module, data: Batch, s: Settings,
         monitor: Monitor) -> tuple[str, int]:
    """Train with ``torch.optim.Adam``, one entry per epoch (mini-batches of ``batch_size``,
    reshuffled each epoch); returns why it stopped and the epochs run."""
    params = _trainable(module)
    opt = torch.optim.Adam(params, lr=s.lr)
    N = len(data)
    size = N if s.batch_size is None else min(s.batch_size, N)
    for epoch in range(s.max_iter):
        order = (torch.randperm(N, generator=s.generator).to(data.x.device) if size < N
                 else None)
        sums = [0.0, 0.0, 0.0]
        for start in range(0, N, size):
            b = data if order is None else data.rows(order[start:start + size])
            opt.zero_grad(set_to_none=True)
            total, res = objective(module, b, s)
            total.backward()
            opt.step()
            for i, t in enumerate(terms(total, res)):
                sums[i] += t * len(b)
        stop = monitor((sums[0] / N, sums[1] / N, sums[2] / N))
        monitor.progress(epoch + 1)
        if stop:
            return "stopped", epoch + 1
    return "max_iter", s.max_iter
