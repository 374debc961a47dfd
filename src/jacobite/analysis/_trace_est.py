"""Randomised per-sample trace estimators of a batch of square operators.

Each estimator sees the operators only through ``apply``: probes ``V`` of shape ``(k, B, D)``
(``k`` vectors for each of ``B`` samples) map to ``A_b v`` of the same shape, one product per
vector. Each returns ``(value (B,), stderr (B,), products used)``.

* :func:`hutchinson` — Rademacher probes ``v``, the mean of ``vᵀ A v``; the standard error is
  the probes' sample standard deviation over ``√k``.
* :func:`hutch_pp` — Hutch++ (Meyer, Musco, Musco & Woodruff, 2021): a sketch ``Q`` of the range
  of ``A S`` from a third of the products, the trace of ``Qᵀ A Q`` exactly from another third,
  Hutchinson on ``(I − QQᵀ) A (I − QQᵀ)`` with the rest. The standard error is that part's:
  given ``Q`` the estimate is unbiased whatever ``Q`` is, so the residual probes' variance is
  the whole variance.
* :func:`xtrace` — the simple XTrace (Epperly, Tropp & Webber, 2024) with Rademacher test
  vectors: for each test vector ``ωᵢ`` the Hutch++ estimate ``tᵢ`` whose sketch is the range of
  the *other* vectors' products, averaged over ``i``; every product serves both the sketch and
  the Hutchinson part. The ``s`` leave-one-out projectors come from one QR factorisation (the
  direction that leaving ``ωᵢ`` out removes is ``Q R⁻ᵀ eᵢ``), so ``2s`` products suffice.
  Where the products ``AΩ`` are rank-deficient (``A`` of rank below ``s``, or equal test
  vectors, common for small ``D``) the sketches are built from ``R``'s SVD, keeping only the
  directions the products span and removing none where ``Aωᵢ`` depends on the others.
  The paper's error estimate, ``Σ (tᵢ − t̄)² / (s (s − 1))``, treats the ``tᵢ`` as independent;
  they share their sketches and are positively correlated where the spectrum decays slowly, so
  it understates the variance (up to 3× measured on flat spectra). Here the variance is that
  term plus ``max(ĉ, 0)``, where ``ĉ`` estimates ``Cov(tᵢ, tⱼ)`` through
  ``Cov(tᵢ, tⱼ) = E[(tᵢ − tᵢ₍₋ⱼ₎)(tⱼ − tr A)]`` (``tᵢ₍₋ⱼ₎``: ``ωᵢ``'s estimate with ``ωⱼ`` also
  left out of the sketch, which does not depend on ``ωⱼ``, while ``tⱼ`` is unbiased given the
  other vectors), all from the same ``2s`` products. Clipping at 0 makes it conservative where
  the estimates are nearly uncorrelated (fast-decaying spectra: up to 2× in variance).

The variance each reports is unbiased (Hutchinson, Hutch++) or nearly so (XTrace) on average,
but it comes from few numbers: with ``k`` probes it has about :func:`dof` degrees of freedom,
and the heavy tails of the quadratic forms ``vᵀ A v`` spread it further, so a single stderr can
be far from the truth. Use a Student t quantile with :func:`dof` degrees of freedom (e.g.
``scipy.stats.t.ppf(0.975, dof)`` instead of 1.96) for an interval.

A square operator ``A`` and its transpose have the same trace, so ``apply`` may give ``Aᵀ v``.
Hutch++ is exact on an operator whose range its sketch holds (here rank 2 with ``s = 2``):

>>> import torch
>>> A = torch.diag(torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=torch.float64)).expand(2, 4, 4)
>>> apply = lambda V: torch.einsum("bij,kbj->kbi", A, V)
>>> g = torch.Generator().manual_seed(0)
>>> value, stderr, used = hutch_pp(apply, 8, (2, 4), torch.float64, "cpu", g)
>>> [round(float(t), 6) for t in value], used
([3.0, 3.0], 8)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InvalidOptionError

Apply = Callable[[torch.Tensor], torch.Tensor]
Estimate = tuple[torch.Tensor, torch.Tensor, int]

__all__ = ["Apply", "Estimate", "dof", "hutch_pp", "hutchinson", "rademacher", "xtrace"]


def rademacher(k: int, shape: tuple[int, int], dtype: torch.dtype, device: torch.device | str,
               gen: torch.Generator | None) -> torch.Tensor:
    """``k`` Rademacher vectors (entries ±1) per sample: shape ``(k, B, D)``."""
    bits = torch.randint(0, 2, (k, *shape), generator=gen, device=device)
    return (2 * bits - 1).to(dtype)


def _mean_and_stderr(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the first axis and its standard error (sample std with ``k − 1`` over ``√k``)."""
    k = z.shape[0]
    return z.mean(0), z.std(0, correction=1) / k ** 0.5


