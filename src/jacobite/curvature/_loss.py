"""The loss side of the Gauss–Newton matrix: products with the Hessian of a batch's loss with
respect to the model's output, and how batch losses add up to the dataset's loss.

The dataset's loss is ``Σ_b w_b L_b / Z``: for a loss module with ``reduction="mean"``,
``w_b = n_b`` (the batch's samples) and ``Z = N`` (all samples), so it is the mean over the
whole dataset; with ``reduction="sum"`` and for any other callable, ``w_b = Z = 1`` (the batch
losses add up). Closed forms, per sample (``p = softmax(z)``):

- cross-entropy: ``diag(p) − p pᵀ``, applied as ``p ⊙ u − p (pᵀu)`` (times ``Σ_c t_c`` for
  probability targets, label smoothing ``ε`` applied: ``(1 − ε) Σ_c y_c + ε``); a mean over
  ``n`` samples divides by ``n``;
- MSE: ``2 I``; a mean over the ``n · C`` entries divides by ``n · C``;
- anything else: reverse-over-reverse products ``torch.func.vjp(grad(L_b))`` in the output.

>>> import torch
>>> lc = LossCurvature.of(torch.nn.CrossEntropyLoss(reduction="sum"))
>>> z, y = torch.zeros(1, 2), torch.tensor([0])
>>> lc.hvp(z, y, torch.tensor([[1.0, 0.0]]))
tensor([[ 0.2500, -0.2500]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .. import _validate
from ..errors import InvalidOptionError, ShapeError, UnsupportedOperationError

__all__ = ["LossCurvature"]

_REDUCE = "set reduction='mean' or reduction='sum' on the loss"


@dataclass(frozen=True)
class LossCurvature:
    """A loss ``L(output, y) -> scalar`` with its kind (``"ce"``, ``"mse"`` or ``"ad"``) and
    whether batch losses are means over samples."""

    fn: Callable[[torch.Tensor, Any], torch.Tensor]
    kind: str
    mean: bool

    @staticmethod
    def of(loss: Any) -> LossCurvature:
        _validate.callable_(loss, "loss")
        reduction = getattr(loss, "reduction", None)
        if isinstance(loss, nn.Module) and reduction is not None:
            if reduction not in ("mean", "sum"):
                raise InvalidOptionError(
                    f"the loss has reduction={reduction!r}, but the curvature needs a scalar "
                    f"loss; {_REDUCE}")
            mean = reduction == "mean"
            if type(loss) is nn.CrossEntropyLoss and loss.weight is None:
                return LossCurvature(loss, "ce", mean)
            if type(loss) is nn.MSELoss:
                return LossCurvature(loss, "mse", mean)
            return LossCurvature(loss, "ad", mean)
        if loss is F.cross_entropy:
            return LossCurvature(loss, "ce", True)
        if loss is F.mse_loss:
            return LossCurvature(loss, "mse", True)
        return LossCurvature(loss, "ad", False)

    @property
    def closed(self) -> bool:
        """Cross-entropy (no class weights) or MSE: a negative log-likelihood whose Hessian in
        the output, and its square root, have closed forms."""
        return self.kind in ("ce", "mse")

    def require_closed(self, need: str, otherwise: str = "") -> None:
        """Raise ``UnsupportedOperationError`` unless :attr:`closed`; the message is ``need``,
        the losses to pass, and ``otherwise`` (what takes any other loss) where given."""
        if not self.closed:
            tail = f", or use {otherwise}" if otherwise else ""
            raise UnsupportedOperationError(
                f"{need}: pass nn.CrossEntropyLoss (weight=None) or nn.MSELoss{tail}")

    def check(self, out: torch.Tensor, y: Any) -> None:
        """Evaluate once on a batch: a scalar, and targets that fit the closed form."""
        value = self.fn(out, y)
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ShapeError(f"the loss must return a scalar, got {got}; {_REDUCE}, or sum the "
                             "per-sample losses in your function")
        if self.kind == "ce" and out.ndim < 2:
            raise ShapeError(f"cross-entropy needs logits of shape (n, C, ...), got "
                             f"{tuple(out.shape)}; return the logits from the model")

    def value(self, out: torch.Tensor, y: Any) -> torch.Tensor:
        """``L_b``, written out for MSE: torch's ``mse_loss`` has no forward-over-reverse
        derivative (its backward writes into a zero tangent)."""
        if self.kind == "mse":
            sq = (out - y) ** 2
            return sq.mean() if self.mean else sq.sum()
        return self.fn(out, y)

    def weight(self, out: torch.Tensor, y: Any = None) -> float:
        """``w_b``: 1 for a sum; for a mean the batch's samples, for cross-entropy less its
        ignored targets (its counted targets over the positions per sample), so that
        ``Σ_b w_b L_b / Σ_b w_b`` is the mean over the data as one batch, as torch counts it."""
        if not self.mean:
            return 1
        keep = None if y is None else self.counted(y)
        if keep is None or bool(keep.all()):
            return int(out.shape[0])
        return float(keep.sum()) * out.shape[0] / keep.numel()

    @property
    def smoothing(self) -> float:
        """Cross-entropy's ``label_smoothing`` ``ε`` (0 for ``F.cross_entropy``)."""
        return float(getattr(self.fn, "label_smoothing", 0.0))

    def counted(self, y: Any) -> torch.Tensor | None:
        """Cross-entropy with class indices: the boolean mask, shaped like ``y``, of the
        targets that are not ``ignore_index`` (torch's loss leaves the others out); ``None``
        where every target counts."""
        if self.kind != "ce" or not isinstance(y, torch.Tensor) or y.is_floating_point():
            return None
        return y != getattr(self.fn, "ignore_index", -100)

    def targets(self, out: torch.Tensor, y: Any) -> torch.Tensor:
        """Cross-entropy's target distribution ``t`` shaped like ``out`` (``(n, C, ...)``),
        label smoothing applied, ``t = (1 − ε) y + ε / C``: the loss per position is
        ``−Σ_c t_c log p_c``; an ignored class index gives ``t = 0``."""
        eps, C = self.smoothing, out.shape[1]
        keep = self.counted(y)
        if keep is None:
            t = y.to(out.dtype)
        else:
            t = torch.zeros_like(out).scatter_(1, torch.where(keep, y, 0).unsqueeze(1), 1.0)
        if eps:
            t = t * (1.0 - eps) + eps / C
        return t if keep is None else t * keep.unsqueeze(1).to(out.dtype)

    def mass(self, y: Any, like: torch.Tensor) -> torch.Tensor:
        """Cross-entropy's ``Σ_c t_c`` per position, shaped ``(n, 1, ...)`` like ``like``: the
        factor of the loss Hessian ``Σ t · (diag p − p pᵀ)``. It is 1 for a class index (0
        for an ignored one) whatever the smoothing, ``(1 − ε) Σ y + ε`` for probabilities."""
        keep = self.counted(y)
        if keep is not None:
            return keep.unsqueeze(1).to(like.dtype)
        eps = self.smoothing
        return y.to(like.dtype).sum(dim=1, keepdim=True) * (1.0 - eps) + eps

    def _ce_closed(self, y: Any) -> bool:
        keep = self.counted(y)
        return keep is None or bool(keep.all())

    def hvp(self, out: torch.Tensor, y: Any, u: torch.Tensor) -> torch.Tensor:
        """``w_b ∇²_out L_b u`` for ``u`` shaped like ``out``."""
        out = out.detach()
        if self.kind == "ce" and self._ce_closed(y):
            p = torch.softmax(out, dim=1)
            Hu = p * u - p * (p * u).sum(dim=1, keepdim=True)
            if y.is_floating_point():  # probability targets: the Hessian scales with Σ t
                Hu = Hu * self.mass(y, Hu)
            if self.mean:  # a mean over n · (positions per sample)
                Hu = Hu * (out.shape[0] / (out.numel() // out.shape[1]))
            return Hu
        if self.kind == "mse":
            scale = 2.0 * (out.shape[0] / out.numel() if self.mean else 1.0)
            return scale * u
        w = self.weight(out, y)
        if w == 0:  # every target ignored: the batch counts for nothing (torch's mean is NaN)
            return torch.zeros_like(u)

        def batch_loss(o: torch.Tensor) -> torch.Tensor:
            return self.fn(o, y)

        # reverse over reverse (H is symmetric): double backward exists for more losses than
        # forward-over-reverse (huber_loss has none)
        pull = torch.func.vjp(torch.func.grad(batch_loss), out)[1]
        Hv: torch.Tensor = pull(u)[0]
        return Hv * w if w != 1 else Hv

    def sqrt_columns(self, out: torch.Tensor, y: Any) -> torch.Tensor:
        """``(n, K, C)``: per sample ``K`` vectors ``s_k`` with ``Σ_k s_k s_kᵀ`` the sample's
        block of ``w_b ∇²_out L_b``, for outputs ``(n, C)``. Cross-entropy:
        ``S = diag(√p) − p √pᵀ`` (column ``k`` is ``√p_k (e_k − p)``; ``S Sᵀ = diag(p) − ppᵀ``
        as ``Σ_k p_k = 1``); MSE: ``√(2 c) I``."""
        out = out.detach()
        n, C = out.shape
        eye = torch.eye(C, dtype=out.dtype, device=out.device)
        if self.kind == "mse":
            c = 1.0 / C if self.mean else 1.0
            return (2.0 * c) ** 0.5 * eye.expand(n, C, C)
        p = torch.softmax(out, dim=1)
        S = p.sqrt()[:, :, None] * (eye - p[:, None, :])  # row k: √p_k (e_k − p)
        # Σ t per sample (0 where the target is ignored: the sample counts for nothing)
        return S * self.mass(y, S).sqrt()[:, :, None]

