"""Adversarial directions from the input gradient of the loss: FGSM and PGD, and accuracy
against the perturbation size ε.

``model`` maps a batch ``(B, *in)`` to logits ``(B, C)``; ``loss(logits, y)`` defaults to the
mean cross-entropy. Attacks never touch a parameter's ``.grad`` nor the model's mode: call
``model.eval()`` first if it has dropout or batch norm.

* :func:`fgsm` — one step ``x + ε·sign(∇ₓ loss)`` (Goodfellow et al., 2015);
* :func:`pgd` — projected gradient ascent in the L∞ or L2 ball (Madry et al., 2018);
* :func:`accuracy_vs_eps` and :func:`plot_accuracy_vs_eps` — the robustness curve.

>>> import torch
>>> from jacobite.analysis.adversarial import fgsm
>>> model = torch.nn.Linear(2, 2)
>>> x, y = torch.zeros(1, 2), torch.tensor([0])
>>> (fgsm(model, x, y, eps=0.1) - x).abs().max().item()
0.1...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from .. import _validate
from .._modules import keeps_state
from ..dense._batch_of_one import integer_input
from ..errors import (
    ArgumentTypeError,
    InvalidOptionError,
    ShapeError,
)
from ..viz._common import figure_and_axes, save_figure
from ._checks import check_batch, check_model

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["accuracy", "accuracy_vs_eps", "fgsm", "input_gradient", "pgd",
           "plot_accuracy_vs_eps"]

Model = Callable[[torch.Tensor], torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: The ball a perturbation lives in: ℓ∞ (``"inf"``) or ℓ2 (``"2"``).
Norm = Literal["inf", "2"]
#: The attack of :func:`accuracy_vs_eps`.
Attack = Literal["pgd", "fgsm"]


def _check(x: torch.Tensor, y: torch.Tensor, eps: float, model: Any) -> None:
    check_model(model)
    integer_input(x, "x")
    check_batch(x, "x")
    if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1]:
        raise ShapeError(f"y must hold one target per sample ({x.shape[0]}), got "
                         f"{getattr(y, 'shape', type(y).__name__)}; pass a tensor of length "
                         f"{x.shape[0]}")
    _validate.tolerance(eps, "eps")


def _clamp(x: torch.Tensor, clamp: tuple[float, float] | None) -> torch.Tensor:
    if clamp is None:
        return x
    lo, hi = clamp
    if not lo < hi:
        raise InvalidOptionError(f"clamp must be (lo, hi) with lo < hi, got {clamp!r}")
    return x.clamp(lo, hi)


@keeps_state
def input_gradient(model: Model, x: torch.Tensor, y: torch.Tensor,
                   loss: Loss = F.cross_entropy) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss value, ∇ₓ loss(model(x), y))`` — one forward and one backward pass.

    >>> import torch
    >>> value, g = input_gradient(torch.nn.Linear(3, 2), torch.zeros(4, 3), torch.zeros(4).long())
    >>> g.shape
    torch.Size([4, 3])
    """
    _check(x, y, 0.0, model)
    _validate.callable_(loss, "loss")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)
        if not isinstance(logits, torch.Tensor):
            raise ShapeError(f"the model must return one logits tensor (B, C), got "
                             f"{type(logits).__name__}; for a model with several outputs pass "
                             "a function that picks the logits, e.g. lambda b: model(b)['logits']")
        value = loss(logits, y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ShapeError("loss(logits, y) must return a scalar tensor (use a mean or sum "
                             "reduction)")
        (g,) = torch.autograd.grad(value.reshape(()), xg)
    return value.detach().reshape(()), g


@keeps_state
def fgsm(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float,
         loss: Loss = F.cross_entropy,
         clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """The fast gradient sign method: ``x + ε·sign(∇ₓ loss(model(x), y))``, then ``clamp``.

    The first-order (linearised) loss increase is ``ε‖∇ₓ loss‖₁``, the most any perturbation
    with ``‖δ‖_∞ ≤ ε`` achieves to first order. ``clamp=(lo, hi)`` keeps valid pixel values.

    >>> import torch
    >>> model = torch.nn.Linear(2, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    >>> fgsm(model, torch.zeros(1, 2), torch.tensor([0]), eps=0.5).tolist()
    [[-0.5, 0.5]]
    """
    _check(x, y, eps, model)
    _, g = input_gradient(model, x, y, loss)
    return _clamp(x.detach() + eps * g.sign(), clamp)


def _project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm == "inf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp_min(1e-30)
    scale = (eps / n).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.ndim - 1)))


