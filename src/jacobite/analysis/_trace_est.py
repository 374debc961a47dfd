"""Randomised per-sample trace estimators of a batch of square operators.

Each estimator sees the operators only through ``apply``: probes ``V`` of shape ``(k, B, D)``
(``k`` vectors for each of ``B`` samples) map to ``A_b v`` of the same shape, one product per
vector. Each returns ``(value (B,), stderr (B,), products used)``.

* :func:`hutchinson` — Rademacher probes ``v``, the mean of ``vᵀ A v``; the standard error is
  the probes' sample standard deviation over ``√k``.
* :func:`hutch_pp` — Hutch++ (Meyer, Musco, Musco & Woodruff, 2021): a sketch ``Q`` of the range
  of ``A S`` from a third of the products, the trace of ``Qᵀ A Q`` exactly from another third,
  Hutchinson on ``(I − QQᵀ) A (I − QQᵀ)`` with the rest (the standard error is that part's).
* :func:`xtrace` — the simple XTrace (Epperly, Tropp & Webber, 2024) with Rademacher test
  vectors: for each test vector ``ωᵢ`` the Hutch++ estimate whose sketch is the range of the
  *other* vectors' products, averaged over ``i``; every product serves both the sketch and the
  Hutchinson part. The ``s`` leave-one-out projectors come from one QR factorisation (the
  direction that leaving ``ωᵢ`` out removes is ``Q R⁻ᵀ eᵢ``), so ``2s`` products suffice. The
  standard error is the paper's, ``√(Σ (tᵢ − t̄)² / (s (s − 1)))``.

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

Apply = Callable[[torch.Tensor], torch.Tensor]
Estimate = tuple[torch.Tensor, torch.Tensor, int]

__all__ = ["Apply", "Estimate", "hutch_pp", "hutchinson", "rademacher", "xtrace"]


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


def xtrace(apply: Apply, nprobe: int, shape: tuple[int, int], dtype: torch.dtype,
           device: torch.device | str, gen: torch.Generator | None) -> Estimate:
    """Simple XTrace per sample with ``2s`` products, ``s = min(nprobe // 2, D)`` test vectors
    (``nprobe ≥ 4``)."""
    s = min(nprobe // 2, shape[1])
    Om = rademacher(s, shape, dtype, device, gen)          # (s, B, D) test vectors ωᵢ
    Y = apply(Om).permute(1, 2, 0)                         # (B, D, s): A ωᵢ
    Q, R = torch.linalg.qr(Y)                              # (B, D, s), (B, s, s)
    Z = apply(Q.permute(2, 0, 1)).permute(1, 2, 0)         # (B, D, s): A Q
    C = Q.transpose(1, 2) @ Z                              # Qᵀ A Q
    # the unit direction (in Q's coordinates) that leaving ωᵢ out removes: ∝ R⁻ᵀ eᵢ
    Sd = torch.linalg.pinv(R).transpose(1, 2)              # column i ∝ R⁻ᵀ eᵢ
    norm = Sd.norm(dim=1, keepdim=True)
    Sd = Sd / torch.where(norm > 0, norm, torch.ones_like(norm))
    # tr(A Pᵢ) with Pᵢ = QQᵀ − (Q sᵢ)(Q sᵢ)ᵀ
    exact = torch.diagonal(C, dim1=1, dim2=2).sum(-1, keepdim=True) \
        - torch.einsum("bji,bjk,bki->bi", Sd, C, Sd)       # (B, s)
    Wm = Om.permute(1, 2, 0)                               # (B, D, s)
    c = Q.transpose(1, 2) @ Wm                             # Qᵀ ωᵢ (B, s, s)
    a = (Sd * c).sum(1, keepdim=True)                      # sᵢᵀ Qᵀ ωᵢ (B, 1, s)
    coef = Sd * a - c                                      # (B, s, s)
    w = Wm + Q @ coef                                      # (I − Pᵢ) ωᵢ
    Aw = Y + Z @ coef                                      # A (I − Pᵢ) ωᵢ from known products
    t = exact + (w * Aw).sum(1)                            # (B, s): one estimate per ωᵢ
    value = t.mean(1)
    stderr = ((t - value[:, None]) ** 2).sum(1).div(max(s * (s - 1), 1)).sqrt()
    return value, stderr, 2 * s
