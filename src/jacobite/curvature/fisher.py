"""The Fisher information of a network over a dataset as a lazy ``(P, P)`` operator: empirical
(per-sample gradients at the true labels), Monte Carlo (at labels drawn from the model) or
exact (the expectation over the model's predictive, which for cross-entropy and MSE is the
generalised Gauss–Newton matrix).

Write the dataset's loss as ``L = c Σ_n ℓ_n`` with ``ℓ_n`` one sample's loss under
``reduction="sum"`` (summed over its positions for outputs ``(n, C, ...)``) and ``c`` from the
reduction convention of ``docs/conventions.md``: ``1`` for a sum, ``1/N`` for a mean
cross-entropy over ``N`` samples (``1/(N · positions)`` with positions; a batch's samples whose
class is ``ignore_index`` do not count, as in torch's mean), ``1/(N C)`` for a mean MSE. Then

- ``empirical``: ``F = c Σ_n g_n g_nᵀ`` with ``g_n = ∇_θ ℓ_n(y_n)`` at the data's targets;
- ``mc``: ``F = c Σ_n (1/S) Σ_s g_{n,s} g_{n,s}ᵀ`` with ``S = samples`` labels ``ŷ_{n,s}``
  drawn from the model's predictive: categorical ``softmax(z_n)`` for cross-entropy, Gaussian
  ``N(z_n, I/2)`` for MSE (the distribution whose negative log-likelihood is
  ``‖z − y‖²``, up to a constant);
- ``exact``: ``F = E_ŷ[mc] = c Σ_n J_nᵀ ∇²_z ℓ_n J_n``, the Gauss–Newton matrix
  :func:`jacobite.curvature.ggn` (its operator is returned).

With ``g_n = J_nᵀ r_n`` (``r_n = ∇_z ℓ_n``, the loss gradient in the output) a product is
``F v = c Σ_n J_nᵀ r_n (r_nᵀ J_n v)``: one forward pass carrying ``v`` and one backward pass per
batch, as for the Gauss–Newton matrix; the per-sample gradients are never stored.

>>> import torch
>>> from jacobite.curvature import fisher
>>> model = torch.nn.Linear(3, 2).double()
>>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
>>> F = fisher(model, torch.nn.CrossEntropyLoss(reduction="sum"), (X, y))
>>> g = [torch.autograd.grad(torch.nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1],
...      reduction="sum"), list(model.parameters())) for i in range(5)]
>>> G = torch.stack([torch.cat([t.reshape(-1) for t in gi]) for gi in g])
>>> torch.allclose(F.to_dense(), G.T @ G)
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .. import _validate
from ..distributed import Group, ProcessGroupLike, resolve
from ..operators import JacobianOperator
from ._diagonal import column_diagonal
from ._ggn import _GGNOperator, ggn, sandwich, scan
from ._loss import LossCurvature
from ._setup import Data, Params, check_model
from ._sharded import count_guard, draw_key

__all__ = ["fisher"]

KINDS = ("empirical", "mc", "exact")


def _sample_scale(lc: LossCurvature, out: torch.Tensor, y: Any) -> float:
    """``w_b c_b``: the factor of a batch's per-sample sum losses in ``w_b L_b`` (the overall
    ``1/Z`` comes after)."""
    if not lc.mean:
        return 1.0
    if lc.kind == "ce":  # a mean over n · positions, less those whose class is ignored
        positions = out.numel() // out.shape[1]
        if not y.is_floating_point():
            positions = int((y != getattr(lc.fn, "ignore_index", -100)).sum())
        return lc.weight(out, y) / positions if positions else 0.0
    return out.shape[0] / out.numel()  # MSE: a mean over n · C (· positions)


def _generator(seed: int, batch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(hash((seed, batch)) & (2**63 - 1))
    return g


def _residuals(lc: LossCurvature, kind: str, out: torch.Tensor, y: Any, samples: int,
               seed: int, batch: int) -> torch.Tensor:
    """``(S, *out.shape)``: the loss gradients ``r = ∇_z ℓ_n`` in the output, one per label (the
    data's for ``empirical``, ``S`` draws for ``mc``); samples whose target is ignored give 0."""
    if lc.kind == "mse":
        if kind == "empirical":
            return (2.0 * (out - y))[None]
        g = _generator(seed, batch, out.device)
        z = torch.randn((samples, *out.shape), generator=g, dtype=out.dtype, device=out.device)
        return 2.0**0.5 * z  # 2 (z_n − ŷ) with ŷ ~ N(z_n, I/2)
    p = torch.softmax(out, dim=1)
    if kind == "empirical":  # ∇_z(−Σ t log p) = p Σt − t, t the (smoothed) target distribution
        t = lc.targets(out, y)
        return (p * t.sum(dim=1, keepdim=True) - t)[None]
    C = out.shape[1]
    flat = p.movedim(1, -1).reshape(-1, C)
    drawn = torch.multinomial(flat, samples, replacement=True,
                              generator=_generator(seed, batch, out.device))  # (M, S)
    onehot = torch.nn.functional.one_hot(drawn.T, C).to(p.dtype)  # (S, M, C)
    onehot = onehot.reshape(samples, *p.movedim(1, -1).shape).movedim(-1, 2)
    # the loss Hessian scales with Σ t (1 for a class, 0 for an ignored one)
    return (p[None] - onehot) * lc.mass(y, p).sqrt()[None]


def _outer(R: torch.Tensor, Jv: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale/S Σ_s r_s (r_sᵀ Jv)`` per sample, for ``R`` of shape ``(S, n, ...)``."""
    S, n = R.shape[0], R.shape[1]
    a = (R * Jv[None]).reshape(S, n, -1).sum(dim=2)  # (S, n)
    u = (a.reshape(S, n, *([1] * (R.ndim - 2))) * R).sum(dim=0)
    return u * (scale / S)


def _diagonal(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data, kind: str,
              samples: int, seed: int, group: Group | None = None) -> torch.Tensor:
    """The exact diagonal ``c Σ_n (1/S) Σ_s (J_nᵀ r_{n,s})²`` for outputs ``(n, C)``: the loss
    gradients ``r`` play the columns of the loss Hessian's square root in the Gauss–Newton
    diagonal (layer shortcuts from ``S`` backward passes, per-sample VJPs otherwise)."""

    def columns(out: torch.Tensor, y: Any, b: int) -> torch.Tensor:
        R = _residuals(lc, kind, out, y, samples, seed, draw_key(b, group))
        return (R * (_sample_scale(lc, out, y) / R.shape[0]) ** 0.5).transpose(0, 1).contiguous()

    with count_guard(group):
        return column_diagonal(model, ps, lc, batches, columns, group)


def fisher(model: nn.Module, loss: Any, data: Any, params: Iterable[str] | None = None, *,
           kind: str = "empirical", samples: int = 1, seed: int = 0,
           cache: bool = False, process_group: ProcessGroupLike = None) -> JacobianOperator:
    """The Fisher information of ``loss(model(X), y)`` over ``data`` as a lazy symmetric
    positive semi-definite ``(P, P)`` operator.

    Args:
        model, data, params, cache, process_group: as for :func:`jacobite.curvature.ggn` (the
            same parameter vector, the same sum or mean over batches; with a process group each
            rank's ``data`` is its shard and every product is all-reduced).
        loss: ``nn.CrossEntropyLoss`` (weight=None) or ``nn.MSELoss``, mean or sum, or
            ``F.cross_entropy`` / ``F.mse_loss`` — the losses that are a negative
            log-likelihood, so that the Fisher has a predictive to draw labels from.
        kind: ``"empirical"`` (gradients at the data's targets), ``"mc"`` (``samples`` labels
            per sample drawn from the model's predictive) or ``"exact"`` (the expectation over
            the predictive: the Gauss–Newton operator of :func:`ggn`).
        samples: labels drawn per sample for ``kind="mc"`` (an int ≥ 1).
        seed: an int ≥ 0; the draws of batch ``b`` come from a generator seeded with
            ``(seed, b)``, so every product sees the same labels (pass a fixed list of batches
            or an unshuffled ``DataLoader``; a shuffling one gives other labels per product).
            Under a process group rank ``r > 0`` draws from keys of its own, so the ranks'
            labels are independent: the same distribution as one process over the
            concatenated data, not the same draws (``empirical`` and ``exact`` are the same).

    A product holds one batch's activations and its ``S`` loss gradients in the output at a
    time; nothing of size ``P × N`` is stored. For outputs ``(n, C)`` ``diagonal()`` (and
    ``trace()``) is exact, ``c Σ_n (1/S) Σ_s (J_nᵀ r_{n,s})²``, by the route of
    :func:`ggn_diagonal` with the loss gradients as columns (``S`` of them per sample).

    >>> import torch
    >>> from jacobite.curvature import fisher, ggn
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,))
    >>> F = fisher(model, torch.nn.CrossEntropyLoss(), (X, y), kind="mc", samples=20000)
    >>> G = ggn(model, torch.nn.CrossEntropyLoss(), (X, y)).to_dense()
    >>> bool((F.to_dense() - G).abs().max() < 0.05 * G.abs().max())
    True
    """
    kind = _validate.choice(kind, "kind", KINDS)
    samples = _validate.positive_int(samples, "samples")
    seed_ = _validate.seed(seed, "seed")
    if seed_ is None:
        seed_ = 0
    model = check_model(model)
    lc = LossCurvature.of(loss)
    lc.require_closed("the Fisher needs a loss that is a negative log-likelihood with a "
                      "predictive to draw labels from", "ggn(...) for any other loss")
    if kind == "exact":
        return ggn(model, loss, data, params, cache=cache, process_group=process_group)
    cache = _validate.boolean(cache, "cache")
    group = resolve(process_group)
    ps = Params.of(model, params)
    with count_guard(group):  # a rank's bad data stops every rank here
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        kept, scale, out = scan(model, ps, lc, batches, cache, group)

    def middle(out: torch.Tensor, y: Any, Jv: torch.Tensor, b: int) -> torch.Tensor:
        R = _residuals(lc, kind, out, y, samples, seed_, draw_key(b, group))
        return _outer(R, Jv, _sample_scale(lc, out, y))

    mv, mm = sandwich(model, ps, batches, kept, scale, middle, group)

    exact = (lambda: _diagonal(model, ps, lc, batches, kind, samples, seed_, group)) \
        if out.ndim == 2 else None
    return _GGNOperator((ps.size, ps.size), mv, mv, dtype=ps.dtype, device=ps.device,
                        tags=("symmetric", "psd"), mm=mm, rmm=mm, name=f"fisher_{kind}",
                        exact_diagonal=exact)
