"""Backpropagation written out: the loss gradient pulled back through each layer's Jacobian.

:func:`backprop` runs the forward pass, starts from the closed-form gradient of the loss with
respect to the output (``σ − y`` for cross-entropy, ``2(ŷ − t)/N`` for MSE) and walks the layers
backwards: the gradient with respect to a layer's input is ``Jᵀ g`` (``rmv`` of the layer's
structured Jacobian from :func:`~jacobite.nn.layer_jacobian`: ``Wᵀ g`` for Linear, ``σ'(z) ⊙ g``
for an activation, ``σ ⊙ (g − ⟨g, σ⟩)`` for softmax) and the gradient with respect to its weights
is its parameter Jacobian applied to ``g`` (``Σ_b g_b x_bᵀ`` and ``Σ_b g_b`` for Linear,
``jacobite.vjp`` of the layer's functional form otherwise). Autograd's tape is never used
(the pass runs under ``torch.no_grad()``). Note that ``∇_W L`` is *not* the product of the layer
Jacobians ``J⁽ᴸ⁾ ⋯ J⁽¹⁾`` (that is ``∂ output / ∂ input``): each weight gradient is the upstream
gradient row times that layer's parameter Jacobian.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Linear(2, 2), nn.Tanh()).double()
>>> x, t = torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
>>> r = backprop(net, x, t, loss="mse")
>>> sorted(r.gradients), [s.structure for s in r.steps][1:]
(['0.bias', '0.weight', 'input'], ["diagonal: diag(tanh'(z))", 'dense W (2x2)'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..dense import vjp
from ..errors import DtypeError, ShapeError
from ..operators import JacobianOperator
from . import _checks as chk
from .layers import layer_step
from .losses import Reduction, cross_entropy_gradient, cross_entropy_loss, mse_gradient

__all__ = ["BackpropResult", "BackpropStep", "backprop"]

LossFn = Callable[[torch.Tensor, Any], torch.Tensor]
#: A built-in loss by name: mean squared error or cross-entropy on logits.
LossName = Literal["mse", "cross_entropy"]


def _short(t: torch.Tensor, max_entries: int = 6) -> str:
    flat = t.detach().reshape(-1).tolist()
    cells = ", ".join(f"{v:.4g}" for v in flat[:max_entries])
    more = ", ..." if len(flat) > max_entries else ""
    return f"{tuple(t.shape)} [{cells}{more}]"


@dataclass(frozen=True, eq=False)
class BackpropStep:
    """One step of the backward pass: the loss, or one layer (in backward order).

    ``upstream`` is ``∂L/∂(layer output)``, ``downstream`` is ``∂L/∂(layer input)`` =
    ``Jᵀ upstream``; ``parameter_gradients`` the gradients of the layer's own weights (model-level
    names) and ``parameter_rule`` how they were obtained; ``jacobian`` the layer's structured input
    Jacobian (``None`` for the loss step).
    """

    name: str
    layer: str
    structure: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    jacobian_shape: tuple[int, int]
    upstream: torch.Tensor
    downstream: torch.Tensor
    parameter_gradients: dict[str, torch.Tensor] = field(default_factory=dict)
    jacobian: JacobianOperator | None = field(default=None, repr=False, compare=False)
    parameter_rule: str = ""

    def explain(self, max_entries: int = 6) -> str:
        """A few lines: the layer, its Jacobian's structure, the gradients in and out."""
        head = f"{self.name}: {self.layer}"
        if self.name == "loss":
            return "\n".join([head, f"    dL/d(output) = {self.structure}",
                              f"                 = {_short(self.downstream, max_entries)}"])
        lines = [head, f"    Jacobian: {self.structure}, shape {self.jacobian_shape}"]
        lines.append(f"    upstream   dL/d(out) = {_short(self.upstream, max_entries)}")
        down = _short(self.downstream, max_entries)
        lines.append(f"    downstream dL/d(in)  = J^T g = {down}")
        if self.parameter_rule:
            lines.append(f"    weights: {self.parameter_rule}")
        for k, g in self.parameter_gradients.items():
            lines.append(f"    dL/d({k}) = {_short(g, max_entries)}")
        return "\n".join(lines)

    __str__ = explain


@dataclass(frozen=True, eq=False)
class BackpropResult:
    """Gradients (``name → tensor`` like ``model.named_parameters()``, plus ``"input"``), the loss,
    the model output and the backward steps (loss first, then the layers from last to first)."""

    loss: torch.Tensor
    output: torch.Tensor
    gradients: dict[str, torch.Tensor]
    steps: tuple[BackpropStep, ...]

    def explain(self, max_entries: int = 6) -> str:
        """The backward pass step by step, as text (also ``str(result)``).

        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 1)).double()
        >>> x, t = torch.ones(2, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
        >>> r = backprop(net, x, t)
        >>> print(r.explain())  # doctest: +ELLIPSIS
        backprop: loss = ..., 2 steps (backward order)
        [0] loss: mse(reduction='mean')
        ...
        """
        out = [f"backprop: loss = {float(self.loss):.6g}, {len(self.steps)} steps (backward order)"]
        out += [f"[{i}] {s.explain(max_entries)}" for i, s in enumerate(self.steps)]
        out.append("gradients: " + ", ".join(f"{k} {tuple(v.shape)}"
                                              for k, v in self.gradients.items()))
        return "\n".join(out)

    __str__ = explain