@keeps_state
def pgd(model: Model, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None = None,
        steps: int = 10, random_start: bool = True, seed: int | None = None, norm: Norm = "inf",
        loss: Loss = F.cross_entropy, clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """Projected gradient ascent on the loss within ``‖x_adv − x‖ ≤ ε`` (Madry et al., 2018).

    ``norm="inf"``: steps ``α·sign(g)``, projection by clipping; ``norm="2"``: steps
    ``α·g/‖g‖₂`` per sample, projection onto the L2 ball. ``alpha`` defaults to ``2.5 ε / steps``.
    ``random_start`` begins at a uniform point of the ball (seeded by ``seed``, else torch's
    global generator). Every iterate is projected, then clamped to ``clamp=(lo, hi)``.

    >>> import torch
    >>> model, x, y = torch.nn.Linear(4, 3), torch.zeros(8, 4), torch.zeros(8).long()
    >>> bool(((pgd(model, x, y, eps=0.1, seed=0) - x).abs() <= 0.1 + 1e-7).all())
    True
    """
    _check(x, y, eps, model)
    _validate.choice(norm, "norm", ("inf", "2"))
    steps = _validate.positive_int(steps, "steps")
    alpha = 2.5 * eps / steps if alpha is None else _validate.tolerance(alpha, "alpha")
    random_start = _validate.boolean(random_start, "random_start")
    g = _validate.generator(seed, x.device)
    x0 = x.detach()
    delta = torch.zeros_like(x0)
    if random_start and eps > 0:
        if norm == "inf":
            delta = (torch.rand(x0.shape, generator=g, device=x0.device, dtype=x0.dtype) * 2
                     - 1) * eps
        else:
            d = torch.randn(x0.shape, generator=g, device=x0.device, dtype=x0.dtype)
            d = d / d.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x0.ndim - 1)))
            r = torch.rand(x0.shape[0], generator=g, device=x0.device, dtype=x0.dtype)
            delta = d * (eps * r ** (1.0 / x0[0].numel())).view(-1, *([1] * (x0.ndim - 1)))
    x_adv = _clamp(x0 + delta, clamp)
    for _ in range(steps):
        _, grad = input_gradient(model, x_adv, y, loss)
        if norm == "inf":
            step = grad.sign()
        else:
            gn = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
            step = grad / gn.view(-1, *([1] * (grad.ndim - 1)))
        x_adv = _clamp(x0 + _project(x_adv + alpha * step - x0, eps, norm), clamp)
    return x_adv


