"""The curvature benchmark's problems and peer adapters: curvlinops' MNIST MLP, a small CNN with
LayerNorm, random data made here (nothing is downloaded), one gradient as the unit of time, and
curvlinops' and BackPACK's products in jacobite's flat parameter order.

>>> model = mlp((6, 5, 3))
>>> X, y = data((6,), 3, 4, seed=0)
>>> grad = gradient(model, torch.nn.CrossEntropyLoss(), X, y)
>>> grad().shape
torch.Size([53])
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata

import torch
from torch import nn

MNIST_DIMS = (784, 1024, 512, 256, 128, 64, 10)
"""curvlinops' MNIST MLP benchmark problem (1.5 M parameters)."""

Flat = Callable[[], torch.Tensor]
Product = Callable[[torch.Tensor], torch.Tensor]


def have(module: str) -> bool:
    """Whether the optional peer ``module`` can be imported."""
    return importlib.util.find_spec(module) is not None


def version(dist: str) -> str:
    """``"name version"`` of an installed distribution, or ``"name (not installed)"``."""
    try:
        return f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist} (not installed)"


def mlp(dims: Sequence[int], seed: int = 0) -> nn.Sequential:
    """Linear layers of widths ``dims`` with ReLU between them (none after the last)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def cnn_layernorm(side: int = 28, channels: int = 8, classes: int = 10,
                  seed: int = 0) -> nn.Sequential:
    """Two 3×3 convolutions, LayerNorm over the flattened features, a linear read-out: a model
    with a layer BackPACK has no extension for. Inputs ``(n, 1, side, side)``."""
    torch.manual_seed(seed)
    feat = channels * (side - 4) ** 2
    return nn.Sequential(nn.Conv2d(1, channels, 3), nn.ReLU(), nn.Conv2d(channels, channels, 3),
                         nn.Flatten(), nn.LayerNorm(feat), nn.ReLU(), nn.Linear(feat, classes))


def data(shape: Sequence[int], classes: int, n: int, seed: int) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
    """``n`` standard-normal inputs of ``shape`` and uniform random class labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def gradient(model: nn.Module, loss: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Flat:
    """One gradient of the batch loss (forward and backward pass), flat: the unit of time."""
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> torch.Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss(model(X), y),
                                                                     params)])
    return run


def linearized_parts(model: nn.Module, X: torch.Tensor, seed: int = 0
                     ) -> tuple[Flat, Flat, Flat]:
    """The pieces a cached Gauss–Newton product cannot avoid, by ``torch.func`` alone: the
    traced JVP of ``torch.func.linearize`` and the saved VJP of ``torch.func.vjp`` in all the
    parameters (random directions), and a forward pass without gradient tracking."""
    params = {k: p.detach() for k, p in model.named_parameters()}

    def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.func.functional_call(model, p, (X,))

    with warnings.catch_warnings():  # torch's constant folding of the traced JVP
        warnings.filterwarnings("ignore", message="Attempted to insert a get_attr")
        out, jvp = torch.func.linearize(f, params)
    vjp = torch.func.vjp(f, params)[1]
    g = torch.Generator().manual_seed(seed)
    tangent = {k: torch.randn(p.shape, generator=g) for k, p in params.items()}
    u = torch.randn(out.shape, generator=g)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(X)

    return lambda: jvp(tangent), lambda: vjp(u)[0], forward


def column_backward(cnn: nn.Sequential, X: torch.Tensor, columns: int = 9,
                    seed: int = 0) -> Flat:
    """``columns`` backward passes of :func:`cnn_layernorm`'s batch, one after another, from
    its output to the first convolution's activation (through the second convolution, input
    gradients only, that convolution's by the forward convolution of
    :class:`~jacobite.curvature._layer_diagonal.InputGradientConv`), as the exact diagonal
    runs them: the part of its ``C − 1`` passes (cross-entropy) that a gradient does once.
    Returns the stacked input gradients."""
    from jacobite.curvature._layer_diagonal import InputGradientConv

    with torch.no_grad():
        a1 = cnn[1](cnn[0](X))
    head = cnn[2:]
    frozen = {k: p.detach() for k, p in head.named_parameters()}
    with torch.enable_grad(), InputGradientConv():
        leaf = a1.detach().requires_grad_()
        out = torch.func.functional_call(head, frozen, (leaf,))
    U = torch.randn(columns, *out.shape, generator=torch.Generator().manual_seed(seed))

    def run() -> torch.Tensor:
        return torch.stack([torch.autograd.grad(out, leaf, u, retain_graph=True)[0]
                            for u in U])
    return run


def curvlinops_product(kind: str, model: nn.Module, loss: nn.Module, X: torch.Tensor,
                       y: torch.Tensor) -> Product:
    """curvlinops' ``GGNLinearOperator`` (``kind="ggn"``) or ``HessianLinearOperator``
    (``kind="hessian"``) on one batch, as ``v -> A v`` over all parameters."""
    from curvlinops import (  # type: ignore[import-untyped]  # optional peer
        GGNLinearOperator,
        HessianLinearOperator,
    )

    cls = {"ggn": GGNLinearOperator, "hessian": HessianLinearOperator}[kind]
    params = [p for p in model.parameters() if p.requires_grad]
    op = cls(model, loss, params, [(X, y)], check_deterministic=False)

    def mv(v: torch.Tensor) -> torch.Tensor:
        return op @ v
    return mv


def backpack_diagonal(model: nn.Module, loss: nn.Module, X: torch.Tensor,
                      y: torch.Tensor) -> Flat:
    """BackPACK's ``DiagGGNExact`` of a copy of ``model`` (the original keeps no hooks), flat in
    ``model.parameters()`` order. Raises BackPACK's own error on a layer it does not support,
    at the first call."""
    from backpack import backpack, extend  # type: ignore[import-untyped]  # optional peer
    from backpack.extensions import DiagGGNExact  # type: ignore[import-untyped]

    m = extend(copy.deepcopy(model))
    lf = extend(copy.deepcopy(loss))
    params = [p for p in m.parameters() if p.requires_grad]

    def run() -> torch.Tensor:
        m.zero_grad()
        with backpack(DiagGGNExact()), warnings.catch_warnings():
            # the inputs need no gradient, so torch notes the hooks fire on outputs only
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            lf(m(X), y).backward()
        return torch.cat([p.diag_ggn_exact.reshape(-1) for p in params])
    return run


def relative(a: torch.Tensor, ref: torch.Tensor) -> float:
    """``‖a − ref‖ / ‖ref‖``."""
    return float((a - ref).norm() / ref.norm())
