"""Randomised estimates of the Gauss–Newton diagonal with a standard error per entry, for
networks whose output has many classes (the exact diagonal costs ``C − 1`` backward passes).

Write ``G = B Bᵀ / Z`` with ``B``'s columns ``J_nᵀ s_nk`` (``s_nk`` the columns of the loss
Hessian's square root in the output, as in :func:`jacobite.curvature.ggn_diagonal`).

* ``"hutchinson"`` draws the probe in the *output* space: Rademacher signs ``z_nk`` give the
  cotangent ``u_n = Σ_k z_nk s_nk`` and ``v = Σ_n J_nᵀ u_n = B z``, one backward pass of the
  whole batch. ``E[v ⊙ v] = diag(B E[zzᵀ] Bᵀ) = diag(B Bᵀ)``, so the mean of ``v ⊙ v`` over
  the probes is unbiased; its standard error is the probes' sample standard deviation over
  ``√k``. A probe costs one backward pass per batch where a parameter-space probe
  ``z ⊙ G z`` costs a forward pass carrying a tangent and a backward pass.
* ``"xdiag"`` — XDiag (Epperly, Tropp & Webber, 2024), the exchangeable diagonal estimator:
  ``s = nprobe // 2`` Rademacher test vectors ``ωᵢ``, ``Y = G Ω``, ``Q`` an orthonormal basis
  of ``range(Y)``, ``Z = G Q``. For each ``i`` the sketch ``Pᵢ`` projects on the range of the
  *other* test vectors' products and ``dᵢ = diag(Pᵢ G) + ωᵢ ⊙ (I − Pᵢ) G ωᵢ``, unbiased as
  ``Pᵢ`` does not depend on ``ωᵢ``; the estimate is the mean of the ``dᵢ``. ``Pᵢ`` drops one
  direction ``nᵢ`` (``∝ R⁻ᵀeᵢ`` in ``Q``'s coordinates) from ``QQᵀ``, so all ``dᵢ`` come from
  the ``2s`` products. Where ``G`` has rank below ``s`` every ``Pᵢ`` holds its range and the
  estimate is exact. The ``dᵢ`` share their sketches and are correlated, so the variance is
  their sample variance over ``s`` plus ``max(ĉ, 0)``, ``ĉ`` an estimate of
  ``Cov(dᵢ, dⱼ) = E[(dᵢ − dᵢ₍₋ⱼ₎)(dⱼ − diag G)]`` (``dᵢ₍₋ⱼ₎``: the sketch also without
  ``ωⱼ``), entry by entry. It works for any loss (``G``'s products only); it needs
  ``nprobe`` products with ``G``, each a forward pass carrying a tangent and a backward pass.

>>> import torch
>>> from jacobite.curvature import diagonal_estimate, ggn_diagonal
>>> model = torch.nn.Linear(3, 2).double()
>>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
>>> loss = torch.nn.CrossEntropyLoss()
>>> est = diagonal_estimate(model, loss, (X, y), method="xdiag", nprobe=20)
>>> bool(torch.allclose(est.value, ggn_diagonal(model, loss, (X, y))))  # rank 5 < 10 probes
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import _validate
from ..config import get_memory_budget
from ..errors import ShapeError
from ._diagonal import _rank_columns
from ._ggn import ggn
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward

__all__ = ["DiagonalEstimate", "diagonal_estimate"]

METHODS = ("hutchinson", "xdiag")
_MIN_PROBES = {"hutchinson": 2, "xdiag": 4}


@dataclass(frozen=True)
class DiagonalEstimate:
    """An estimate of the Gauss–Newton diagonal.

    ``value`` and ``stderr``: ``(P,)``, the estimate and its standard error per entry;
    ``method``; ``nprobe``: the probes used (``"hutchinson"``: output-space probes, one
    backward pass per batch each; ``"xdiag"``: products with ``G``); ``dof``: the degrees of
    freedom of ``stderr`` (the probes, or test vectors, behind its spread less one). For an
    interval use a Student t quantile with ``dof`` degrees of freedom.
    """

    value: torch.Tensor
    stderr: torch.Tensor
    method: str
    nprobe: int
    dof: int


def diagonal_estimate(model: nn.Module, loss: Any, data: Any,
                      params: Iterable[str] | None = None, *, method: str = "hutchinson",
                      nprobe: int = 32, seed: int | None = 0) -> DiagonalEstimate:
    """A randomised estimate of ``diag G`` (:func:`jacobite.curvature.ggn`'s matrix, the same
    parameter vector and reduction) with a standard error per entry.

    Args:
        model, loss, data, params: as for :func:`ggn`. ``"hutchinson"`` needs
            ``nn.CrossEntropyLoss`` (weight=None) or ``nn.MSELoss`` on outputs ``(n, C)`` (the
            loss Hessian's square root in closed form); ``"xdiag"`` takes any loss.
        method: ``"hutchinson"`` (output-space probes, ``nprobe ≥ 2``) or ``"xdiag"``
            (``nprobe ≥ 4`` products with ``G``); see the module notes.
        nprobe: the probes (Hutchinson) or products (XDiag).
        seed: an int ≥ 0 draws the same probes on every call; ``None`` draws from torch's
            global generator.

    Hutchinson's cost grows with ``nprobe`` and not with ``C``: at ``nprobe`` below
    ``C − 1`` it is cheaper than :func:`ggn_diagonal`. XDiag is exact once ``nprobe // 2``
    exceeds ``G``'s rank (at most ``N (C − 1)`` for cross-entropy on ``N`` samples).

    >>> import torch
    >>> from jacobite.curvature import diagonal_estimate
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
    ...                             torch.nn.Linear(8, 50))
    >>> X, y = torch.randn(32, 4), torch.randint(0, 50, (32,))
    >>> est = diagonal_estimate(model, torch.nn.CrossEntropyLoss(), (X, y), nprobe=16)
    >>> est.value.shape, est.stderr.shape, est.dof
    (torch.Size([490]), torch.Size([490]), 15)
    """
    method = _validate.choice(method, "method", METHODS)
    nprobe = _validate.positive_int(nprobe, "nprobe", minimum=_MIN_PROBES[method])
    seed_ = _validate.seed(seed)
    model = check_model(model)
    lc = LossCurvature.of(loss)
    ps = Params.of(model, params)
    batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
    gen = _validate.generator(seed_, ps.device)
    if method == "xdiag":
        return _xdiag(ggn(model, loss, data, ps.names), nprobe, ps, gen)
    lc.require_closed("the output-space Hutchinson estimate needs the loss Hessian's square "
                      "root in closed form", "method='xdiag', which takes any loss")
    return _hutchinson(model, ps, lc, batches, nprobe, gen)


def _hutchinson(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data, nprobe: int,
                gen: torch.Generator | None) -> DiagonalEstimate:
    """``mean_j (B z_j)²`` with ``B z_j`` accumulated over the batches, ``nprobe`` probes
    (chunks of probes under the memory budget, the draws of batch ``b`` the same in every
    chunk); only a chunk's ``B z_j`` are held: its squares are merged into the running mean
    and sum of squared deviations (Chan et al.'s pairwise update) before the next chunk."""
    base = int(torch.randint(0, 2**62, (1,), generator=gen, device=ps.device))
    per = max(1, get_memory_budget() // (4 * ps.size * ps.values[0].element_size()))
    mean = torch.zeros(ps.size, dtype=ps.dtype, device=ps.device)
    m2 = torch.zeros_like(mean)
    total: float = 0
    for start in range(0, nprobe, per):
        stop = min(nprobe, start + per)
        V = torch.zeros(stop - start, ps.size, dtype=ps.dtype, device=ps.device)
        for b, (X, y) in enumerate(batches):
            with torch.enable_grad():
                leaves = {k: v.detach().requires_grad_() for k, v in ps.primals().items()}
                out = forward(model, ps, leaves, X)
            if start == 0:
                if b == 0:
                    lc.check(out.detach(), y)
                total += lc.weight(out, y)
            if out.ndim != 2:
                raise ShapeError(f"the Hutchinson estimate needs outputs of shape (n, C), got "
                                 f"{tuple(out.shape)}; use method='xdiag'")
            S = lc.sqrt_columns(out.detach(), y)
            if lc.kind == "ce" and out.shape[1] > 1:
                S = _rank_columns(S, out)
            g = torch.Generator(device=ps.device).manual_seed(hash((base, b)) & (2**63 - 1))
            signs = torch.randint(0, 2, (nprobe, *S.shape[:2]), generator=g,
                                  device=ps.device)[start:stop]
            U = torch.einsum("jnk,nkc->jnc", (2 * signs - 1).to(S.dtype), S)
            if not out.requires_grad:
                continue
            for j in range(stop - start):
                grads = torch.autograd.grad(out, list(leaves.values()), U[j],
                                            retain_graph=j + 1 < stop - start,
                                            allow_unused=True)
                V[j] += torch.cat([(torch.zeros_like(t) if d is None else d).reshape(-1)
                                   for d, t in zip(grads, ps.values, strict=True)])
        sq = V * V / total if lc.mean else V * V
        mean, m2 = _merge(mean, m2, start, sq)
    var = m2 / (nprobe - 1)
    return DiagonalEstimate(mean, (var / nprobe).sqrt(), "hutchinson", nprobe, nprobe - 1)


def _merge(mean: torch.Tensor, m2: torch.Tensor, count: int, rows: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the sum of squared deviations of ``count`` earlier rows (``mean``, ``m2``)
    and the ``rows`` ``(k, P)`` together.

    >>> x = torch.tensor([[1.0], [2.0], [4.0], [7.0]], dtype=torch.float64)
    >>> m, s = _merge(*_merge(torch.zeros(1), torch.zeros(1), 0, x[:1]), 1, x[1:])
    >>> float(m), round(float(s / 3), 12), float(x.var())
    (3.5, 7.0, 7.0)
    """
    k = rows.shape[0]
    mb = rows.mean(0)
    m2b = (rows - mb).square().sum(0)
    n = count + k
    delta = mb - mean
    return mean + delta * (k / n), m2 + m2b + delta.square() * (count * k / n)


def _xdiag(G: Any, nprobe: int, ps: Params, gen: torch.Generator | None) -> DiagonalEstimate:
    """XDiag with ``s = nprobe // 2`` test vectors (module notes)."""
    s, P, dt = nprobe // 2, ps.size, ps.dtype
    Om = (2 * torch.randint(0, 2, (P, s), generator=gen, device=ps.device) - 1).to(dt)
    Y = G.mm(Om)                                             # (P, s)
    U, sig, Vh = torch.linalg.svd(Y, full_matrices=False)
    keep = sig > 1e-2 * torch.finfo(dt).eps ** 0.5 * sig[0].clamp_min(torch.finfo(dt).tiny)
    Q = U[:, keep]                                           # (P, r): range(Y)
    Z = G.mm(Q) if Q.shape[1] else torch.zeros_like(Q)       # (P, r)
    used = s + Q.shape[1]
    T = Q.T @ Y                                              # (r, s): tᵢ = Qᵀ G ωᵢ
    Vr = Vh[keep].T                                          # (s, r)
    alone = Vr.square().sum(1) > 1 - 1e-8                    # eᵢ in R's row space
    N = (Vr / sig[keep]).T * alone                           # (r, s): nᵢ ∝ Σ⁻¹Vᵀeᵢ
    N = N / N.norm(dim=0).clamp_min(torch.finfo(dt).tiny)
    An, Zn = Q @ N, Z @ N                                    # (P, s): Q nᵢ, Z nᵢ
    nt = (N * T).sum(0)                                      # (s,): nᵢᵀ tᵢ
    base = (Q * Z).sum(1)                                    # diag(QQᵀG)
    D = base[:, None] + Om * (Y - Q @ T) - An * Zn + nt * Om * An   # (P, s): the dᵢ
    value = D.mean(1)
    if s < 2:
        return DiagonalEstimate(value, torch.zeros_like(value), "xdiag", used, 0)
    var = D.var(1, correction=1) / s + _loo_covariance(D, Om, An, Zn, N, T).clamp_min(0)
    return DiagonalEstimate(value, var.sqrt(), "xdiag", used, s - 1)


def _loo_covariance(D: torch.Tensor, Om: torch.Tensor, An: torch.Tensor, Zn: torch.Tensor,
                    N: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """``ĉ`` per entry: the mean over pairs ``i ≠ j`` of ``(dᵢ − dᵢ₍₋ⱼ₎) ⊙ (dⱼ − rest)``,
    ``rest`` the mean of the other ``s − 2`` estimates (of all where ``s = 2``).

    Leaving ``ωⱼ`` out as well drops ``v = (nⱼ − g nᵢ)/ν`` (``g = nᵢᵀnⱼ``, ``ν`` its norm)
    besides ``nᵢ``; each dropped unit direction ``v`` adds ``−(Qv) ⊙ (Zv) + (vᵀtᵢ) ωᵢ ⊙ Qv``
    to the estimate, so ``dᵢ − dᵢ₍₋ⱼ₎`` is minus that term, from the columns of ``An = QN``
    and ``Zn = ZN`` (one ``(P, s)`` block per ``i``)."""
    P, s = D.shape
    Gm = N.T @ N                                             # [i, j] = nᵢᵀnⱼ
    NT = N.T @ T                                             # [j, i] = nⱼᵀtᵢ
    total = D.sum(1, keepdim=True)
    acc = torch.zeros(P, dtype=D.dtype, device=D.device)
    for i in range(s):
        g = Gm[i]                                            # (s,) over j
        nu2 = Gm.diagonal() - 2 * g * g + g * g * Gm[i, i]
        ok = (nu2 > 1e-12) & (torch.arange(s, device=D.device) != i)
        nu = torch.where(ok, nu2, torch.ones_like(nu2)).sqrt()
        av = (An - g * An[:, i:i + 1]) / nu                  # (P, j): Q v
        zv = (Zn - g * Zn[:, i:i + 1]) / nu
        vt = (NT[:, i] - g * NT[i, i]) / nu                  # (j,): vᵀtᵢ
        drop = (av * zv - vt * Om[:, i:i + 1] * av) * ok     # dᵢ − dᵢ₍₋ⱼ₎
        rest = (total - D[:, i:i + 1] - D) / (s - 2) if s > 2 else D.mean(1, keepdim=True)
        acc += (drop * (D - rest)).sum(1)
    return acc / (s * (s - 1))
