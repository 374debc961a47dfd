"""The optimisers behind :class:`~jacobite.nn.JENNRegressor`, on one flat parameter vector:
L-BFGS with a strong-Wolfe line search (Nocedal & Wright, *Numerical Optimization*, alg. 7.4,
3.5 and 3.6) and Adam (Kingma & Ba). Small and self-contained: a fit of a small network spends
its time in the loss, not in the optimiser's bookkeeping, and no ``torch.optim`` machinery is
imported.

>>> import torch
>>> A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
>>> def fg(x):
...     return float(0.5 * x @ A @ x - x.sum()), A @ x - 1
>>> x, why = lbfgs(fg, torch.zeros(2, dtype=torch.float64), max_iter=50)
>>> torch.allclose(A @ x, torch.ones(2, dtype=torch.float64)), why
(True, 'converged')
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["Adam", "lbfgs"]

FG = Callable[[torch.Tensor], tuple[float, torch.Tensor]]
#: sufficient decrease and curvature constants of the strong Wolfe conditions
C1, C2 = 1e-4, 0.9


def _cubic_min(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float:
    """Minimiser of the cubic through two points with slopes, kept inside the middle 80% of
    ``[a, b]`` (bisection where the cubic has no minimum there)."""
    lo, hi = min(a, b), max(a, b)
    w = hi - lo
    if w <= 0:
        return lo
    d1 = da + db - 3 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if disc >= 0 and math.isfinite(disc):
        r = math.sqrt(disc)
        den = db - da + 2 * r
        if den != 0:
            t = b - (b - a) * (db + r - d1) / den
            if math.isfinite(t):
                return min(max(t, lo + 0.1 * w), hi - 0.1 * w)
    return lo + 0.5 * w


class _Line:
    """``φ(t) = f(x + t d)`` and its slope, remembering the evaluation of each step."""

    def __init__(self, fg: FG, x: torch.Tensor, d: torch.Tensor) -> None:
        self.fg, self.x, self.d = fg, x, d
        self.seen: dict[float, tuple[float, torch.Tensor]] = {}

    def __call__(self, t: float) -> tuple[float, float]:
        f, g = self.fg(self.x + t * self.d)
        self.seen[t] = (f, g)
        return f, float(g @ self.d) if math.isfinite(f) else math.nan


def _zoom(phi: _Line, f0: float, d0: float, lo: tuple[float, float, float],
          hi: tuple[float, float, float], evals: int) -> float | None:
    """A step satisfying the strong Wolfe conditions inside the bracket ``lo``–``hi`` (each
    ``(t, φ, φ')``); the best sufficient-decrease step found if the evaluations run out."""
    for _ in range(evals):
        t = _cubic_min(*lo, *hi) if math.isfinite(hi[1]) else 0.5 * (lo[0] + hi[0])
        f, d = phi(t)
        if not math.isfinite(f) or f > f0 + C1 * t * d0 or f >= lo[1]:
            hi = (t, f, d)
        else:
            if abs(d) <= -C2 * d0:
                return t
            if d * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = (t, f, d)
        if abs(hi[0] - lo[0]) <= 1e-12 * max(1.0, abs(lo[0])):
            break
    return lo[0] if lo[0] > 0 else None


def _search(phi: _Line, f0: float, d0: float, t: float, evals: int = 25) -> float | None:
    """A strong-Wolfe step along ``d`` from ``t`` (None: no decrease found)."""
    prev = (0.0, f0, d0)
    for i in range(evals):
        f, d = phi(t)
        if not math.isfinite(f) or f > f0 + C1 * t * d0 or (i > 0 and f >= prev[1]):
            return _zoom(phi, f0, d0, prev, (t, f, d), evals - i - 1)
        if abs(d) <= -C2 * d0:
            return t
        if d >= 0:
            return _zoom(phi, f0, d0, (t, f, d), prev, evals - i - 1)
        prev, t = (t, f, d), 2.0 * t
    return prev[0] if prev[0] > 0 else None


def _direction(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``−H g`` for the L-BFGS inverse-Hessian model of the pairs ``S``, ``Y`` (rows, oldest
    first), in the compact form of Byrd, Nocedal and Schnabel (1994): a handful of small
    matrix products instead of the two-loop recursion's two scalar products per pair."""
    if S.shape[0] == 0:
        return -g
    SY = S @ Y.T
    R = torch.triu(SY)
    gamma = SY[-1, -1] / (Y[-1] @ Y[-1])
    a, b = S @ g, Y @ g
    p = torch.linalg.solve_triangular(R, a[:, None], upper=True)[:, 0]
    inner = torch.diagonal(SY) * p + gamma * (Y @ (Y.T @ p)) - gamma * b
    u = torch.linalg.solve_triangular(R.T, inner[:, None], upper=False)[:, 0]
    return -(gamma * g + S.T @ u - gamma * (Y.T @ p))


def lbfgs(fg: FG, x: torch.Tensor, max_iter: int, history: int = 20,
          callback: Callable[[torch.Tensor, float], bool] | None = None, step: float = 1.0
          ) -> tuple[torch.Tensor, str]:
    """Minimise ``f`` from ``x`` (``fg(x) = (f(x), ∇f(x))``); ``callback(x, f)`` after each
    iteration may return True to stop; ``step`` is each line search's first trial step (the
    first search scales it by ``1/‖∇f‖₁`` where that is smaller). Returns the last point and
    why it stopped: ``"max_iter"``, ``"callback"`` or ``"converged"`` (no descent step
    left)."""
    f, g = fg(x)
    empty = x.new_zeros((0, x.numel()))
    S, Y = empty, empty
    for _ in range(max_iter):
        q = _direction(g, S, Y)
        d0 = float(g @ q)
        if not d0 < 0:  # lost descent (rounding): restart from steepest descent
            S, Y, q, d0 = empty, empty, -g, -float(g @ g)
            if d0 == 0:
                return x, "converged"
        t0 = step * (1.0 if S.shape[0] else min(1.0, 1.0 / max(float(g.abs().sum()), 1e-300)))
        phi = _Line(fg, x, q)
        t = _search(phi, f, d0, t0)
        if t is None:
            if not S.shape[0]:
                return x, "converged"
            S, Y = empty, empty
            continue
        f_new, g_new = phi.seen[t]
        x_new = x + t * q
        s, y = x_new - x, g_new - g
        if float(s @ y) > 1e-10 * float(y @ y):
            S = torch.cat([S[-history + 1:] if history > 1 else S[:0], s[None]])
            Y = torch.cat([Y[-history + 1:] if history > 1 else Y[:0], y[None]])
        x, f, g = x_new, f_new, g_new
        if callback is not None and callback(x, f):
            return x, "callback"
        if not bool((s != 0).any()):
            return x, "converged"
    return x, "max_iter"


class Adam:
    """Adam on a flat parameter vector: ``step(x, g)`` returns the next ``x``."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def step(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.betas
        if self.m is None or self.v is None:
            self.m, self.v = torch.zeros_like(x), torch.zeros_like(x)
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * g
        self.v = b2 * self.v + (1 - b2) * g * g
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return x - self.lr * m_hat / (v_hat.sqrt() + self.eps)
