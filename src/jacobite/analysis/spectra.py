"""Matrix-free spectra of a Jacobian: norms, top singular triplets, conditioning, log|det|.

Each function takes ``f_or_operator`` as a :class:`~jacobite.operators.JacobianOperator` (e.g.
from :func:`jacobite.linearize`), a 2-D tensor, or a callable ``f`` with the point ``x`` — then
only JVPs and VJPs of ``f`` at ``x`` are used (one cached VJP), never the dense ``J``; memory
is O(m + n) per Lanczos step.

* :func:`top_singular` / :func:`spectral_norm` — Golub–Kahan–Lanczos bidiagonalisation with
  full reorthogonalisation (float64 vectors); to 1e-6 relative where power iteration stalls;
* :func:`frobenius_norm` — Hutchinson random projections with a confidence interval, exact
  with ``nproj=-1``;
* :func:`condition_number` — ``σ_max / σ_min``, exact (dense) where that is the cheaper method;
* :func:`logabsdet` — exact from structure (diagonal, triangular, DPLR, sparse, dense …) or a
  dense LU where that is cheaper, else stochastic Lanczos quadrature with an error bar.

"Cheaper" is a cost rule, not a size threshold; each function's doc states it.

Values are float64 tensors, differentiable (autograd, ``torch.func.grad`` / ``jacrev`` /
``jacfwd``) in a tracked matrix, point ``x`` or tensor that ``f`` or an operator closes over: a
singular value is recomputed from its converged, constant vectors as ``σ = uᵀ J v`` in the
caller's graph (derivative ``uᵀ dJ v``, exact for a simple σ; a second derivative raises a
typed error); exact norms and ``log|det|`` come from products kept in the graph; a Hutchinson
estimate is differentiated as the estimator (same probes). Singular vectors and error bars are
constants; SLQ refuses a tracked input. Under ``torch.func.vmap`` a typed error names
``jacobite.batch_jacobian`` + ``torch.linalg``; under ``torch.compile`` Lanczos runs eagerly.

>>> import torch
>>> from jacobite.analysis.spectra import spectral_norm, frobenius_norm
>>> A = torch.tensor([[3.0, 0.0], [4.0, 5.0]], dtype=torch.float64, requires_grad=True)
>>> round(spectral_norm(A).item(), 10), round(frobenius_norm(A, nproj=-1).value.item(), 10)
(6.7082039325, 7.0710678119)
>>> torch.autograd.grad(frobenius_norm(A, nproj=-1).value, A)[0] * 50 ** 0.5  # A / ‖A‖_F
tensor([[3., 0.],
        [4., 5.]], dtype=torch.float64)
>>> float(spectral_norm(torch.sin, torch.zeros(4, dtype=torch.float64)))
1.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from .. import _validate, config
from .._compile import eager_under_compile
from .._modules import keeps_state
from ..errors import (
    InvalidOptionError,
    JacobiteWarning,
    NotSquareError,
    UnsupportedOperationError,
)
from ..operators.linalg import slogdet_dense
from ._exact import choose_exact, dense, ensure_formable, structured
from ._lanczos import F64, Products, bidiagonalize, draw
from ._once import once
from ._scale import exponent_of

__all__ = [
    "FrobeniusEstimate", "LogDetEstimate", "SingularTriplets", "condition_number",
    "frobenius_norm", "logabsdet", "spectral_norm", "top_singular",
]

#: The probe vectors of a Hutchinson estimate.
Distribution = Literal["rademacher", "gaussian"]
#: How :func:`logabsdet` works: a dense factorisation, stochastic Lanczos quadrature, or the
#: choice by cost.
LogdetMethod = Literal["auto", "exact", "slq"]


@dataclass(frozen=True)
class SingularTriplets:
    """The top-k singular values (decreasing, float64, on ``J``'s device) and vectors of ``J``.

    ``right`` ``(k, n)`` and ``left`` ``(k, m)`` hold unit vectors as rows with
    ``J right_i = values_i · left_i``; ``residuals`` are ``‖Jᵀ left_i − values_i right_i‖``.
    ``values`` is differentiable in a tracked input (``left_iᵀ J right_i`` in its graph);
    the vectors are constants.
    """

    values: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    residuals: torch.Tensor
    iterations: int
    converged: bool


@dataclass(frozen=True)
class FrobeniusEstimate:
    """``‖J‖_F`` estimated from ``nproj`` random projections (or exact), with an interval.

    ``ci`` is a ``confidence`` interval on ``value`` (Student t on the squared samples);
    ``(0, inf)`` with a single projection, ``(value, value)`` when ``exact``. ``value`` and
    ``squared`` are 0-d float64 tensors, differentiable in a tracked input; they are computed
    on ``J`` scaled by a power of two, so ``value`` stays finite for entries near ``1e±300``
    while ``squared`` (and ``stderr``, of the squares) is ``inf`` past float64's range.
    """

    value: torch.Tensor
    squared: torch.Tensor
    stderr: float
    ci: tuple[float, float]
    nproj: int
    exact: bool
    confidence: float = 0.95


@dataclass(frozen=True)
class LogDetEstimate:
    """``log|det J|``: exact (``stderr == 0``) or a stochastic Lanczos quadrature estimate.

    ``sign`` is ``±1`` (``0`` if singular) when known, ``nan`` for an estimate. ``value`` is a
    0-d float64 tensor, differentiable in a tracked input when exact.
    """

    value: torch.Tensor
    sign: float
    stderr: float
    ci: tuple[float, float]
    exact: bool
    method: str


@keeps_state
def top_singular(f_or_operator: Any, x: torch.Tensor | None = None, k: int = 1, *,
                 tol: float = 1e-10, max_iter: int | None = None,
                 seed: int | None = 0, maxiter: int | None = None) -> SingularTriplets:
    """The ``k`` largest singular values and vectors of ``J`` by Golub–Kahan–Lanczos.

    ``tol`` is the relative residual ``‖Jᵀu − σv‖ / σ_1`` at which a triplet counts as
    converged (floored at 50 ulps of the products' dtype); values are then accurate to about
    ``tol² σ_1 / gap``. ``max_iter`` (default ``min(m, n, 300 + 10k)``) bounds the Lanczos
    steps; not converging emits a :class:`~jacobite.errors.JacobiteWarning`. ``seed`` picks
    the start vector: an int for the same vector on every call, ``None`` for torch's global
    generator. ``maxiter`` is the deprecated spelling of ``max_iter``.

    >>> import torch
    >>> r = top_singular(torch.diag(torch.tensor([1.0, 5.0, 2.0], dtype=torch.float64)), k=2)
    >>> r.values.tolist(), r.right.abs().argmax(dim=1).tolist()
    ([5.0, 2.0], [1, 2])
    """
    max_iter = _validate.renamed("maxiter", maxiter, "max_iter", max_iter)
    k = _validate.positive_int(k, "k")
    tol = _validate.relative_tolerance(tol, "tol", example="1e-10")
    max_iter = _validate.max_iter(max_iter)
    seed = _validate.seed(seed)
    out, worst = _top(f_or_operator, x, k, tol, max_iter, seed)
    if not out.converged:
        warnings.warn(f"top_singular: not converged after {out.iterations} Lanczos steps (worst "
                      f"relative residual {worst:.1e}); raise max_iter or loosen tol",
                      JacobiteWarning, stacklevel=2)
    return out


@eager_under_compile  # Lanczos reads values into Python: it runs eagerly under compile
def _top(obj: Any, x: torch.Tensor | None, k: int, tol: float, max_iter: int | None,
         seed: int | None) -> tuple[SingularTriplets, float]:
    """The triplets and the worst relative residual (``values`` in the caller's graph)."""
    P = Products.build(obj, x)
    if k > min(P.m, P.n):
        raise InvalidOptionError(f"k must be at most min(m, n) = {min(P.m, P.n)}, got {k}")
    if max_iter is None:
        max_iter = min(P.m, P.n, 300 + 10 * k)
    elif max_iter < k:
        raise InvalidOptionError(f"max_iter must be at least k = {k}, got {max_iter}")
    r = bidiagonalize(P, k=k, tol=tol, max_iter=max_iter, seed=seed)
    worst = 0.0 if r.converged else float(np.max(r.residuals[:k]) / r.values[0])
    idx = np.arange(k)
    left, right = r.left(idx), r.right(idx)
    values = torch.as_tensor(r.values[:k].copy(), dtype=F64, device=P.device)
    if P.tracked:
        values = _rayleigh(P, left, right)
    return SingularTriplets(values=values, left=left, right=right,
                            residuals=torch.as_tensor(r.residuals[:k].copy(), dtype=F64),
                            iterations=r.iterations, converged=r.converged), worst


def _rayleigh(P: Products, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``σ_i = left_iᵀ J right_i`` from products in the caller's graph (vectors constant)."""
    assert P.grmv is not None
    return once(torch.stack([P.grmv(u) @ v for u, v in zip(left, right, strict=True)]),
                _SECOND)


_SECOND = ("singular values from Lanczos are differentiable once (a second derivative would "
           "miss the singular vectors' own derivatives); differentiate torch.linalg.svdvals of "
           "the dense jacobite.jacobian(f, x) instead")


@keeps_state
def spectral_norm(f_or_operator: Any, x: torch.Tensor | None = None, *, tol: float = 1e-10,
                  max_iter: int | None = None, seed: int | None = 0,
                  maxiter: int | None = None, batched_model: bool = False) -> torch.Tensor:
    """``‖J‖_2 = σ_max(J)`` without forming ``J``, as a 0-d float64 tensor, differentiable in a
    tracked input (see the module doc; :func:`top_singular` for the options).

    ``f`` is called on ``x`` as given. With ``batched_model=True``, ``x`` is ONE sample of a
    model that expects a batch (BatchNorm, ``nn.Flatten``): ``f`` is called on
    ``x.unsqueeze(0)`` and dimension 0 is removed from its output, so ``J`` is the sample's
    Jacobian; a tuple or dict output counts as the concatenation of its flattened tensors. A
    module with Dropout or BatchNorm in training mode is refused
    (:class:`~jacobite.errors.ModuleStateError`, call ``model.eval()``); an integer ``x``
    (token ids) raises :class:`~jacobite.errors.DtypeError`.

    >>> import torch
    >>> W = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    >>> abs(float(spectral_norm(lambda v: W @ v, torch.ones(2, dtype=torch.float64)))
    ...     - float(torch.linalg.matrix_norm(W, ord=2))) < 1e-12
    True
    """
    from ..dense._batch_of_one import at_sample, transformable_kernels

    max_iter = _validate.renamed("maxiter", maxiter, "max_iter", max_iter)
    f_or_operator = at_sample(f_or_operator, x, batched_model, "spectral_norm")
    with transformable_kernels():
        return top_singular(f_or_operator, x, 1, tol=tol, max_iter=max_iter,
                            seed=seed).values[0]


def _check_confidence(confidence: Any) -> float:
    confidence = _validate.positive_float(confidence, "confidence")
    if confidence >= 1:
        raise InvalidOptionError(f"confidence must lie in (0, 1), got {confidence!r}; "
                                 f"e.g. confidence=0.95")
    return confidence


def _sample_ci(samples: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """``(mean, stderr, half-width)`` of a Student-t interval on the mean of ``samples``."""
    mean = float(samples.mean())
    if len(samples) < 2:
        return mean, math.inf, math.inf
    se = float(samples.std(ddof=1) / math.sqrt(len(samples)))
    import scipy.stats  # loaded on use: about 0.3 s

    return mean, se, float(scipy.stats.t.ppf(0.5 + confidence / 2, len(samples) - 1)) * se


@keeps_state
def frobenius_norm(f_or_operator: Any, x: torch.Tensor | None = None, nproj: int = 16,
                   seed: int | None = None, *, distribution: Distribution = "rademacher",
                   confidence: float = 0.95) -> FrobeniusEstimate:
    """``‖J‖_F`` by Hutchinson projections: ``‖J‖²_F = E‖J v‖² = E‖Jᵀ u‖²``.

    Each projection is one VJP (when ``m ≤ n``) or one JVP, with ``v`` Rademacher or Gaussian
    (``distribution``); ``nproj=-1`` sums over all basis vectors of the smaller side (exact).
    ``seed``: an int fixes the probes (the same on every call), ``None`` draws them from
    torch's global generator. Differentiable in a tracked input: exact with ``nproj=-1``, and
    otherwise the derivative of the estimator with the same probes.

    >>> import torch
    >>> A = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    >>> e = frobenius_norm(A, nproj=-1)
    >>> e.exact, abs(float(e.value) - float(A.norm())) < 1e-12
    (True, True)
    >>> e = frobenius_norm(A, nproj=200, seed=0)
    >>> e.ci[0] <= float(A.norm()) <= e.ci[1]
    True
    """
    _validate.choice(distribution, "distribution", ("rademacher", "gaussian"))
    confidence = _check_confidence(confidence)
    if nproj != -1 or isinstance(nproj, bool):
        nproj = _validate.positive_int(nproj, "nproj (or -1 for the exact norm)")
    gen = _validate.generator(seed)
    P = Products.build(f_or_operator, x)
    reverse, g = P.m <= P.n, P.tracked
    size = P.m if reverse else P.n
    if nproj == -1:
        eye = torch.eye(size, dtype=F64, device=P.device)
        M = P.rmm(eye, g) if reverse else P.mm(eye, g)
        c = 2.0 ** -exponent_of(M)  # ‖J‖_F = ‖c J‖_F / c without overflow or underflow
        total_c = (M * c).square().sum()
        v = math.sqrt(float(total_c.detach())) / c
        return FrobeniusEstimate(total_c.sqrt() / c, total_c / c / c, 0.0, (v, v), size, True,
                                 confidence)
    prod = (P.grmv if reverse else P.gmv) if g else (P.rmv if reverse else P.mv)
    assert prod is not None
    sq, c = [], 1.0
    for i in range(nproj):
        p = prod(draw(size, gen, distribution).to(P.device))
        if i == 0:
            c = 2.0 ** -exponent_of(p)  # the samples of ‖c J w‖², unscaled at the end
        sq.append((p * c).square().sum())
    samples = np.array([float(t.detach()) for t in sq])
    mean, se, half = _sample_ci(samples, confidence)
    lo, hi = max(mean - half, 0.0), mean + half
    squared = torch.stack(sq).mean()
    return FrobeniusEstimate(squared.clamp_min(0).sqrt() / c, squared / c / c, se / c / c,
                             (math.sqrt(lo) / c, math.sqrt(hi) / c), nproj, False, confidence)


@keeps_state
def condition_number(f_or_operator: Any, x: torch.Tensor | None = None, *,
                     exact: bool | None = None, tol: float = 1e-8,
                     max_iter: int | None = None, seed: int | None = 0,
                     memory_budget: int | str | None = None,
                     maxiter: int | None = None) -> torch.Tensor:
    """``σ_max / σ_min`` of ``J`` (``σ_min`` the ``min(m, n)``-th singular value), a 0-d
    float64 tensor differentiable in a tracked input (see the module doc).

    ``exact=None`` ("auto") takes the singular values of the dense ``J`` when that is the
    cheaper method: ``J`` and its factorisation (``16 m n`` bytes) fit ``memory_budget`` (the
    thread's budget when ``None``), and ``J`` is a held matrix (tensor, ``DenseOperator``) or
    forming it from ``min(m, n)`` products costs no more than the ``2 · min(m, n, 1000)``
    products Lanczos may need to reach ``σ_min``. Otherwise Lanczos runs until both ends
    converge (``max_iter`` default ``min(m, n, 1000)``); its ``σ_min`` is an upper bound, so
    an unconverged estimate (warned) is a lower bound. ``exact=True`` forms ``J`` within the
    budget (else :class:`~jacobite.errors.JacobianTooLarge`). A singular ``J`` gives ``inf``.

    >>> import torch
    >>> float(condition_number(torch.diag(torch.tensor([4.0, 2.0, 0.5], dtype=torch.float64))))
    8.0
    """
    max_iter = _validate.max_iter(_validate.renamed("maxiter", maxiter, "max_iter", max_iter))
    tol = _validate.relative_tolerance(tol, "tol", example="1e-10")
    if exact is not None:
        exact = _validate.boolean(exact, "exact")
    seed = _validate.seed(seed)
    budget = _validate.memory_budget(memory_budget)
    P = Products.build(f_or_operator, x)
    small = min(P.m, P.n)
    steps = min(small, 1000) if max_iter is None else max_iter
    if exact:
        ensure_formable(P, f_or_operator, budget, "condition_number")
    if exact or (exact is None and choose_exact(P, f_or_operator, what="condition_number",
                                                iter_products=2 * min(small, 1000),
                                                budget=budget)):
        s = torch.linalg.svdvals(dense(P, f_or_operator))
        return s.new_tensor(math.inf) if float(s[-1].detach()) == 0 else s[0] / s[-1]
    r = bidiagonalize(P, k=1, tol=tol, max_iter=steps, seed=seed, which="both")
    if not r.converged:
        warnings.warn(f"condition_number: the smallest singular value did not converge in "
                      f"{r.iterations} steps; the result is a lower bound. Raise max_iter or "
                      f"pass exact=True", JacobiteWarning, stacklevel=2)
    if r.values[-1] == 0:
        return torch.tensor(math.inf, dtype=F64, device=P.device)
    if not P.tracked:
        return torch.tensor(r.values[0] / r.values[-1], dtype=F64, device=P.device)
    ends = np.array([0, len(r.values) - 1])
    s = _rayleigh(P, r.left(ends), r.right(ends))
    return s[0] / s[1]


@keeps_state
def logabsdet(f_or_operator: Any, x: torch.Tensor | None = None, *, method: LogdetMethod = "auto",
              nprobe: int = 16, steps: int = 40, seed: int | None = 0,
              confidence: float = 0.95,
              memory_budget: int | str | None = None) -> LogDetEstimate:
    """``log|det J|`` of a square ``J``: exact where cheap, else an estimate with an error bar.

    ``method``: ``"exact"`` (the operator's structure-aware ``slogdet`` — diagonal, triangular,
    DPLR, block, sparse LU — or a dense factorisation), ``"slq"`` (stochastic Lanczos
    quadrature: ``½ E[zᵀ log(JᵀJ) z]`` over ``nprobe`` Rademacher probes, ``steps`` Golub–Kahan
    steps each) or ``"auto"``. ``"auto"`` is exact for structured operators, whose ``slogdet``
    is cheap, and otherwise by cost: a dense LU when ``J`` and its factorisation (``16 n²``
    bytes) fit ``memory_budget`` (the thread's budget when ``None``) and ``J`` is a held matrix
    (a tensor) or forming it takes no more than the ``2 · nprobe · steps`` products SLQ would
    spend; else SLQ. The exact value comes with its sign (``0`` and ``-inf`` for a singular
    ``J``); an SLQ estimate has sign ``nan``. ``method="exact"`` forms ``J`` within the budget
    (else :class:`~jacobite.errors.JacobianTooLarge`).
    ``seed``: an int gives the same probes on every call, ``None`` draws them from torch's
    global generator. The exact value is differentiable in a tracked input; SLQ then raises
    :class:`~jacobite.errors.UnsupportedOperationError` (use ``method="exact"``).

    >>> import torch
    >>> from jacobite.operators import DiagonalOperator
    >>> r = logabsdet(DiagonalOperator(torch.tensor([2.0, -0.5, 3.0], dtype=torch.float64)))
    >>> round(float(r.value), 12), r.sign, r.exact
    (1.098612288668, -1.0, True)
    """
    _validate.choice(method, "method", ("auto", "exact", "slq"))
    nprobe, steps = _validate.positive_int(nprobe, "nprobe"), _validate.positive_int(steps, "steps")
    confidence = _check_confidence(confidence)
    gen = _validate.generator(seed)
    budget = _validate.memory_budget(memory_budget)
    P = Products.build(f_or_operator, x)
    if P.m != P.n:
        raise NotSquareError(f"logabsdet needs a square Jacobian, got shape ({P.m}, {P.n}); "
                             f"use top_singular or frobenius_norm for rectangular ones")
    op = P.square_op
    cheap = op is not None and structured(op)
    if method == "exact" or (method == "auto" and (cheap or choose_exact(
            P, f_or_operator, what="logabsdet", iter_products=2 * nprobe * steps,
            budget=budget))):
        if op is not None and cheap:
            with config.memory_budget(budget):
                sign, lad = op.slogdet()
            how = f"{type(op).__name__}.slogdet"
        else:
            if method == "exact":
                ensure_formable(P, f_or_operator, budget, "logabsdet")
            sign, lad = slogdet_dense(dense(P, f_or_operator))
            how = "dense"
        lad = torch.as_tensor(lad).to(F64)
        v = float(lad.detach())
        sign_v = float(sign.detach()) if isinstance(sign, torch.Tensor) else float(sign)
        return LogDetEstimate(lad, sign_v, 0.0, (v, v), True, how)
    if P.tracked:
        raise UnsupportedOperationError(
            "the stochastic Lanczos quadrature estimate of log|det J| is not differentiable, and "
            "the input is tracked by autograd or torch.func; pass method='exact' (dense or "
            "structure-aware, differentiable), or detach the input")
    samples = np.empty(nprobe)
    for i in range(nprobe):
        z = draw(P.n, gen, "rademacher")
        r = bidiagonalize(P, k=1, tol=1e-14, max_iter=steps, start=z.to(P.device), stop=False,
                          seed=None if seed is None else seed + i + 1)
        with np.errstate(divide="ignore"):
            logs = 2 * np.log(r.values)
        samples[i] = P.n * float(np.sum(r.X[0, :] ** 2 * logs))  # ‖z‖² = n
    mean, se, half = _sample_ci(0.5 * samples, confidence)
    return LogDetEstimate(torch.tensor(mean, dtype=F64, device=P.device), math.nan, se,
                          (mean - half, mean + half), False, "slq")