def _leaves(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
    else:
        yield prefix or type(module).__name__, module


def _loss_start(loss: LossName | LossFn, out: torch.Tensor, target: Any, reduction: Reduction
                ) -> tuple[torch.Tensor, torch.Tensor, str, str]:
    """``(loss value, ∂L/∂output, label, structure)``."""
    if callable(loss):
        value, fn = vjp(lambda o: loss(o, target), out)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ShapeError("the loss callable must return a scalar tensor (one element); "
                             "reduce it, e.g. with .mean() or .sum()")
        name = getattr(loss, "__name__", type(loss).__name__)
        g = fn(torch.ones_like(value))[0]
        return value.reshape(()), g, name, "dL/d(output) by jacobite.vjp"
    chk.choice(loss, ("mse", "cross_entropy"), "loss")
    chk.choice(reduction, ("mean", "sum"), "reduction")
    label = f"{loss}(reduction={reduction!r})"
    if loss == "mse":
        t = chk.float_tensor(target, "target").to(out.dtype)
        chk.same_shape(out, t, "the model output", "target")
        g = mse_gradient(out, t, reduction=reduction)
        div = "/N" if reduction == "mean" else ""
        how = f"2 (output - target){div}, closed form"
        return F.mse_loss(out, t, reduction=reduction), g, label, how
    g = cross_entropy_gradient(out, target, reduction=reduction)
    div = "/B" if reduction == "mean" and out.ndim == 2 else ""
    value = cross_entropy_loss(out, target, reduction=reduction)
    return value, g, label, f"(softmax(output) - onehot(target)){div}, closed form"


def _param_grads(module: nn.Module, a: torch.Tensor, g: torch.Tensor, names: dict[int, str],
                 prefix: str) -> tuple[dict[str, torch.Tensor], str]:
    """The layer's weight gradients (model-level names) and the rule that produced them."""
    own = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
    if not own:
        return {}, ""
    full = {k: names.get(id(p), f"{prefix}.{k}") for k, p in own}
    if isinstance(module, nn.Linear):
        m, n = module.weight.shape
        G, A = g.reshape(-1, m), a.reshape(-1, n)
        out = {full["weight"]: G.mT @ A} if "weight" in full else {}
        if "bias" in full:
            out[full["bias"]] = G.sum(0)
        return out, "dL/dW = sum_b g_b x_b^T (outer products), dL/db = sum_b g_b"
    params = {k: p.detach() for k, p in own}
    _, fn = vjp(lambda p: functional_call(module, p, (a,), strict=False), params)
    grads = fn(g)[0]
    return {full[k]: grads[k] for k in params}, "jacobite.vjp of the layer's functional form"


def backprop(model: nn.Module, x: torch.Tensor, target: Any,
             loss: LossName | LossFn = "mse", *, reduction: Reduction = "mean",
             ) -> BackpropResult:
    """Gradients of ``loss(model(x), target)`` w.r.t. ``x`` and every weight, by explicit VJPs.

    ``model`` is an ``nn.Sequential`` (nested ones are walked; any other module counts as one
    layer); ``x`` one sample ``(n,)`` or a batch ``(B, n)``. ``loss`` is ``"mse"``
    (``F.mse_loss``; ``target`` shaped like the output), ``"cross_entropy"`` (``F.cross_entropy`` on
    the output as logits; ``target`` class indices or probabilities) or a callable
    ``loss(output, target) -> scalar``; ``reduction`` is ``"mean"`` or ``"sum"`` (built-in losses).

    Returns a :class:`BackpropResult`: ``gradients`` (model parameter names plus ``"input"``),
    ``loss``, ``output`` and ``steps``; ``print(result)`` shows the backward pass step by step.
    Equal to autograd's gradients up to rounding.

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    >>> x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    >>> r = backprop(net, x, 1, loss="cross_entropy")
    >>> y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    >>> bool(torch.allclose(r.gradients["0.bias"], torch.softmax(net(x), 0) - y))
    True
    """
    if not isinstance(model, nn.Module):
        raise DtypeError(f"backprop needs an nn.Module (e.g. nn.Sequential), got "
                         f"{type(model).__name__}")
    x = chk.float_tensor(x, "x", min_ndim=1).detach()
    names = {id(p): k for k, p in model.named_parameters()}
    layers = list(_leaves(model))
    with torch.no_grad():
        acts, ops = [x], []
        for _, layer in layers:
            op, y, structure = layer_step(layer, acts[-1])
            ops.append((op, structure))
            acts.append(y.detach())
        out = acts[-1]
        value, g, label, how = _loss_start(loss, out, target, reduction)
        steps = [BackpropStep("loss", label, how, tuple(out.shape), (), (1, out.numel()),
                              torch.ones((), dtype=out.dtype), g.detach())]
        grads: dict[str, torch.Tensor] = {}
        for (name, layer), (op, structure), a, y in reversed(
                list(zip(layers, ops, acts[:-1], acts[1:], strict=True))):
            g_in = op.rmv(g.reshape(-1).to(op.dtype)).reshape(a.shape)
            pg, rule = _param_grads(layer, a, g, names, name)
            for k, v in pg.items():  # a module used twice accumulates, as autograd does
                grads[k] = grads[k] + v if k in grads else v
            steps.append(BackpropStep(name, repr(layer), structure, tuple(a.shape),
                                      tuple(y.shape), op.shape, g, g_in, pg, op, rule))
            g = g_in
    ordered = {k: grads[k] for k in names.values() if k in grads}
    ordered["input"] = g
    return BackpropResult(value.detach(), out, ordered, tuple(steps))
