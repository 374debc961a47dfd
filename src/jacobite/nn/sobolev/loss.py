"""The Sobolev (Jacobian-enhanced) training loss: fit a model's values *and* its input
Jacobians, ``L = L_values + λ · L_Jacobian``.

Where the derivatives of the training targets are cheap — simulators with adjoints, analytic
models, any torch function (its exact Jacobian by :func:`jacobite.nn.sobolev_data`) — matching
them as well as the values reaches a given accuracy with far fewer training points.

>>> import torch
>>> from jacobite.nn import sobolev_loss
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
>>> x = torch.randn(16, 2)
>>> y, dydx = (x ** 2).sum(1, keepdim=True), 2 * x[:, None, :]      # (16, 1), (16, 1, 2)
>>> res = sobolev_loss(net, x, y, dydx, weight=0.5)
>>> res.total.backward()                       # gradients of both terms in net's parameters
>>> bool(torch.isclose(res.total, res.value + 0.5 * res.jacobian))
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ... import _validate
from ...errors import (
    ArgumentTypeError,
    InvalidOptionError,
    ShapeError,
    UnsupportedOperationError,
)
from . import _jac
from ._targets import Targets, prepare

__all__ = ["SobolevLoss", "sobolev_loss"]

Reduction = Literal["mean", "sum", "none"]


@dataclass(frozen=True)
class SobolevLoss:
    """The terms of a Sobolev loss; every tensor keeps the autograd graph.

    ``total = value + (λ-weighted Jacobian term)``; ``value`` is the squared error of the
    values and ``jacobian`` the (unweighted) squared error of the known partials — in full mode
    averaged over the known entries, in projected mode the unbiased estimate of that average.
    ``prediction`` is the model's output ``(B, m)``; ``prediction_jacobian`` its per-sample
    Jacobians ``(B, m, n)`` (full mode), its directional derivatives ``(B, m, k)`` (projected
    mode) or None (values only). With ``reduction="none"`` each term is per sample, ``(B,)``.
    """

    total: torch.Tensor
    value: torch.Tensor
    jacobian: torch.Tensor
    prediction: torch.Tensor
    prediction_jacobian: torch.Tensor | None
    directions: torch.Tensor | None = None  # (B, k, n) in projected mode

    def backward(self) -> None:
        """``self.total.backward()`` (summed first when ``reduction="none"``)."""
        (self.total.sum() if self.total.ndim else self.total).backward()


def _reduce(sq: torch.Tensor, count: int | torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """A sum of squared errors ``(B, …)`` over ``count`` known entries (an int: the same for
    every sample; a tensor ``(B,)``: per sample), reduced as asked (0 where none is known)."""
    if reduction == "sum":
        return sq.sum()
    if reduction == "mean" and isinstance(count, int) and count == sq[0].numel():
        return sq.mean()
    per = sq.reshape(sq.shape[0], -1).sum(1) if reduction == "none" else sq.sum()
    if isinstance(count, int):
        return per / (count if reduction == "none" else count * sq.shape[0])
    return per / (count if reduction == "none" else count.sum()).clamp_min(1)


def sobolev_loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                 y: torch.Tensor, dydx: torch.Tensor | None = None, *,
                 weight: float | torch.Tensor = 1.0, mask: torch.Tensor | None = None,
                 mode: Literal["full", "projected"] = "full", k: int | None = None,
                 directional: tuple[torch.Tensor, torch.Tensor] | None = None,
                 reduction: Reduction = "mean", jac_mode: _jac.JacMode = "auto",
                 seed: int | None = None) -> SobolevLoss:
    """The loss ``L_values + λ · L_Jacobian`` of a model on values ``y`` and partials ``dydx``.

    ``model`` (an ``nn.Module`` or function) maps a batch ``x`` of shape ``(B, n)`` (or
    ``(B,)``: one input) to ``(B, m)`` or ``(B,)``, treating samples independently (BatchNorm
    in training mode raises :class:`~jacobite.errors.ModuleStateError`). ``y`` is ``(B, m)``
    or ``(B,)``; ``dydx`` the target Jacobians ``(B, m, n)`` (``(B, n)`` with a 1-D ``y``), or
    None for the values alone. Missing partials are NaN entries of ``dydx`` or False entries
    of ``mask`` (broadcastable to ``(B, m, n)``); they take no part in the loss.

    ``weight`` is λ: a float or a tensor broadcastable to ``(B, m, n)`` (per-output, per-input
    or per-entry weights; ``(B, m, 1)`` in projected mode). The value term is the mean squared
    error over ``B·m`` values; the Jacobian term the mean squared error over the known partials
    (``reduction="sum"``: sums; ``"none"``: per-sample means, shape ``(B,)``).

    ``mode="full"`` computes each sample's Jacobian exactly, by ``m`` reverse-mode products or
    ``n`` forward-mode ones (``jac_mode="auto"`` picks the cheaper, weighing forward mode's
    dearer products: forward for ``m ≥ 4n`` or many inputs; reverse when the model draws
    random numbers). ``mode="projected"`` matches ``k`` directional derivatives ``J v`` per
    sample instead (``v`` standard normal, drawn with ``seed``), ``k`` forward-mode products
    whatever ``n`` and ``m``: its Jacobian term is an unbiased estimate of the full one, cheap
    for many inputs and outputs. Precomputed directional derivatives are given as
    ``directional=(V, T)`` with directions ``V`` ``(k, n)`` or ``(B, k, n)`` and values ``T``
    ``(B, m, k)`` (and ``dydx=None``); the term then matches ``J V`` to ``T`` with the same
    scaling (unbiased when ``E[vvᵀ] = I``).

    Everything returned is differentiable in the model's parameters (and in ``x`` when it
    requires grad): call ``res.total.backward()`` in a training step.

    >>> import torch
    >>> from jacobite.nn import sobolev_loss
    >>> f = lambda b: 3.0 * b                                   # J = 3 I per sample
    >>> x = torch.randn(4, 2)
    >>> res = sobolev_loss(f, x, 3 * x, torch.zeros(4, 2, 2))   # values exact, partials 0
    >>> res.value.item(), round(res.jacobian.item(), 4)         # 2 of 4 entries are 3: 9·2/4
    (0.0, 4.5)
    """
    _validate.callable_(model, "model")
    _validate.choice(mode, "mode", ("full", "projected"))
    _validate.choice(reduction, "reduction", ("mean", "sum", "none"))
    _validate.choice(jac_mode, "jac_mode", ("auto", "forward", "reverse"))
    _validate.seed(seed)
    if mode == "full" and (k is not None or directional is not None):
        raise InvalidOptionError("k and directional= belong to mode='projected'; pass "
                                 "mode='projected' or drop them")
    if any(isinstance(a, torch.Tensor) and _validate.under_vmap(a) for a in (x, y, dydx)):
        raise UnsupportedOperationError(
            "sobolev_loss cannot run under torch.func.vmap (it differentiates the model with "
            "torch.autograd); it takes a whole batch already: concatenate the batches along "
            "dimension 0 and call it once (reduction='none' gives per-sample terms), or loop")
    t = prepare(x, y, dydx, weight=weight, mask=mask, directional=directional,
                projected=mode == "projected")
    with _jac.one_call():
        if mode == "projected":
            return _projected(model, t, k, jac_mode, reduction, seed)
        if t.dydx is None:
            out = _jac._run(model, x, t.batch)
            value = _reduce((out - t.y) ** 2, t.m, reduction)
            return SobolevLoss(value, value, torch.zeros_like(value), out, None)
        out, J = _jac.full(model, x, t.m, jac_mode)
        return _assemble(t, out, J, t.dydx, t.mask, reduction, None)


def _projected(model: Callable[[torch.Tensor], torch.Tensor], t: Targets, k: int | None,
               jac_mode: _jac.JacMode, reduction: Reduction, seed: int | None) -> SobolevLoss:
    """Projected mode: ``J v`` against ``dydx v`` (or the given directional derivatives)."""
    if t.directions is not None:
        v = t.directions
        if k is not None and k != v.shape[1]:
            raise InvalidOptionError(f"k={k} but directional= holds {v.shape[1]} directions; "
                                     "drop k")
        target = t.directional_values
    else:
        if t.dydx is None:
            raise ArgumentTypeError("mode='projected' needs dydx (full target Jacobians) or "
                                    "directional=(V, T) (precomputed directional derivatives)")
        k = 1 if k is None else _validate.positive_int(k, "k (directions per sample)")
        gen = _validate.generator(seed, t.x.device)
        v = torch.randn((t.batch, k, t.n), generator=gen, dtype=t.dydx.dtype,
                        device=t.dydx.device)
        target = torch.einsum("bmn,bkn->bmk", t.dydx, v)
    assert target is not None
    out, jv = _jac.directional(model, t.x, v, jac_mode)
    res = _assemble(t, out, jv, target, None, reduction, v)
    return res


def _assemble(t: Targets, out: torch.Tensor, pred: torch.Tensor, target: torch.Tensor,
              mask: torch.Tensor | None, reduction: Reduction,
              v: torch.Tensor | None) -> SobolevLoss:
    """Both terms from the predictions and targets (NaN-safe: unknown partials are masked
    with ``where``, so they send no NaN into the gradients)."""
    if out.shape[1] != t.m:
        raise ShapeError(f"the model gives {out.shape[1]} outputs per sample but y has {t.m}; "
                         "make y (B, m) match the model's output")
    value = _reduce((out - t.y) ** 2, t.m, reduction)
    diff = pred - target
    count: int | torch.Tensor = pred.shape[1] * pred.shape[2]
    if mask is not None:
        diff = torch.where(mask, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
        count = mask.expand_as(diff).reshape(t.batch, -1).sum(1)
    jsq = diff ** 2
    if v is not None:
        # E‖(J − T)v‖² = ‖J − T‖²_F for v ~ N(0, I): divide by the k directions and count
        # the m·n entries of the full Jacobian, so this estimates the full-mode term
        jsq = jsq / v.shape[1]
        count = t.m * t.n
    jac = _reduce(jsq, count, reduction)
    w = t.weight
    if isinstance(w, torch.Tensor):
        weighted = _reduce(jsq * w, count, reduction)
    else:
        weighted = jac if w == 1.0 else jac * w
    return SobolevLoss(value + weighted, value, jac, out, pred, v)
