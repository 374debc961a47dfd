"""The spectral density of a symmetric operator by stochastic Lanczos quadrature (SLQ).

For a Rademacher probe ``z`` (``‖z‖² = n``), ``steps`` Lanczos steps from ``z / ‖z‖`` give a
tridiagonal ``T`` whose eigenvalues ``θ_i`` (Ritz nodes) and squared first eigenvector
components ``w_i`` (weights, summing to 1) make a Gauss quadrature rule for the measure
``Σ_j (q_jᵀ z)² / n · δ(t − λ_j)``: ``zᵀ f(A) z ≈ n Σ_i w_i f(θ_i)``, exact for polynomials of
degree below ``2 · steps``. Averaged over probes, the rules estimate the spectral density
``(1/n) Σ_j δ(t − λ_j)`` and the trace ``tr f(A)`` (Hutchinson's estimator of ``zᵀ f(A) z``),
with an error bar from the spread over probes.

All probes run together: each Lanczos step is one :meth:`~jacobite.operators.JacobianOperator.mm`
with one column per probe (in chunks of probes that fit the memory budget), with full
reorthogonalisation in float64.

>>> import torch
>>> from jacobite.analysis import spectral_density
>>> A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
>>> sd = spectral_density(A, probes=8, steps=10, seed=0)
>>> round(sd.trace(torch.square).value, 6), float((torch.arange(1.0, 11.0) ** 2).sum())
(385.0, 385.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _validate
from .._compile import eager_under_compile
from .._modules import keeps_state
from ..dense._saved import chunk
from ..errors import ArgumentTypeError, ShapeError
from ._lanczos import F64, draw
from ._lanczos_sym import SymProducts, orthogonalize, scale_of, symmetric_products

__all__ = ["SpectralDensity", "TraceEstimate", "spectral_density"]


@dataclass(frozen=True)
class TraceEstimate:
    """``tr f(A)`` estimated from the probes: ``value``, its standard error ``stderr`` (the
    probes' sample standard deviation over ``√probes``; ``inf`` for a single probe) and the
    per-probe ``samples`` ``n Σ_i w_i f(θ_i)``."""

    value: float
    stderr: float
    samples: tuple[float, ...]


@dataclass(frozen=True)
class SpectralDensity:
    """Per-probe Gauss quadrature rules of a symmetric ``(n, n)`` operator's spectrum.

    ``nodes`` and ``weights`` are ``(probes, steps)`` float64 tensors (CPU): Ritz values and
    squared first components of the Lanczos eigenvectors; each row of ``weights`` sums to 1.
    A probe whose Krylov space closed early (an invariant subspace, always when
    ``steps ≥ n``) has exact nodes and zero weights after them. ``matvecs`` counts products.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    n: int
    matvecs: int

    def density(self, grid: Any, sigma: float) -> torch.Tensor:
        """The density ``(1/n) Σ_j δ(t − λ_j)`` broadened by a Gaussian of width ``sigma``,
        averaged over the probes, at the points ``grid``; it integrates to 1 (multiply by
        ``n`` for eigenvalues per unit of ``t``).

        >>> import torch
        >>> sd = spectral_density(torch.eye(3, dtype=torch.float64), probes=2, steps=3)
        >>> round(float(sd.density(torch.tensor([1.0]), 0.5)[0]), 6)  # 1 / (0.5 √(2π))
        0.797885
        """
        sigma = _validate.positive_float(sigma, "sigma")
        t = torch.as_tensor(grid, dtype=F64)
        if t.ndim > 1:
            raise ShapeError(f"grid must be a 1-D sequence of points, got shape "
                             f"{tuple(t.shape)}; flatten it first")
        z = (t.reshape(-1, 1, 1) - self.nodes) / sigma
        bumps = torch.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
        return (bumps * self.weights).sum(-1).mean(-1)

    def trace(self, f: Callable[[torch.Tensor], torch.Tensor]) -> TraceEstimate:
        """``tr f(A)`` for ``f`` applied elementwise to a float64 tensor of nodes (e.g.
        ``torch.log1p`` for ``log det(I + A)``, ``torch.square`` for ``‖A‖_F²``), with the
        standard error from the spread over probes.

        >>> import math, torch
        >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
        >>> sd = spectral_density(A, probes=4, steps=3)  # 3 steps: exact for a 3 × 3 matrix
        >>> round(sd.trace(torch.log).value, 10), round(math.log(6.0), 10)
        (1.7917594692, 1.7917594692)
        """
        _validate.callable_(f, "f")
        fx = f(self.nodes)
        if not isinstance(fx, torch.Tensor) or fx.shape != self.nodes.shape:
            raise ArgumentTypeError(f"f must map a float64 tensor to a tensor of the same "
                                    f"shape, elementwise (e.g. torch.log1p), got "
                                    f"{type(fx).__name__}")
        terms = torch.where(self.weights > 0, self.weights * fx.to(F64), 0.0)
        s = (self.n * terms.sum(-1)).numpy()
        se = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else math.inf
        return TraceEstimate(float(s.mean()), se, tuple(float(v) for v in s))


@keeps_state
def spectral_density(operator: Any, *, probes: int = 16, steps: int = 32,
                     seed: int | None = 0, assume_symmetric: bool = False) -> SpectralDensity:
    """Stochastic Lanczos quadrature of a symmetric operator: per Rademacher probe, ``steps``
    Lanczos steps (``min(steps, n)``) give Ritz nodes and weights (see the module doc).

    ``operator``: as for :func:`~jacobite.analysis.eigenvalues` (tagged ``symmetric``, a
    symmetric 2-D tensor, or ``assume_symmetric=True``). ``probes · steps`` products in all,
    ``steps`` calls of ``mm`` with one column per probe. ``seed``: an int gives the same probes
    on every call, ``None`` draws from torch's global generator. The result's
    :meth:`~SpectralDensity.density` and :meth:`~SpectralDensity.trace` give the broadened
    spectrum and ``tr f(A)`` with an error bar; Gauss quadrature is exact for polynomials of
    degree below ``2 · steps`` (``tr A`` and ``tr A²`` carry the probe error alone), and the
    nodes approach the extreme eigenvalues first.

    >>> import torch
    >>> from jacobite.analysis import spectral_density
    >>> g = torch.Generator().manual_seed(0)
    >>> Q = torch.linalg.qr(torch.randn(200, 200, dtype=torch.float64, generator=g))[0]
    >>> lam = torch.linspace(0.0, 1.0, 200, dtype=torch.float64)
    >>> A = Q @ torch.diag(lam) @ Q.T
    >>> est = spectral_density(A, probes=32, steps=20, seed=0).trace(torch.log1p)  # log det(I+A)
    >>> abs(est.value - float(torch.log1p(lam).sum())) < 4 * est.stderr
    True
    """
    probes = _validate.positive_int(probes, "probes")
    steps = _validate.positive_int(steps, "steps")
    seed = _validate.seed(seed)
    assume_symmetric = _validate.boolean(assume_symmetric, "assume_symmetric")
    return _run(operator, probes, steps, seed, assume_symmetric)


@eager_under_compile  # Lanczos reads values into Python: eagerly under torch.compile
def _run(obj: Any, probes: int, steps: int, seed: int | None,
         assume_symmetric: bool) -> SpectralDensity:
    P = symmetric_products(obj, assume_symmetric)
    n = P.n
    s = min(steps, n)
    gen = _validate.generator(seed)
    Z = torch.stack([draw(n, gen, "rademacher") for _ in range(probes)]).to(P.device)
    per = chunk(probes, 8 * n * (s + 3))  # probes per pass: a probe's basis and products
    nodes, weights = [], []
    for i in range(0, probes, per):
        a, b = _lanczos_probes(P, Z[i: i + per] / math.sqrt(n), s)
        for alpha, beta in zip(a, b, strict=True):
            th, w = _gauss(alpha, beta, s)
            nodes.append(th * float(2.0 ** P.shift))
            weights.append(w)
    return SpectralDensity(torch.as_tensor(np.stack(nodes)), torch.as_tensor(np.stack(weights)),
                           n, P.used)


def _lanczos_probes(P: SymProducts, Q0: torch.Tensor, s: int
                    ) -> tuple[list[list[float]], list[list[float]]]:
    """``s`` Lanczos steps from each unit row of ``Q0`` ``(c, n)`` together (one ``mm`` per
    step), with full reorthogonalisation; a probe whose Krylov space closes stops (its lists
    end)."""
    c, n = Q0.shape
    Q = torch.empty(c, s + 1, n, dtype=F64, device=Q0.device)  # each probe's vectors as rows
    Q[:, 0] = Q0
    alive = torch.ones(c, dtype=torch.bool)
    alphas: list[list[float]] = [[] for _ in range(c)]
    betas: list[list[float]] = [[] for _ in range(c)]
    big = [0.0] * c
    for j in range(s):
        live = alive.nonzero().flatten().tolist()
        if not live:
            break
        X = torch.stack([Q[p, j] for p in live], dim=1)  # (n, c'): one mm for all
        W = P.products(X).to(F64)
        if P.used == len(live):  # the first products of the run fix the scale
            scale_of(P, W)
        W = (W * float(2.0 ** -P.shift)).T.contiguous()  # (c', n): a row per probe
        for col, p in enumerate(live):
            w, h = orthogonalize(W[col], Q[p, : j + 1])
            alphas[p].append(float(h[j]))
            beta = float(w.norm())
            big[p] = max(big[p], float(h.norm()), beta)
            if j + 1 == s or beta <= 1e3 * np.finfo(np.float64).eps * big[p]:
                if j + 1 < s:
                    alive[p] = False
                continue
            betas[p].append(beta)
            Q[p, j + 1] = w / beta
    return alphas, betas


def _gauss(alpha: list[float], beta: list[float], s: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the tridiagonal ``(alpha, beta)``, padded to ``s`` (the first node
    repeated, weight 0)."""
    T = np.diag(alpha) + np.diag(beta[: len(alpha) - 1], 1) + np.diag(beta[: len(alpha) - 1], -1)
    th, Y = np.linalg.eigh(T)
    w = Y[0] ** 2
    w = w / w.sum()
    pad = s - len(th)
    return (np.concatenate([th, np.full(pad, th[0])]),
            np.concatenate([w, np.zeros(pad)]))
