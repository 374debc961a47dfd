"""Closed-form gradients of the common losses with respect to the network output.

* cross-entropy on logits ``z`` (``torch.nn.functional.cross_entropy``): ``σ − y``;
* mean squared error (``torch.nn.functional.mse_loss``): ``2 (ŷ − t) / N``.

These start :func:`jacobite.nn.backprop`'s backward pass.

>>> import torch
>>> z = torch.tensor([2.5, 1.0, 3.0], dtype=torch.float64)
>>> [round(v, 6) for v in cross_entropy_gradient(z, 0).tolist()]
[-0.651793, 0.077696, 0.574097]
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from ..errors import DtypeError, InvalidOptionError, ShapeError
from . import _checks as chk

__all__ = ["cross_entropy_gradient", "cross_entropy_loss", "mse_gradient", "one_hot_target"]

#: How per-sample losses combine over a batch.
Reduction = Literal["sum", "mean"]
_REDUCTIONS: tuple[Reduction, ...] = ("sum", "mean")


def one_hot_target(target: Any, z: torch.Tensor) -> torch.Tensor:
    """The target as a distribution ``y`` shaped like the logits ``z`` (``(K,)`` or ``(B, K)``).

    ``target`` is a class index (an int, a 0-d or ``(B,)`` integer tensor) or class
    probabilities shaped like ``z``, as in ``torch.nn.functional.cross_entropy``.

    >>> import torch
    >>> one_hot_target(2, torch.zeros(3)).tolist()
    [0.0, 0.0, 1.0]
    """
    z = chk.float_tensor(z, "z")
    if z.ndim not in (1, 2):
        raise ShapeError(
            f"cross-entropy takes logits of shape (K,) or (B, K), got {tuple(z.shape)}; reshape "
            f"to (B, K) with the classes last"
        )
    K = z.shape[-1]
    if K == 0:
        raise ShapeError(f"the logits have no classes (shape {tuple(z.shape)}); cross-entropy "
                         f"needs at least one logit per sample in the last dimension")
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        chk.same_shape(z, target, "the logits", "target (class probabilities)")
        return target.to(z.dtype)
    if isinstance(target, bool) or not isinstance(target, (int, torch.Tensor)):
        raise DtypeError(
            f"target must be a class index (int or integer tensor) or a float tensor of class "
            f"probabilities shaped like the logits, got {type(target).__name__}"
        )
    idx = torch.as_tensor(target, device=z.device)
    if idx.dtype in (torch.bool,) or idx.is_floating_point() or idx.is_complex():
        raise DtypeError(f"class indices must be integers, got dtype {idx.dtype}; use .long()")
    want = () if z.ndim == 1 else (z.shape[0],)
    if tuple(idx.shape) != want:
        raise ShapeError(
            f"class-index target must have shape {want} for logits of shape {tuple(z.shape)}, got "
            f"{tuple(idx.shape)}; give one class index per sample"
        )
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= K):
        raise InvalidOptionError(
            f"class index out of range: got values in [{int(idx.min())}, {int(idx.max())}] but "
            f"there are {K} classes; use indices 0 to {K - 1}"
        )
    return torch.nn.functional.one_hot(idx.long(), K).to(z.dtype)


def cross_entropy_gradient(z: torch.Tensor, target: Any, *, reduction: Reduction = "sum",
                           ) -> torch.Tensor:
    """Gradient of cross-entropy ``−Σ yᵢ log σᵢ`` w.r.t. the logits ``z``: ``σ − y``.

    For a one-hot (or any normalised) ``y`` this is ``σ − y``; for soft targets that do not sum
    to one it is ``(Σ y) σ − y``. ``z`` is ``(K,)`` or ``(B, K)``; ``target`` as in
    ``torch.nn.functional.cross_entropy`` (class indices or probabilities). ``reduction="sum"``
    (default) gives each sample's ``σ − y``; ``"mean"`` divides by the batch size, matching
    ``cross_entropy``'s default. σ comes from ``torch.softmax`` (stable for huge logits).

    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    >>> cross_entropy_gradient(z, torch.tensor([0, 1]), reduction="mean").tolist()
    [[-0.25, 0.25], [0.25, -0.25]]
    """
    z = chk.float_tensor(z, "z", min_ndim=1)
    chk.choice(reduction, _REDUCTIONS, "reduction")
    y = one_hot_target(target, z)
    sigma = torch.softmax(z, -1)
    grad = y.sum(-1, keepdim=True) * sigma - y
    if reduction == "mean" and z.ndim == 2:
        grad = grad / z.shape[0]
    return grad


def cross_entropy_loss(z: torch.Tensor, target: Any, *, reduction: Reduction = "sum",
                       ) -> torch.Tensor:
    """Cross-entropy ``−Σ yᵢ log σᵢ(z)`` via ``log_softmax`` (summed or averaged over the batch).

    >>> import torch
    >>> round(cross_entropy_loss(torch.tensor([0.0, 0.0]), 1).item(), 6)
    0.693147
    """
    z = chk.float_tensor(z, "z", min_ndim=1)
    chk.choice(reduction, _REDUCTIONS, "reduction")
    y = one_hot_target(target, z)
    per = -(y * torch.log_softmax(z, -1)).sum(-1)
    return per.mean() if reduction == "mean" else per.sum()


def mse_gradient(output: torch.Tensor, target: torch.Tensor, *,
                 reduction: Reduction = "mean") -> torch.Tensor:
    """Gradient of ``mse_loss(output, target)`` w.r.t. ``output``: ``2 (ŷ − t) / N`` (mean).

    ``reduction="sum"`` drops the ``1/N``; ``N`` is the number of entries, as in
    ``torch.nn.functional.mse_loss``.

    >>> import torch
    >>> mse_gradient(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])).tolist()
    [1.0, 3.0]
    """
    output = chk.float_tensor(output, "output")
    target = chk.float_tensor(target, "target")
    chk.same_shape(output, target, "output", "target")
    chk.choice(reduction, _REDUCTIONS, "reduction")
    grad = 2 * (output - target.to(output.dtype))
    return grad / max(output.numel(), 1) if reduction == "mean" else grad
