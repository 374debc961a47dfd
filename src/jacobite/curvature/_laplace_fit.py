"""How :func:`jacobite.curvature.laplace` builds a posterior: the parameters it covers, the
structured curvature of the summed negative log-likelihood (times ``scale``: ``1/T``, and
``1/(2σ²)`` for squared error), the layers that take one prior precision each, and the
log-likelihood at the trained parameters.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
>>> lc = LossCurvature.of(torch.nn.CrossEntropyLoss())
>>> data = (torch.randn(4, 2), torch.randint(0, 2, (4,)))
>>> fit(model, lc, data, "diag", 1.0).groups
['0', '2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedOperationError
from ._diagonal import ggn_diagonal
from ._ggn import ggn
from ._kfac_stats import Layer, layers_of
from ._laplace_curv import ignored_class, kron_factors, last_layer, last_layer_factors, sum_loss
from ._laplace_post import DiagPosterior, FullPosterior, KronPosterior, Posterior
from ._loss import LossCurvature
from ._setup import Data, Params, forward

__all__ = ["Fitted", "fit", "log_likelihood"]


@dataclass
class Fitted:
    """The parameters covered, the structured posterior, the layers (``group_index``: the
    layer of every parameter) and the training batches."""

    ps: Params
    post: Posterior
    groups: list[str]
    group_index: torch.Tensor
    batches: Data


def module_groups(names: tuple[str, ...]) -> tuple[torch.Tensor, list[str]]:
    """The layer (module path) of every parameter tensor, and the layers in order."""
    layers: list[str] = []
    index = []
    for k in names:
        layer = k.rsplit(".", 1)[0] if "." in k else ""
        if layer not in layers:
            layers.append(layer)
        index.append(layers.index(layer))
    return torch.tensor(index), layers


def class_targets(lc: LossCurvature, y: Any) -> None:
    """Cross-entropy's likelihood is categorical: refuse probability targets (the first batch's
    before the curvature, every batch's in :func:`log_likelihood`)."""
    if lc.kind == "ce" and isinstance(y, torch.Tensor) and y.is_floating_point():
        raise UnsupportedOperationError(
            f"the targets are probabilities ({y.dtype}), but the Laplace approximation uses "
            "the categorical likelihood of class labels: pass class indices (a long tensor; "
            "for one-hot rows, y.argmax(dim=1))")


def _first(lc: LossCurvature, batches: Data) -> None:
    for _, y in batches:
        class_targets(lc, y)
        break


def fit(model: nn.Module, lc: LossCurvature, data: Any, structure: str, scale: float
        ) -> Fitted:
    """The curvature of ``structure`` over ``data`` for the likelihood of ``lc``."""
    lcs = sum_loss(lc)
    post: Posterior
    if structure == "last_layer":
        name, mod = last_layer(model)
        prefix = f"{name}." if name else ""
        ps = Params.of(model, [prefix + "weight"] + ([prefix + "bias"] if mod.bias is not None
                                                       else []))
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        _first(lc, batches)
        G, A = last_layer_factors(model, lcs, batches)
        C, d = mod.out_features, mod.in_features
        layer = Layer(name, mod, C, d, slice(0, C * d),
                      slice(C * d, C * d + C) if mod.bias is not None else None)
        post = KronPosterior([(layer, scale * G, A)], ps.size)
        group_index, groups = torch.zeros(ps.size, dtype=torch.long), [name]
    else:
        ps = Params.of(model, None)
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        _first(lc, batches)
        if structure == "kron":
            factors = kron_factors(model, ps, lcs, batches)
            post = KronPosterior([(L, scale * G, A) for L, G, A in factors], ps.size)
            groups = [L.name for L, _, _ in factors]
            group_index = torch.zeros(ps.size, dtype=torch.long)
            for i, (L, _, _) in enumerate(factors):
                for sl in (L.w, L.b):
                    if sl is not None:
                        group_index[sl] = i
        else:
            index, groups = module_groups(ps.names)
            group_index = torch.repeat_interleave(index, torch.tensor(
                [v.numel() for v in ps.values]))
            if structure == "diag":
                g = ggn_diagonal(model, lcs.fn, data, ps.names)
                try:  # every parameter in a Linear or Conv2d layer: a faster predictive
                    owners = layers_of(model, ps)
                except UnsupportedOperationError:
                    owners = []
                post = DiagPosterior(scale * g, group_index.to(ps.device), groups, owners)
            else:
                G = ggn(model, lcs.fn, data, ps.names).to_dense()
                post = FullPosterior(scale * (G + G.T) / 2, group_index.to(ps.device), groups)
    return Fitted(ps, post, groups, group_index, batches)


def log_likelihood(model: nn.Module, lc: LossCurvature, ps: Params, batches: Data,
                    temperature: float, sigma: float) -> torch.Tensor:
    total = torch.zeros((), dtype=ps.dtype, device=ps.device)
    count = 0
    for X, y in batches:
        with torch.no_grad():
            out = forward(model, ps, ps.primals(), X)
        class_targets(lc, y)
        if lc.kind == "ce":  # samples whose target is ignore_index count for nothing
            total -= nn.functional.cross_entropy(out, y, reduction="sum",
                                                 ignore_index=ignored_class(lc))
        else:
            total -= ((out - y) ** 2).sum() / (2 * sigma**2)
            count += out.numel()
    norm = count * math.log(sigma * math.sqrt(2 * math.pi))
    return total / temperature - norm
