"""Critical points of a torch function: Newton's method on ∇f = 0 from one or many starts.

Each start runs ``x ← x − H⁺ ∇f`` (``H⁺`` the pseudo-inverse of the Hessian from
:func:`jacobite.hessian`, so singular Hessians do not stop it) until the step is negligible.
Unlike minimisation this converges to saddles and maxima too — every critical point near a
start. Converged points with ``‖∇f‖ <= tol`` are merged (relative distance ``1e-6``) and
classified by the eigenvalues of the Hessian.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import grad as _grad

from .. import _validate
from .._validate import ChunkSize
from ..dense import batch_jacobian
from ..dense import hessian as _hessian
from ..errors import (
    InvalidOptionError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from .classify import inertia, kind_of
from .result import CriticalPoint

__all__ = ["newton_critical_points", "starting_points"]

DT = torch.float64


def starting_points(x0: Any = None, box: Sequence[tuple[float, float]] | None = None, *,
                    n_starts: int = 16, seed: int | None = 0) -> torch.Tensor:
    """A ``(k, n)`` float64 tensor of starts: ``x0`` (one point or rows of points) or ``n_starts``
    scrambled-Sobol points in ``box`` (one ``(low, high)`` per variable), plus its centre.

    >>> starting_points([[0.0, 1.0], [2.0, 3.0]]).shape
    torch.Size([2, 2])
    >>> starting_points(box=[(-1, 1), (0, 2)], n_starts=4).shape
    torch.Size([5, 2])
    """
    if (x0 is None) == (box is None):
        raise InvalidOptionError("give exactly one of x0= (a start, or rows of starts) and "
                                 "box=[(low, high), ...] (one pair per variable)")
    if x0 is not None:
        x = torch.as_tensor(x0, dtype=DT).detach().clone()
        if x.ndim == 0:
            x = x.reshape(1)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.ndim != 2 or x.numel() == 0:
            raise ShapeError(f"x0 must be one point (n,) or starts (k, n); got shape "
                             f"{tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise NonFiniteInputError("x0 contains NaN or Inf; start from finite points")
        return x
    b = torch.as_tensor(box, dtype=DT)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] == 0:
        raise ShapeError(f"box must be [(low, high), ...], one pair per variable; got shape "
                         f"{tuple(b.shape)}")
    if not torch.isfinite(b).all() or not (b[:, 0] < b[:, 1]).all():
        raise InvalidOptionError("every box interval needs finite low < high")
    n_starts = _validate.positive_int(n_starts, "n_starts")
    seed = _validate.seed(seed)
    if seed is None:  # torch's global generator decides the scrambling
        seed = int(torch.randint(2**62, ()).item())
    sobol = torch.quasirandom.SobolEngine(b.shape[0], scramble=True, seed=seed)
    u = torch.cat([torch.full((1, b.shape[0]), 0.5, dtype=DT), sobol.draw(n_starts, dtype=DT)])
    return b[:, 0] + u * (b[:, 1] - b[:, 0])


def _scalar(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    out = f(x)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ShapeError("f must return a scalar (one-element tensor) for a 1-D point; got "
                         f"{getattr(out, 'shape', type(out).__name__)}")
    return out.reshape(())


class _Derivatives:
    """Gradients and Hessians of ``f`` at many points: one vectorised call (``vmap`` via
    :func:`jacobite.batch_jacobian`) when ``f`` allows it, one :func:`jacobite.hessian` per point
    otherwise (e.g. ``f`` calls ``.item()``)."""

    def __init__(self, f: Callable[..., Any]) -> None:
        self.f = f

        def scalar(v: torch.Tensor) -> torch.Tensor:
            return _scalar(f, v)

        name = getattr(f, "__qualname__", None) or type(f).__name__
        scalar.__name__ = scalar.__qualname__ = "f" if name == "<lambda>" else name
        self.g = _grad(scalar)
        self.vectorised = True

    def __call__(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chunk: ChunkSize = None if X.shape[1] <= 256 else "auto"
        if self.vectorised:
            try:
                return batch_jacobian(self.g, X, mode="forward", chunk_size=chunk,
                                      check_finite=False, return_value=True)
            except (RuntimeError, UnsupportedOperationError):
                self.vectorised = False
        G = torch.stack([self.g(x) for x in X])
        H = torch.stack([_hessian(self.f, x, chunk_size=chunk, check_finite=False) for x in X])
        return G, H


def _run(d: _Derivatives, X: torch.Tensor, max_iter: int,
         bounds: torch.Tensor | None) -> torch.Tensor:
    """Newton on ∇f = 0 from every row of ``X`` at once; rows that blow up become NaN."""
    X = X.clone()
    active = torch.ones(X.shape[0], dtype=torch.bool)
    for _ in range(max_iter):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        G, H = d(X[idx])
        ok = torch.isfinite(G).all(1) & torch.isfinite(H).flatten(1).all(1)
        step = torch.zeros_like(G)
        if ok.any():
            Hs = (H[ok] + H[ok].transpose(-1, -2)) / 2
            step[ok] = (torch.linalg.pinv(Hs, hermitian=True) @ G[ok].unsqueeze(-1)).squeeze(-1)
        Xn = X[idx] - step
        ok &= torch.isfinite(Xn).all(1)
        Xn[~ok] = float("nan")
        X[idx] = Xn
        done = ~ok | (step.norm(dim=1) <= 1e-12 * (1.0 + Xn.norm(dim=1)))
        if bounds is not None:  # left the box by more than its width: give this start up
            width = bounds[:, 1] - bounds[:, 0]
            done |= ((Xn < bounds[:, 0] - width) | (Xn > bounds[:, 1] + width)).any(1)
        active[idx[done]] = False
    return X


def newton_critical_points(f: Callable[[torch.Tensor], torch.Tensor], starts: torch.Tensor, *,
                           names: Sequence[str] | None = None,
                           box: Sequence[tuple[float, float]] | None = None, tol: float = 1e-8,
                           max_iter: int = 100, eig_tol: float = 1e-8) -> list[CriticalPoint]:
    """Distinct critical points Newton's method reaches from ``starts`` (rows), classified.

    ``f`` maps a 1-D float64 tensor of ``n`` variables to a scalar. With ``box``, points outside
    it are dropped.

    >>> import torch
    >>> f = lambda v: v[0] ** 3 - 3 * v[0] + v[1] ** 2
    >>> [p.kind for p in newton_critical_points(f, torch.tensor([[2.0, 1.0], [-2.0, 1.0]]))]
    ['saddle', 'minimum']
    """
    max_iter = _validate.positive_int(max_iter, "max_iter")
    tol = _validate.positive_float(tol, "tol")
    n = starts.shape[1]
    names = tuple(names) if names is not None else tuple(f"x{i}" for i in range(n))
    if len(names) != n:
        raise ShapeError(f"{len(names)} variable names for {n} coordinates; give one per "
                         "coordinate")
    _scalar(f, starts[0])
    d = _Derivatives(f)
    bounds = None if box is None else torch.as_tensor(box, dtype=DT)
    xs = _run(d, starts, max_iter, bounds)
    xs = xs[torch.isfinite(xs).all(1)]
    if bounds is not None:
        slack = 1e-9 * (bounds[:, 1] - bounds[:, 0])
        lo, hi = bounds[:, 0] - slack, bounds[:, 1] + slack
        xs = xs[((lo <= xs) & (xs <= hi)).all(1)]
    found: list[tuple[torch.Tensor, float]] = []
    if xs.shape[0]:
        G, _ = d(xs)
        for x, gn in zip(xs, G.norm(dim=1).tolist(), strict=True):
            if not gn <= tol:
                continue
            for i, (y, gy) in enumerate(found):
                if float((x - y).norm()) <= 1e-6 * (1.0 + float(y.norm())):
                    if gn < gy:
                        found[i] = (x, gn)
                    break
            else:
                found.append((x, gn))
    out = []
    for x, _ in sorted(found, key=lambda t: t[0].tolist()):
        H = _hessian(f, x, chunk_size=None if n <= 256 else "auto")
        H = (H + H.T) / 2
        kind = kind_of(*inertia(H, tol=eig_tol))
        point = dict(zip(names, x.tolist(), strict=True))
        out.append(CriticalPoint(point, kind, float(_scalar(f, x)), H,
                                 torch.linalg.eigvalsh(H), x, False, True))
    return out