def hutchinson(apply: Apply, nprobe: int, shape: tuple[int, int], dtype: torch.dtype,
               device: torch.device | str, gen: torch.Generator | None) -> Estimate:
    """``mean vᵀ A v`` over ``nprobe`` Rademacher probes per sample (``nprobe ≥ 2``)."""
    V = rademacher(nprobe, shape, dtype, device, gen)
    z = (V * apply(V)).sum(-1)  # (k, B)
    value, stderr = _mean_and_stderr(z)
    return value, stderr, nprobe


def _split_pp(nprobe: int, D: int) -> tuple[int, int]:
    """Hutch++'s sketch size ``s`` (at most ``D``) and Hutchinson count ``m``: ``2s + m = nprobe``
    with ``s ≈ nprobe / 3`` and ``m ≥ 2``."""
    s = max(1, min(D, nprobe // 3, (nprobe - 2) // 2))
    return s, nprobe - 2 * s


def hutch_pp(apply: Apply, nprobe: int, shape: tuple[int, int], dtype: torch.dtype,
             device: torch.device | str, gen: torch.Generator | None) -> Estimate:
    """Hutch++ per sample with ``nprobe ≥ 4`` products: exact on a sketched range, Hutchinson
    on its complement."""
    s, m = _split_pp(nprobe, shape[1])
    S = rademacher(s, shape, dtype, device, gen)
    G = rademacher(m, shape, dtype, device, gen)
    Y = apply(S)                                          # (s, B, D)
    Q = torch.linalg.qr(Y.permute(1, 2, 0)).Q             # (B, D, s)
    Qk = Q.permute(2, 0, 1)                               # (s, B, D)
    exact = (Qk * apply(Qk)).sum((0, 2))                  # tr(Qᵀ A Q) per sample
    Gp = G - torch.einsum("bds,bsk->kbd", Q, torch.einsum("bds,kbd->bsk", Q, G))
    z = (Gp * apply(Gp)).sum(-1)                          # (m, B)
    rest, stderr = _mean_and_stderr(z)
    return exact + rest, stderr, 2 * s + m


def dof(method: str, nprobe: int, D: int) -> int:
    """The degrees of freedom of ``method``'s standard error with ``nprobe`` products in
    dimension ``D``: the probes behind its spread less one (``nprobe − 1`` for Hutchinson, the
    residual probes less one for Hutch++, the test vectors less one for XTrace).

    >>> dof("hutchinson", 12, 32), dof("hutch++", 12, 32), dof("xtrace", 12, 32)
    (11, 3, 5)
    """
    if method == "hutchinson":
        return nprobe - 1
    if method == "hutch++":
        return _split_pp(nprobe, D)[1] - 1
    if method == "xtrace":
        return max(min(nprobe // 2, D) - 1, 0)
    raise InvalidOptionError(f"method {method!r} has no standard error; pass 'hutchinson', "
                             f"'hutch++' or 'xtrace'")


def xtrace(apply: Apply, nprobe: int, shape: tuple[int, int], dtype: torch.dtype,
           device: torch.device | str, gen: torch.Generator | None) -> Estimate:
    """Simple XTrace per sample with ``2s`` products, ``s = min(nprobe // 2, D)`` test vectors
    (``nprobe ≥ 4``); the standard error adds the covariance of the leave-one-out estimates
    (module doc)."""
    s = min(nprobe // 2, shape[1])
    Om = rademacher(s, shape, dtype, device, gen)          # (s, B, D) test vectors ωᵢ
    Y = apply(Om).permute(1, 2, 0)                         # (B, D, s): A ωᵢ
    Q, R = torch.linalg.qr(Y)                              # (B, D, s), (B, s, s)
    Z = apply(Q.permute(2, 0, 1)).permute(1, 2, 0)         # (B, D, s): A Q
    Wm = Om.permute(1, 2, 0)                               # (B, D, s)
    C, W, T, R, n = _range_coordinates(Q.transpose(1, 2) @ Z, Q.transpose(1, 2) @ Wm,
                                       Z.transpose(1, 2) @ Wm, R)
    oy = (Wm * Y).sum(1)                                   # (B, s): ωᵢᵀ A ωᵢ
    t = _removed_trace(C, W, T, R, oy, n[..., None])       # (B, s): one estimate per ωᵢ
    value = t.mean(1)
    if s < 2:
        return value, torch.zeros_like(value), 2 * s
    var = t.var(1, correction=1) / s + _loo_covariance(C, W, T, R, n, t).clamp_min(0)
    return value, var.sqrt(), 2 * s


def _range_coordinates(C: torch.Tensor, W: torch.Tensor, T: torch.Tensor, R: torch.Tensor,
                       ) -> tuple[torch.Tensor, ...]:
    """``C = QᵀAQ``, ``W = QᵀΩ``, ``T = (AQ)ᵀΩ``, ``R = QᵀAΩ`` in the coordinates of the left
    singular vectors ``U`` of ``R = U Σ Vᵀ``, with the directions whose singular value is below
    ``1e-10 σ₁`` zeroed: where ``AΩ`` is rank-deficient (``A`` of rank below ``s``, or
    dependent test vectors) ``Q``'s extra columns are rounding noise outside every sketch.
    Also ``n`` ``(B, i, s)``: the unit direction that leaving ``ωᵢ`` out removes from the
    sketch, ``∝ Σ⁻¹Vᵀeᵢ`` (``R⁻ᵀeᵢ`` in ``Q``'s coordinates when ``R`` is invertible), or 0
    where ``Aωᵢ`` lies in the span of the others' products and nothing is removed."""
    U, sig, Vh = torch.linalg.svd(R)
    keep = sig > 1e-10 * sig[:, :1]
    Um = U * keep[:, None, :]
    Ut = Um.transpose(1, 2)
    Vk = Vh.transpose(1, 2) * keep[:, None, :]             # [i, k]: (Vᵀeᵢ)ₖ on kept k
    inv = torch.where(keep, 1 / torch.where(keep, sig, torch.ones_like(sig)), 0.0)
    alone = Vk.square().sum(-1) > 1 - 1e-8                 # eᵢ in R's row space
    n = _unit(Vk * inv[:, None, :], 2) * alone[..., None]
    return Ut @ C @ Um, Ut @ W, Ut @ T, Ut @ R, n


def _unit(v: torch.Tensor, dim: int) -> torch.Tensor:
    """``v`` scaled to unit norm along ``dim`` (zero where it is zero)."""
    norm = v.norm(dim=dim, keepdim=True)
    return v / torch.where(norm > 1e-12 * norm.amax(dim=(-1, -2), keepdim=True).clamp_min(1e-300),
                           norm, torch.full_like(norm, torch.inf))


def _loo_covariance(C: torch.Tensor, W: torch.Tensor, T: torch.Tensor, R: torch.Tensor,
                    n: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An estimate ``(B,)`` of ``Cov(tᵢ, tⱼ)``, ``i ≠ j``, from ``E[(tᵢ − tᵢ₍₋ⱼ₎)(tⱼ − tr A)]``
    with ``tᵢ₍₋ⱼ₎`` the estimate of ``ωᵢ`` whose sketch also leaves ``ωⱼ`` out, and ``tr A``
    replaced by the mean of the other ``s − 2`` estimates (of ``t`` where ``s = 2``).

    Leaving ``ωⱼ`` out as well removes the direction ``v = (nⱼ − g nᵢ) / ν`` (``g = nᵢᵀnⱼ``,
    ``ν`` its norm) besides ``nᵢ``, so with ``cᵢ`` the leave-one-out coefficients and
    ``α = vᵀQᵀωᵢ``: ``tᵢ − tᵢ₍₋ⱼ₎ = (1 − α²) vᵀCv − α vᵀuᵢ``,
    ``uᵢ = (AQ)ᵀωᵢ + QᵀAωᵢ + (C + Cᵀ) cᵢ``. Every ``vᵀx`` is ``(nⱼᵀx − g nᵢᵀx) / ν``, so all
    pairs cost a few ``s × s`` products per sample. Where the products are dependent, a
    direction that only leaving both out removes (two equal test vectors) is missed there."""
    B, s = t.shape
    Wi = W.transpose(1, 2)                                  # (B, i, s): Qᵀωᵢ
    c = n * (n * Wi).sum(-1, keepdim=True) - Wi             # (B, i, s): leave-one-out cᵢ
    u = T.transpose(1, 2) + R.transpose(1, 2) + c @ C + c @ C.transpose(1, 2)
    G = n @ n.transpose(1, 2)                               # [i, j] = nᵢᵀnⱼ
    M = n @ C @ n.transpose(1, 2)                           # [i, j] = nᵢᵀ C nⱼ
    NW = Wi @ n.transpose(1, 2)                             # [i, j] = nⱼᵀ Qᵀωᵢ
    NU = u @ n.transpose(1, 2)                              # [i, j] = nⱼᵀ uᵢ
    g, gd, md = G, torch.diagonal(G, dim1=1, dim2=2), torch.diagonal(M, dim1=1, dim2=2)
    nu2 = gd[:, None, :] - 2 * g * g + g * g * gd[:, :, None]
    ok = nu2 > 1e-12
    nu2 = torch.where(ok, nu2, torch.ones_like(nu2))
    nu = nu2.sqrt()
    alpha = (NW - g * torch.diagonal(NW, dim1=1, dim2=2)[:, :, None]) / nu
    vu = (NU - g * torch.diagonal(NU, dim1=1, dim2=2)[:, :, None]) / nu
    vcv = (md[:, None, :] - g * (M + M.transpose(1, 2)) + g * g * md[:, :, None]) / nu2
    drop = torch.where(ok, (1 - alpha * alpha) * vcv - alpha * vu, torch.zeros_like(vcv))
    total = t.sum(1)[:, None, None]
    rest = (total - t[:, :, None] - t[:, None, :]) / (s - 2) if s > 2 else \
        t.mean(1)[:, None, None].expand(B, s, s)
    term = drop * (t[:, None, :] - rest)                    # [i, j]: (tᵢ − tᵢ₍₋ⱼ₎)(tⱼ − rest)
    off = ~torch.eye(s, dtype=torch.bool, device=t.device)
    return (term * off).sum((1, 2)) / (s * (s - 1))


def _removed_trace(C: torch.Tensor, W: torch.Tensor, T: torch.Tensor, R: torch.Tensor,
                   oy: torch.Tensor, N: torch.Tensor) -> torch.Tensor:
    """Hutch++ estimates ``tr(A P) + ωᵢᵀ(I − P) A (I − P) ωᵢ`` for test vectors ``i`` whose
    sketch ``P = Q (I − N Nᵀ) Qᵀ`` drops the orthonormal directions ``N`` (``(B, i, s, r)``,
    in ``Q``'s coordinates), from known products only: ``C = QᵀAQ``, ``W = QᵀΩ``,
    ``T = (AQ)ᵀΩ``, ``R = QᵀAΩ`` (each ``(B, s, s)``) and ``oy = ωᵢᵀAωᵢ`` ``(B, s)``.
    ``(I − P) ωᵢ = ωᵢ + Q cᵢ`` and ``A (I − P) ωᵢ = Aωᵢ + AQ cᵢ`` with
    ``cᵢ = −(I − N Nᵀ) Qᵀωᵢ``. Returns ``(B, i)``."""
    Wi = W.transpose(1, 2)                                 # (B, i, s): Qᵀωᵢ
    c = torch.einsum("bisr,bir->bis", N, torch.einsum("bisr,bis->bir", N, Wi)) - Wi
    kept = torch.diagonal(C, dim1=1, dim2=2).sum(-1)[:, None] \
        - torch.einsum("bisr,bst,bitr->bi", N, C, N)        # tr(A P)
    quad = oy + (T.transpose(1, 2) * c).sum(-1) + (R.transpose(1, 2) * c).sum(-1) \
        + torch.einsum("bis,bst,bit->bi", c, C, c)
    return kept + quad