@keeps_state
def accuracy(model: Model, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of samples whose argmax logit is the label.

    >>> import torch
    >>> accuracy(lambda b: b, torch.eye(3), torch.tensor([0, 1, 0]))
    0.6666666666666666
    """
    _check(x, y, 0.0, model)
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).double().mean())


@keeps_state
def accuracy_vs_eps(model: Model, x: torch.Tensor, y: torch.Tensor, eps_list: Sequence[float],
                    attack: Attack = "pgd", **attack_kwargs: Any) -> list[tuple[float, float]]:
    """``[(ε, accuracy on the attacked inputs), …]`` — the robustness curve of ``model``.

    ``attack`` is ``"pgd"`` or ``"fgsm"``; ``attack_kwargs`` go to it (``steps``, ``alpha``,
    ``seed``, ``norm``, ``clamp``, ``loss``). ε = 0 gives the clean accuracy.

    >>> import torch
    >>> model, x, y = torch.nn.Linear(4, 3), torch.randn(16, 4), torch.randint(3, (16,))
    >>> [e for e, _ in accuracy_vs_eps(model, x, y, [0.0, 0.1], attack="fgsm")]
    [0.0, 0.1]
    """
    attacks: dict[str, Callable[..., torch.Tensor]] = {"pgd": pgd, "fgsm": fgsm}
    _validate.choice(attack, "attack", tuple(attacks))
    _check(x, y, 0.0, model)
    if isinstance(eps_list, (str, bytes)) or not isinstance(eps_list, Sequence):
        raise ArgumentTypeError(f"eps_list must be a sequence of budgets, got "
                                f"{type(eps_list).__name__}; pass e.g. [0.0, 0.1, 0.2]")
    eps_list = [_validate.tolerance(e, "each eps in eps_list") for e in eps_list]
    curve = []
    for eps in eps_list:
        x_adv = x if eps == 0 else attacks[attack](model, x, y, float(eps), **attack_kwargs)
        curve.append((float(eps), accuracy(model, x_adv, y)))
    return curve


def _check_curves(curves: Any) -> dict[str, list[tuple[float, float]]]:
    """``{name: [(eps, accuracy), ...]}`` from a mapping or a single curve, each point checked."""
    if isinstance(curves, Mapping):
        named = dict(curves)
    elif isinstance(curves, Sequence) and not isinstance(curves, (str, bytes)):
        named = {"model": curves}
    else:
        raise ArgumentTypeError(f"curves must be a list of (eps, accuracy) pairs or a dict "
                                f"name -> such a list, got {type(curves).__name__}; pass "
                                f"accuracy_vs_eps(...)")
    out = {}
    for name, curve in named.items():
        if isinstance(curve, (str, bytes)) or not isinstance(curve, Sequence):
            raise ArgumentTypeError(f"curve {name!r} must be a list of (eps, accuracy) pairs, "
                                    f"got {type(curve).__name__}")
        if not curve:
            raise ShapeError(f"curve {name!r} is empty; pass [(eps, accuracy), ...]")
        points = []
        for pt in curve:
            if not isinstance(pt, Sequence) or len(pt) != 2:
                raise ShapeError(f"each point of curve {name!r} must be a pair (eps, accuracy), "
                                 f"got {pt!r}")
            points.append((_validate.tolerance(pt[0], "eps"),
                           _validate.tolerance(pt[1], "accuracy")))
        out[str(name)] = points
    return out


def plot_accuracy_vs_eps(curves: Mapping[str, Sequence[tuple[float, float]]]
                         | Sequence[tuple[float, float]], ax: Axes | None = None,
                         title: str = "accuracy under attack", xlabel: str = "ε",
                         save: str | None = None) -> Figure:
    """Accuracy against ε, one line per named curve (the ``plot`` extra: matplotlib).

    Draws on ``ax`` or on a new Agg figure (no pyplot state); ``save=PATH`` writes it too.

    >>> fig = plot_accuracy_vs_eps({"plain": [(0.0, 0.9), (0.1, 0.5)]})
    >>> fig.axes[0].get_ylabel()
    'accuracy'
    """
    named = _check_curves(curves)
    if save is not None and not isinstance(save, (str, os.PathLike)):
        raise ArgumentTypeError(f"save must be a file path, got {type(save).__name__}; e.g. "
                                f"save='robustness.png'")
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    for name, curve in named.items():
        if not curve:
            raise ShapeError(f"curve {name!r} is empty; pass [(eps, accuracy), ...]")
        eps, acc = zip(*curve, strict=True)
        ax.plot(eps, acc, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if isinstance(curves, Mapping):
        ax.legend()
    if save is not None:
        save_figure(fig, save)
    return fig
