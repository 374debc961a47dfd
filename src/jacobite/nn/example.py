"""The softmax-classification worked example as data: σ, J, its spectrum and three gradients.

For logits ``z`` and a true class ``c`` (one-hot ``y``):

* ``ce_gradient`` = ``σ − y`` is the gradient of the **cross-entropy** ``−log σ_c`` w.r.t. ``z``;
* ``jacobian_times_error`` = ``J (σ − y)`` (``J = diag(σ) − σσᵀ``, symmetric, so ``Δy·J = J Δy``)
  is the gradient of the **squared error** ``½‖σ − y‖²`` w.r.t. ``z`` — *not* of the
  cross-entropy. The source text of that example calls it "the gradient of the loss",
  blurring the two.
* ``squared_error_gradient`` is that same gradient computed independently, by ``torch.func.grad``
  of ``½‖softmax(z) − y‖²``, as a cross-check.

The source text's numbers for z = [2.5, 1.0, 3.0], class "dog": it rounds σ to two decimals
(``[0.35, 0.08, 0.57]``), which moves every later digit; its "cat" entry ``0.0019`` is what the
rounded σ gives (``−0.0019``) with the sign dropped — the exact value is ``−0.002406``; and its
"four animals" are three (dog, cat, tiger).

>>> ex = softmax_example([2.5, 1.0, 3.0], 0)
>>> [round(v, 6) for v in ex.jacobian_times_error]
[-0.264797, -0.002406, 0.267203]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ArgumentTypeError, ShapeError
from . import _checks as chk
from .losses import cross_entropy_gradient, cross_entropy_loss, one_hot_target
from .softmax import softmax_jacobian

__all__ = ["REFERENCE_LOGITS", "SoftmaxExample", "softmax_example"]

#: Logits and target class of the softmax-classification worked example (dog, cat, tiger; true
#: class dog).
REFERENCE_LOGITS = (2.5, 1.0, 3.0)
REFERENCE_LABELS = ("dog", "cat", "tiger")

Vec = tuple[float, ...]


def _vec(t: torch.Tensor) -> Vec:
    return tuple(float(v) for v in t.reshape(-1).tolist())


def _fmt(v: Sequence[float], digits: int = 6) -> str:
    cells = (f"{x:.{digits}f}" for x in v)
    return "[" + ", ".join("0." + "0" * digits if float(c) == 0 else c for c in cells) + "]"


@dataclass(frozen=True)
class SoftmaxExample:
    """The worked example's quantities (float64) with notes explaining them.

    ``to_dict()`` gives plain lists and floats (keys ``sigma``, ``jacobian``, ``eigenvalues``,
    ``ce_gradient``, ``jacobian_times_error``, ...); ``str()`` a readable report.
    """

    logits: Vec
    target: int
    labels: tuple[str, ...] | None
    sigma: Vec
    jacobian: tuple[Vec, ...]
    eigenvalues: Vec
    error: Vec
    ce_gradient: Vec
    jacobian_times_error: Vec
    squared_error_gradient: Vec
    cross_entropy: float
    squared_error: float
    rounded_sigma: Vec
    rounded_jacobian_times_error: Vec
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists of floats, strings).

        >>> sorted(softmax_example([0.0, 0.0], 1).to_dict())[:3]
        ['ce_gradient', 'cross_entropy', 'eigenvalues']
        """
        return {
            "logits": list(self.logits),
            "target": self.target,
            "labels": None if self.labels is None else list(self.labels),
            "sigma": list(self.sigma),
            "jacobian": [list(r) for r in self.jacobian],
            "eigenvalues": list(self.eigenvalues),
            "error": list(self.error),
            "ce_gradient": list(self.ce_gradient),
            "jacobian_times_error": list(self.jacobian_times_error),
            "squared_error_gradient": list(self.squared_error_gradient),
            "cross_entropy": self.cross_entropy,
            "squared_error": self.squared_error,
            "rounded_sigma": list(self.rounded_sigma),
            "rounded_jacobian_times_error": list(self.rounded_jacobian_times_error),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        names = self.labels or tuple(str(i) for i in range(len(self.logits)))
        rows = [
            f"softmax example: z = {list(self.logits)}, true class {self.target} "
            f"({names[self.target]})",
            f"  classes                  {list(names)}",
            f"  sigma = softmax(z)       {_fmt(self.sigma)}",
            "  J = diag(sigma) - sigma sigma^T",
            *(f"      {_fmt(r)}" for r in self.jacobian),
            f"  eigenvalues of J         {_fmt(self.eigenvalues)}",
            f"  sigma - y  (CE gradient) {_fmt(self.ce_gradient)}",
            f"  J (sigma - y)            {_fmt(self.jacobian_times_error)}",
            f"  cross-entropy            {self.cross_entropy:.6f}",
            f"  1/2 |sigma - y|^2        {self.squared_error:.6f}",
            "notes:",
            *(f"  - {n}" for n in self.notes),
        ]
        return "\n".join(rows)


def _notes(ex: dict[str, Any], reference: bool) -> tuple[str, ...]:
    notes = [
        "sigma - y is the gradient of the cross-entropy loss -log sigma[target] with respect to "
        "the logits z (softmax and cross-entropy together collapse to this).",
        "J (sigma - y) is the gradient of the squared error 1/2 |sigma - y|^2 on the probabilities "
        "with respect to z (chain rule through J); it is NOT the cross-entropy gradient. "
        "J is symmetric, so the row-vector form (sigma - y) J gives the same numbers.",
        "J = diag(sigma) - sigma sigma^T is symmetric, positive semidefinite, has zero row sums "
        "(J 1 = 0, so rank K - 1) and eigenvalues in [0, 1/2] (each lies in a Gershgorin disc "
        "[0, 2 sigma_i (1 - sigma_i)], inside [0, 1/2]); the bound 1/4 claimed in the source text "
        "of the softmax-Jacobian worked example is wrong: "
        "sigma = (1/2, 1/2) gives the eigenvalue 1/2.",
    ]
    if reference:
        r = ex["rounded_jacobian_times_error"]
        notes += [
            "The source text rounds sigma to two decimals "
            f"{_fmt(ex['rounded_sigma'], 2)}; with that sigma J (sigma - y) = {_fmt(r, 4)}, "
            f"against the exact {_fmt(ex['jacobian_times_error'], 6)}.",
            f"Its value 0.0019 for 'cat' is the rounded {r[1]:.4f} with the sign dropped; the "
            f"exact entry {ex['jacobian_times_error'][1]:.6f} is negative.",
            "It calls this vector the gradient of the (cross-entropy) loss; it is the gradient of "
            "1/2 |sigma - y|^2. The cross-entropy gradient is sigma - y "
            f"= {_fmt(ex['ce_gradient'], 6)}.",
            "Its 'four animals' are three: dog, cat and tiger.",
        ]
    return tuple(notes)


def softmax_example(z: Sequence[float] | torch.Tensor = REFERENCE_LOGITS, target: int = 0, *,
                    labels: Sequence[str] | None = None) -> SoftmaxExample:
    """Everything about softmax at logits ``z`` with true class ``target``, with explanations.

    Computes (in float64) σ, the dense ``K × K`` Jacobian ``diag(σ) − σσᵀ`` and its eigenvalues,
    the cross-entropy gradient ``σ − y``, ``J (σ − y)`` (the gradient of ``½‖σ − y‖²``,
    cross-checked by ``torch.func.grad``), the losses, and what two-decimal rounding of σ gives.
    Defaults to the softmax-classification worked example (labels dog, cat, tiger), whose notes
    say where its source text goes wrong.

    >>> ex = softmax_example()
    >>> [round(v, 6) for v in ex.sigma], ex.labels
    ([0.348207, 0.077696, 0.574097], ('dog', 'cat', 'tiger'))
    >>> [round(v, 6) for v in ex.ce_gradient]
    [-0.651793, 0.077696, 0.574097]
    """
    zt = chk.float_tensor(z, "z", min_ndim=1).detach().to(torch.float64).cpu()
    if zt.ndim != 1 or zt.numel() < 1:
        raise ShapeError(f"softmax_example takes one vector of K >= 1 logits, got shape "
                         f"{tuple(zt.shape)}; pass e.g. [2.5, 1.0, 3.0]")
    K = zt.numel()
    y = one_hot_target(target, zt)
    reference = K == 3 and zt.tolist() == list(REFERENCE_LOGITS) and int(target) == 0
    if labels is None and zt.tolist() == list(REFERENCE_LOGITS):
        labels = REFERENCE_LABELS
    if labels is not None and (isinstance(labels, str) or not isinstance(labels, Sequence)
                               or not all(isinstance(a, str) for a in labels)):
        raise ArgumentTypeError(f"labels must be a sequence of class names (str), got "
                                f"{labels!r}; e.g. labels=('dog', 'cat', 'tiger')")
    if labels is not None and len(labels) != K:
        raise ShapeError(f"labels has {len(labels)} names for {K} logits; give one per class")
    J = softmax_jacobian(zt)
    sigma = torch.softmax(zt, 0)
    err = sigma - y
    sq_grad = torch.func.grad(lambda v: 0.5 * ((torch.softmax(v, 0) - y) ** 2).sum())(zt)
    rs = torch.round(sigma * 100) / 100
    re = rs - y
    data: dict[str, Any] = {
        "logits": _vec(zt), "target": int(target),
        "labels": None if labels is None else tuple(str(s) for s in labels),
        "sigma": _vec(sigma),
        "jacobian": tuple(_vec(r) for r in J.to_dense()),
        "eigenvalues": _vec(torch.linalg.eigvalsh(J.to_dense())),
        "error": _vec(err),
        "ce_gradient": _vec(cross_entropy_gradient(zt, int(target))),
        "jacobian_times_error": _vec(J.mv(err)),
        "squared_error_gradient": _vec(sq_grad),
        "cross_entropy": float(cross_entropy_loss(zt, int(target))),
        "squared_error": 0.5 * math.fsum(v * v for v in _vec(err)),
        "rounded_sigma": _vec(rs),
        "rounded_jacobian_times_error": _vec(rs * (re - (rs * re).sum())),
    }
    return SoftmaxExample(**data, notes=_notes(data, reference))
