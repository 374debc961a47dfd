"""The batched Levenberg–Marquardt loop behind :func:`jacobite.kinematics.ik`.

Rows are (goal, seed) pairs solved together: every round is one batched forward-kinematics +
Jacobian evaluation at each row's trial point and a fixed number of tensor operations. A goal
runs ``width`` of its seeds at once (all of them when there are few goals, one when there are
many); a seed that stalls (no tenfold fall of the squared error in ``_WINDOW`` rounds, or its
``max_iter`` spent) hands its row to the goal's next seed, and a goal leaves the batch as soon
as one of its rows meets the tolerance, so the batch shrinks to the goals still unsolved. Once
the goals left could run all their remaining seeds in no more rows than the batch started
with, they do (one more batch of rows, no further restarts): the hard goals then take a few
wide rounds instead of many narrow ones.

The step minimises ``|e + J δ|² + λ|δ|²``: ``δ = −Jᵀ (J Jᵀ + λ I)⁻¹ e`` with ``λ = μ |e|²``
and a fixed ``μ``: the damping shrinks with the error (Sugihara's Levenberg–Marquardt for IK), so
every step is taken, with no trial rejected; far from a solution the steps are short, near one
they are Gauss–Newton steps. (Accepting only steps that lower the error, with an adaptive ``μ``,
measured worse here: fewer random starts reach a solution within the joint limits.)
Joints at a limit that the descent direction pushes outwards are held there (their columns of
``J`` dropped) and the trial is clamped into the limits.

Why a loop of its own rather than ``jacobite.least_squares(batch=True)``: that engine keeps
every problem in the batch until all have stopped and spends far more per iteration on its
general trust-region bookkeeping (for 1000 kuka goals from one seed each, about 1.1 s of CPU
against 0.04–0.05 s here), and its ``"lm"`` needs at least as many residuals as unknowns,
which a 7-joint arm with a 6-entry pose error does not have.

>>> import torch
>>> class Arm:   # a planar two-link arm: pose error of the end point only
...     dof = 2
...     def __call__(self, q):
...         c = torch.cumsum(q, -1)
...         p = torch.stack([c.cos().sum(-1), c.sin().sum(-1), 0 * c[..., 0]], -1)
...         J = torch.zeros(*q.shape[:-1], 3, 2, dtype=q.dtype)
...         J[..., 0, :] = -torch.flip(torch.cumsum(torch.flip(c.sin(), [-1]), -1), [-1])
...         J[..., 1, :] = torch.flip(torch.cumsum(torch.flip(c.cos(), [-1]), -1), [-1])
...         return p, J
>>> goal = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
>>> seeds = torch.tensor([[[0.3, 0.3]]], dtype=torch.float64)
>>> lim = torch.tensor([-3.0, -3.0], dtype=torch.float64)
>>> out = solve(lambda q, t: (lambda p, J: (p - t, J))(*Arm()(q)), goal, seeds, lim, -lim,
...             tol=(1e-10,), max_iter=50)
>>> out.code.tolist()
[0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch

__all__ = ["CONVERGED", "MAX_ITER", "STALLED", "LMOutput", "solve"]

CONVERGED, MAX_ITER, STALLED = 0, 1, 2
_WINDOW = 8          # rounds over which a seed must cut its squared error tenfold
_PROGRESS = 0.1
_MU = 0.03           # λ = μ |e|²
_ROWS = 64           # aim for about this many rows when goals are few (CPU)
_ROWS_GPU = 2 ** 20  # on a GPU a round costs about the same up to very many rows

#: ``residual(q, target) -> (e, J)``: the error (R, m) of rows ``q`` (R, dof) from their
#: targets (R, ...) and its Jacobian (R, m, dof).
Residual = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LMOutput:
    """Per goal: the best point, its squared error, the seed it came from, a status code, the
    solver rounds the goal took part in and the residual evaluations spent on it."""

    q: torch.Tensor
    cost: torch.Tensor
    seed: torch.Tensor
    code: torch.Tensor
    iterations: torch.Tensor
    nfev: torch.Tensor


def width_for(goals: int, seeds: int, device: torch.device | None = None) -> int:
    """How many seeds of each goal run at once: on a CPU, where the cost of a round grows
    with its rows, one per goal unless goals are few; on a GPU, where rounds cost launches,
    all of them up to about a million rows."""
    rows = _ROWS_GPU if device is not None and device.type == "cuda" else _ROWS
    return max(1, min(seeds, rows // max(goals, 1)))


@dataclass
class _Rows:
    """The rows in the batch: per-row tensors kept aligned through restarts and removals."""

    goal: torch.Tensor      # (R,) goal of the row
    sidx: torch.Tensor      # (R,) seed the row runs
    born: torch.Tensor      # (R,) round before the row's first evaluation
    start: torch.Tensor     # (R,) round before the current seed's first evaluation
    tgt: torch.Tensor       # (R, ...) the goal's target
    q: torch.Tensor         # (R, dof) the point evaluated next round
    e: torch.Tensor         # (R, m) error at the last point evaluated
    J: torch.Tensor         # (R, m, dof) its Jacobian
    cost: torch.Tensor      # (R,) |e|²
    ref: torch.Tensor       # (R,) cost at the last stall check

    def keep(self, mask: torch.Tensor) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def add(self, other: _Rows) -> None:
        for f in fields(self):
            setattr(self, f.name, torch.cat([getattr(self, f.name), getattr(other, f.name)]))


def _new_rows(goal: torch.Tensor, sidx: torch.Tensor, born: int, targets: torch.Tensor,
              seeds: torch.Tensor, m: int) -> _Rows:
    n, d = goal.numel(), seeds.shape[-1]
    dt, dev = seeds.dtype, seeds.device
    inf = torch.full((n,), torch.inf, dtype=dt, device=dev)
    return _Rows(goal=goal, sidx=sidx, born=torch.full_like(goal, born),
                 start=torch.full_like(goal, born), tgt=targets[goal], q=seeds[goal, sidx],
                 e=torch.full((n, m), torch.inf, dtype=dt, device=dev),
                 J=torch.zeros(n, m, d, dtype=dt, device=dev), cost=inf, ref=inf.clone())


def solve(residual: Residual, targets: torch.Tensor, seeds: torch.Tensor,
          lower: torch.Tensor, upper: torch.Tensor, *, tol: Sequence[float], max_iter: int,
          project: bool = True, width: int | None = None) -> LMOutput:
    """Solve ``residual(q, target) = 0`` for every goal from its ``seeds`` (G, S, dof).

    ``tol`` bounds the norms of consecutive blocks of three entries of the error: one value
    (the whole error, for a 3-entry error) or two (position, then rotation). ``max_iter``
    limits each seed's rounds (checked with the stall test, every ``min(8, max_iter)``
    rounds).
    """
    G, S, _ = seeds.shape
    dev, dt = seeds.device, seeds.dtype
    w = width_for(G, S, dev) if width is None else width
    stride = w
    idx = torch.arange(G * w, device=dev)
    m = 3 * len(tol)
    r = _new_rows(idx // w, idx % w, 0, targets, seeds, m)
    out = LMOutput(q=seeds[:, 0].clone(), cost=torch.full((G,), torch.inf, dtype=dt, device=dev),
                   seed=torch.zeros(G, dtype=torch.long, device=dev),
                   code=torch.full((G,), STALLED, dtype=torch.long, device=dev),
                   iterations=torch.zeros(G, dtype=torch.long, device=dev),
                   nfev=torch.zeros(G, dtype=torch.long, device=dev))
    done = torch.zeros(G, dtype=torch.bool, device=dev)
    tols = torch.tensor(list(tol), dtype=dt, device=dev)
    rounds, expanded = 0, w >= S
    eps = torch.tensor(1e-12, dtype=dt, device=dev)   # keeps J Jᵀ + λ I regular
    mu = torch.tensor(_MU, dtype=dt, device=dev)
    window = min(_WINDOW, max_iter)
    budget = max(_ROWS, G) * w      # rows once every remaining seed runs
    while True:
        rounds += 1
        r.e, r.J = residual(r.q, r.tgt)
        r.cost = torch.linalg.vecdot(r.e, r.e)
        conv = (torch.linalg.vector_norm(r.e.view(-1, len(tol), 3), dim=-1) <= tols).all(-1)
        retire = None
        if bool(conv.any()):
            g = r.goal[conv]
            out.q[g], out.cost[g], out.seed[g] = r.q[conv], r.cost[conv], r.sidx[conv]
            out.code[g] = CONVERGED
            done[g] = True
            retire = done[r.goal]
        restart = None
        if rounds % window == 0:
            live = ~done[r.goal]
            maxed = rounds - r.start >= max_iter
            slow = ~(r.cost <= _PROGRESS * r.ref)          # NaN counts as no progress
            stall = live & (slow | maxed)
            r.ref = r.cost
            if bool(stall.any()):
                _keep_best(out, r, stall, maxed & ~slow)
                nxt = r.sidx + stride
                restart = stall & (nxt < S)
                exhausted = stall & ~restart
                if bool(restart.any()):
                    r.sidx = torch.where(restart, nxt, r.sidx)
                    r.ref = torch.where(restart, torch.inf, r.ref)
                    r.start = torch.where(restart, rounds, r.start)
                else:
                    restart = None
                if bool(exhausted.any()):
                    retire = exhausted if retire is None else retire | exhausted
        if retire is not None:
            out.iterations[r.goal[retire]] = rounds
            out.nfev.index_add_(0, r.goal[retire], rounds - r.born[retire])
            keep = ~retire
            r.keep(keep)
            if restart is not None:
                restart = restart[keep]
            if not r.goal.numel():
                break
        step = _step(r.e, r.J, torch.addcmul(eps, mu, r.cost), r.q, lower, upper, project)
        r.q = step if restart is None else torch.where(restart[:, None],
                                                         seeds[r.goal, r.sidx], step)
        if retire is not None and not expanded and r.goal.numel() * S <= budget:
            expanded = True
            extra = _expand(r, stride, S, rounds, targets, seeds, m)
            if extra is not None:
                r.add(extra)
                stride = S                  # every seed is running: no row restarts again
    return out


def _expand(r: _Rows, stride: int, S: int, rounds: int, targets: torch.Tensor,
            seeds: torch.Tensor, m: int) -> _Rows | None:
    """New rows for every seed the remaining goals have not started yet."""
    left = (S - 1 - r.sidx).clamp_min(0) // stride      # seeds each row would still take
    total = int(left.sum())
    if total == 0:
        return None
    row = torch.repeat_interleave(torch.arange(r.goal.numel(), device=r.goal.device), left)
    first = torch.cumsum(left, 0) - left
    k = torch.arange(total, device=row.device) - first[row] + 1
    return _new_rows(r.goal[row], r.sidx[row] + stride * k, rounds, targets, seeds, m)


def _step(e: torch.Tensor, J: torch.Tensor, lam: torch.Tensor, q: torch.Tensor,
          lower: torch.Tensor, upper: torch.Tensor, project: bool) -> torch.Tensor:
    """The next trial point ``q − Jᵀ (J Jᵀ + λ I)⁻¹ e`` for every row; with ``project``,
    joints at a limit that the descent direction ``−Jᵀ e`` pushes outwards are held there
    (their columns of ``J`` dropped) and the trial is clamped into the limits."""
    if project:
        low = q <= lower
        at = low | (q >= upper)
        if bool(at.any()):
            g = (J.transpose(-1, -2) @ e[..., None])[..., 0]        # the gradient of ½|e|²
            held = at & ((g > 0) == low)
            J = torch.where(held[:, None, :], 0.0, J)
    Jt = J.transpose(-1, -2)
    A = J @ Jt
    A.diagonal(dim1=-2, dim2=-1).add_(lam[:, None])
    x = torch.linalg.solve_ex(A, e)[0]
    trial = torch.baddbmm(q[..., None], Jt, x[..., None], alpha=-1)[..., 0]
    return torch.clamp(trial, lower, upper) if project else trial


def _keep_best(out: LMOutput, r: _Rows, rows: torch.Tensor, maxed: torch.Tensor) -> None:
    """Fold the points of stalled rows into their (unsolved) goal's best point so far; a goal
    with a seed stopped by ``max_iter`` while still improving is marked ``MAX_ITER``."""
    g, cost = r.goal[rows], r.cost[rows]
    out.cost.scatter_reduce_(0, g, cost, "amin")
    win = cost <= out.cost[g]
    out.q[g[win]], out.seed[g[win]] = r.q[rows][win], r.sidx[rows][win]
    out.code[r.goal[rows & maxed]] = MAX_ITER
