"""Stochastic estimators of per-sample ``log|det J_b|`` behind :func:`jacobite.logdet`.

* :func:`series` — Hutchinson or Hutch++ on ``tr log J = D log c + tr log(J / c)``, the second
  term by the power series ``Σ_{k≥1} (-1)^{k+1} tr((J/c − I)^k) / k`` of ``log(I + (J/c − I))``
  (residual flows), truncated after ``terms`` terms. It converges when every eigenvalue of
  ``J/c − I`` lies inside the unit disc; the truncation error is at most
  ``D · L^{K+1} / ((K + 1)(1 − L))`` for ``L = ‖J/c − I‖₂ < 1`` and ``K`` terms. The scale ``c``
  (per sample, :func:`scale`) comes from the Ritz values of a few Arnoldi steps on ``Jᵀ``: the
  power of ``2^{1/4}`` that puts them deepest inside the disc ``|λ/c − 1| < 1``, so ``J ≈ 3 I``
  or a scaled map converges as fast as one near ``I``; where no ``c`` does (an eigenvalue with
  a real part ≤ 0), ``c = 1`` and the series warns as it diverges.
  All samples and probes move together: one batched VJP of the whole batch per term.
* :func:`slq` — stochastic Lanczos quadrature of ``½ tr log(JᵀJ)``, the estimate of
  :func:`jacobite.analysis.logabsdet` run on all samples and probes together: one JVP and one
  VJP of the whole batch per Lanczos step.

Each takes Rademacher ``probes`` ``(P, B, D)`` (:func:`probes`) and returns
``(value (B,), stderr (B,))``; a slice of samples with its slice of probes gives the same
values, so the caller may split the batch to fit a memory budget.

>>> import math, torch
>>> x = torch.zeros(2, 3, dtype=torch.float64)
>>> Z = probes(4, x, torch.Generator().manual_seed(0))
>>> v, se = series(lambda z: 1.5 * z, x, Z, terms=60)
>>> [round(t, 8) for t in v.tolist()], [round(t, 12) for t in se.tolist()]   # 3 log 1.5
([1.21639532, 1.21639532], [0.0, 0.0])
>>> v, se = series(lambda z: 30.0 * z, x, Z, terms=20)   # far from I: c rescales it
>>> [round(t, 8) for t in v.tolist()], round(3 * math.log(30.0), 8)
([10.20359214, 10.20359214], 10.20359214)
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from collections.abc import Callable
from types import FrameType

import torch

from ..errors import JacobiteWarning, NotSquareError, ShapeError
from ._lanczos import F64, draw

__all__ = ["dof", "probes", "pullback_of", "scale", "series", "slq"]

Batched = Callable[[torch.Tensor], torch.Tensor]


def _outside() -> int:
    """The ``stacklevel`` of the first caller outside jacobite (the user's line)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(root):
        frame, level = frame.f_back, level + 1
    return level


def probes(count: int, like: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """``count`` Rademacher probes shaped ``(count, *like.shape)``, constants."""
    z = draw(count * like.numel(), gen, "rademacher")
    return z.to(dtype=like.dtype, device=like.device).reshape(count, *like.shape)


def _apply(pullback: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
           U: torch.Tensor) -> torch.Tensor:
    """``Jᵀ u`` per sample for a stack of batches ``U`` ``(P, B, D)``: vmapped, else a loop."""
    try:
        return torch.func.vmap(lambda u: pullback(u)[0])(U)
    except RuntimeError:
        return torch.stack([pullback(u)[0] for u in U])


def _log_apply(pullback: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], U: torch.Tensor,
               terms: int) -> tuple[torch.Tensor, float]:
    """``log(J)ᵀ U`` by the truncated series, and ``max ‖(J − I)ᵀ^K u‖ / ‖u‖`` over probes."""
    w, acc = U, torch.zeros_like(U)
    for k in range(1, terms + 1):
        w = _apply(pullback, w) - w
        acc = acc + ((-1.0) ** (k + 1) / k) * w
    ratio = (w.detach().flatten(2).norm(dim=-1) /
             U.detach().flatten(2).norm(dim=-1).clamp_min(1e-300)).max()
    return acc, float(ratio)


#: candidate scales ``2^{j/4}``, ``|j| ≤ 48``: ``c`` moves in steps of 19 % and is 1 exactly
#: where that is as good, and the value does not depend on ``c`` through ``x`` (a step function)
_SCALES = 2.0 ** (torch.arange(-48, 49, dtype=F64) / 4)


def scale(pullback: Callable[[torch.Tensor], tuple[torch.Tensor, ...]], x: torch.Tensor,
          steps: int = 10) -> torch.Tensor:
    """Per-sample ``c`` ``(B,)`` such that ``J/c − I`` has its Ritz values deepest inside the
    unit disc, from ``min(steps, D)`` Arnoldi steps on ``Jᵀ`` (one batched VJP each, float64,
    reorthogonalised twice) started at one fixed vector: ``c`` minimises
    ``max_θ |θ/c − 1|`` over the scales ``2^{j/4}``; ``1`` where even the best leaves a Ritz
    value on or outside the circle (no ``c > 0`` helps an eigenvalue with real part ≤ 0).
    A constant (no gradient): ``log det J = D log c + log det(J/c)`` holds for every ``c``.

    >>> import torch
    >>> x = torch.zeros(2, 3, dtype=torch.float64)
    >>> c = scale(pullback_of(lambda z: z * torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64),
    ...                       x)[1], x)
    >>> [round(t, 4) for t in c.tolist()]   # eigenvalues 2, 3, 4: c = 2^{7/4}, |λ/c − 1| ≤ 0.41
    [3.3636, 3.3636]
    """
    B, D = x.shape
    k = min(steps, D)
    start = torch.randn(D, generator=torch.Generator().manual_seed(0), dtype=F64)
    V = torch.zeros(k, B, D, dtype=F64, device=x.device)
    V[0] = (start / start.norm()).to(x.device)
    H = torch.zeros(B, k, k, dtype=F64, device=x.device)
    live = torch.ones(k, B, dtype=torch.bool, device=x.device)
    with torch.no_grad():
        for j in range(k):
            w = _apply(pullback, V[j: j + 1].to(x.dtype))[0].detach().to(F64)
            for _ in range(2):
                h = (V[: j + 1] * w).sum(-1)  # (j + 1, B)
                H[:, : j + 1, j] += h.T
                w = w - (h[..., None] * V[: j + 1]).sum(0)
            if j + 1 < k:
                norm = w.norm(dim=-1)
                size = H[:, : j + 1, : j + 1].abs().amax(dim=(1, 2))
                live[j + 1] = live[j] & (norm > 1e-10 * size)
                H[:, j + 1, j] = torch.where(live[j + 1], norm, 0.0)
                V[j + 1] = torch.where(live[j + 1, :, None], w / norm.clamp_min(1e-300)[:, None],
                                       0.0)
        # a lane whose Krylov space closed: its spare columns repeat a Ritz value it has
        diag = torch.diagonal(H, dim1=1, dim2=2)
        diag.copy_(torch.where(live.T, diag, H[:, :1, 0]))
        theta = torch.linalg.eigvals(H)  # (B, k)
        cand = _SCALES.to(x.device)
        worst = (theta[:, None, :] / cand[None, :, None] - 1).abs().amax(-1)  # (B, scales)
        best, at = worst.min(dim=-1)
        # prefer c = 1 unless another scale is clearly better (ties: the first minimum)
        one = worst[:, cand.numel() // 2]
        c = torch.where((best < 1) & (best < one - 1e-9), cand[at], 1.0)
        c = torch.where(torch.isfinite(best), c, 1.0)
    return c.to(x.dtype)


def dof(method: str, nprobe: int, D: int) -> int | None:
    """Degrees of freedom of the standard error of ``method`` (``"hutchinson"``, ``"hutch++"``
    or ``"slq"``) with ``nprobe`` probes in dimension ``D``: the probes behind its spread less
    one; ``None`` where there is no spread to count (Hutch++'s sketch spans ``R^D`` and the
    trace is exact, or a single probe).

    >>> dof("hutchinson", 16, 32), dof("hutch++", 16, 32), dof("hutch++", 12, 4), dof("slq", 8, 4)
    (15, 5, None, 7)
    """
    k = min(nprobe // 3, D) if method == "hutch++" else 0
    if method == "hutch++" and k == D:
        return None
    left = nprobe - 2 * k - 1
    return left if left > 0 else None


def pullback_of(f: Batched, x: torch.Tensor,
                ) -> tuple[torch.Tensor, Callable[[torch.Tensor], tuple[torch.Tensor, ...]]]:
    """``f(x)`` and its VJP, after checking that ``f`` maps ``(B, D)`` to ``(B, D)``."""
    res = torch.func.vjp(f, x)
    out, pullback = res[0], res[1]
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        cls = NotSquareError if isinstance(out, torch.Tensor) and out.ndim == 2 else ShapeError
        raise cls(f"logdet needs a square map of the batch (B, D) -> (B, D), got output "
                  f"{got} for input {tuple(x.shape)}; log|det| exists only for square "
                  f"Jacobians (use jacobite.analysis.top_singular for rectangular ones)")
    return out, pullback


def series(f: Batched, x: torch.Tensor, probes: torch.Tensor, *, terms: int,
           plus: bool = False, rescale: bool = True,
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson (``plus=False``) or Hutch++ (``plus=True``) on the log series, per sample.

    With ``rescale`` the series runs on ``J/c`` with ``c`` from :func:`scale` (at most 10 more
    batched VJPs) and ``D log c`` is added; without, ``c = 1``. Hutch++ spends a third of
    ``nprobe`` on a sketch ``Q`` of ``log(J/c)ᵀ`` (at most ``D`` columns), whose part of the
    trace is exact, and the rest on Hutchinson probes of the deflated remainder; its stderr
    comes from those probes alone (0 once ``Q`` spans ``R^D``). With fewer than 3 probes there
    is no sketch and it is Hutchinson's estimate. A :class:`~jacobite.errors.JacobiteWarning`
    says when the last term is above a tenth of its probe (raise ``terms``) or above the probe
    (the series diverges). The stderr has ``g − 1`` degrees of freedom for ``g`` Hutchinson
    probes (:func:`dof`): the mean of its square is the estimate's variance, but one value from
    few probes is rough, so use a Student t quantile for an interval. Differentiable in ``x``
    and in what ``f`` closes over, as the estimator with these probes.
    """
    raw = pullback_of(f, x)[1]
    c = scale(raw, x) if rescale else torch.ones(x.shape[0], dtype=x.dtype, device=x.device)

    def pullback(u: torch.Tensor) -> tuple[torch.Tensor, ...]:  # (J / c)ᵀ u
        return (raw(u)[0] / c[:, None],)

    D = x.shape[-1]
    shift = D * torch.log(c)
    nprobe = probes.shape[0]
    k = min(nprobe // 3, D) if plus else 0
    exact_part = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    worst = 0.0
    Q = None
    if k:
        S = probes[:k]
        AS, worst = _log_apply(pullback, S, terms)
        Q = torch.linalg.qr(AS.permute(1, 2, 0)).Q  # (B, D, k) per-sample orthonormal basis
        Qs = Q.permute(2, 0, 1)  # (k, B, D)
        AQ, w = _log_apply(pullback, Qs, terms)
        worst = max(worst, w)
        exact_part = (Qs * AQ).sum(dim=(0, 2))
    g = nprobe - 2 * k
    if Q is not None and k == D:  # the sketch spans everything: the trace is exact
        return shift + exact_part, torch.zeros_like(exact_part)
    G = probes[k: k + g]
    if Q is not None:  # deflate: G − Q Qᵀ G per sample
        G = G - torch.einsum("bdk,bek,pbe->pbd", Q, Q, G)
    AG, w = _log_apply(pullback, G, terms)
    worst = max(worst, w)
    samples = (G * AG).sum(dim=2)  # (g, B)
    if worst > 0.1:  # the last term still a tenth of its probe: the tail is not negligible
        fix = ("J/c − I likely has an eigenvalue outside the unit disc, where the series "
               "diverges (no scale c brings an eigenvalue with real part ≤ 0, or a spread "
               "that wide, inside it); use method='exact' or 'slq'" if worst > 1 else
               "raise terms (the series converges slowly when J/c − I is near norm 1), or use "
               "method='exact' or 'slq'")
        warnings.warn(f"logdet: the log series of J/c has not settled after {terms} terms (the "
                      f"last term is {worst:.2g}× its probe): {fix}",
                      JacobiteWarning, stacklevel=_outside())
    se = (samples.detach().std(dim=0) / math.sqrt(g) if g > 1
          else torch.full_like(exact_part, math.inf))
    return shift + exact_part + samples.mean(dim=0), se.detach()


def _gram(f: Batched, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V ↦ Jᵀ J V`` per sample for stacks ``(P, B, D)`` of float64 vectors (one JVP and one
    VJP of the whole batch per vector, vmapped over the stack). Where ``f`` has no forward-mode
    rule, ``J v`` is the VJP of the linear map ``u ↦ Jᵀ u``."""
    pullback = pullback_of(f, x)[1]
    forward = [True]

    def push(v: torch.Tensor) -> torch.Tensor:
        if forward[0]:
            try:
                return torch.func.jvp(f, (x,), (v,))[1]
            except RuntimeError as e:
                if "forward" not in str(e).lower() and "jvp" not in str(e).lower():
                    raise
                forward[0] = False
        back = torch.func.vjp(lambda u: pullback(u)[0], torch.zeros_like(x))[1]
        return back(v)[0]

    def one(v: torch.Tensor) -> torch.Tensor:
        return pullback(push(v.to(x.dtype)))[0]

    def gram(V: torch.Tensor) -> torch.Tensor:
        try:
            return torch.func.vmap(one)(V).to(F64)
        except RuntimeError:
            return torch.stack([one(v) for v in V]).to(F64)
    return gram


def slq(f: Batched, x: torch.Tensor, probes: torch.Tensor, *, steps: int,
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic Lanczos quadrature of ``½ tr log(JᵀJ)``, all samples and probes at once.

    Each probe ``z`` (Rademacher, ``‖z‖² = D``) starts ``min(steps, D)`` Lanczos steps on
    ``JᵀJ`` (float64, full reorthogonalisation, applied twice); Gauss quadrature on the
    tridiagonal ``T`` gives ``zᵀ log(JᵀJ) z ≈ D Σ_i τ_i² log θ_i``. With ``steps ≥ D`` each
    probe's value is exact, so only the probes' spread remains. A lane whose Krylov space is
    exhausted continues with ``1`` on the diagonal, which adds nothing. Not differentiable.
    """
    X = x.detach()
    with torch.enable_grad():
        gram = _gram(f, X)
    P, (B, D) = probes.shape[0], X.shape
    k = min(steps, D)
    Q = torch.zeros(k, P, B, D, dtype=F64, device=X.device)
    alpha = torch.zeros(k, P, B, dtype=F64, device=X.device)
    beta = torch.zeros(k, P, B, dtype=F64, device=X.device)
    q = probes.to(F64) / math.sqrt(D)
    done = torch.zeros(P, B, dtype=torch.bool, device=X.device)
    scale = torch.zeros(P, B, dtype=F64, device=X.device)
    for j in range(k):
        Q[j] = q
        w = gram(q)
        a = (q * w).sum(-1)
        for _ in range(2):  # full reorthogonalisation against every basis vector so far
            c = (Q[: j + 1] * w).sum(-1, keepdim=True)
            w = w - (c * Q[: j + 1]).sum(0)
        b = w.norm(dim=-1)
        alpha[j] = torch.where(done, 1.0, a)
        scale = torch.maximum(scale, a.abs())
        done = done | (b <= 1e-12 * scale)
        beta[j] = torch.where(done, 0.0, b)
        q = torch.where(done[..., None], 0.0, w / b.clamp_min(1e-300)[..., None])
    T = torch.diag_embed(alpha.permute(1, 2, 0)) + \
        torch.diag_embed(beta[:-1].permute(1, 2, 0), 1) + \
        torch.diag_embed(beta[:-1].permute(1, 2, 0), -1)
    theta, V = torch.linalg.eigh(T)  # (P, B, k)
    logs = torch.log(theta.clamp_min(torch.finfo(F64).tiny))
    samples = 0.5 * D * (V[..., 0, :].square() * logs).sum(-1)  # (P, B)
    se = (samples.std(dim=0) / math.sqrt(P) if P > 1
          else torch.full((B,), math.inf, dtype=F64, device=X.device))
    return samples.mean(dim=0).to(x.dtype), se.to(x.dtype)
