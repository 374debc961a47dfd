"""The curvature a Laplace posterior starts from, in the likelihood's scale: the Gauss–Newton
matrix of the summed negative log-likelihood ``Σ_n ℓ_n`` (whatever the loss's reduction),
as K-FAC factors per layer, its exact diagonal, its dense matrix, or the Kronecker factors of
the last Linear layer with that layer's inputs (the features ``φ(x)``) from a forward hook.

The K-FAC factors here use the loss Hessian's square root (``H_n = S_n S_nᵀ``), not drawn
labels: per layer ``G = Σ_n Σ_k g_nk g_nkᵀ`` (``g_nk`` the gradient of ``s_nk · z_n`` in the
layer's output) and ``A = (1/N) Σ_n ã_n ã_nᵀ``, so ``G ⊗ A`` is a layer's Gauss–Newton block
exactly for one sample. For the last layer the output gradient is the identity and
``G = Σ_n H_n`` in closed form (cross-entropy: ``diag(Σ p_n) − Σ p_n p_nᵀ``; squared error:
``2 N I``), without backward passes.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
>>> ps = Params.of(model, None)
>>> lc = LossCurvature.of(torch.nn.CrossEntropyLoss(reduction="sum"))
>>> data = Data((torch.randn(5, 3), torch.randint(0, 2, (5,))), targets=True,
...             dtype=torch.float32)
>>> [(L.name, tuple(G.shape), tuple(A.shape)) for L, G, A in kron_factors(model, ps, lc, data)]
[('0', (4, 4), (4, 4)), ('2', (2, 2), (5, 5))]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ShapeError, UnsupportedOperationError
from ._kfac_stats import Layer, Sums, _augmented, collect
from ._loss import LossCurvature
from ._setup import Data, Params, hooked_forward

__all__ = ["ignored_class", "kron_factors", "last_layer", "last_layer_factors",
           "linear_jacobians", "sum_loss"]


def ignored_class(lc: LossCurvature) -> int:
    """Cross-entropy's ``ignore_index`` (torch's default ``-100`` for ``F.cross_entropy``)."""
    return int(getattr(lc.fn, "ignore_index", -100))


def _no_sample(lc: LossCurvature) -> ShapeError:
    return ShapeError(f"every target is the loss's ignore_index ({ignored_class(lc)}), so the "
                      "likelihood counts no sample; pass data with at least one counted target")


def sum_loss(lc: LossCurvature) -> LossCurvature:
    """The same likelihood with ``reduction="sum"``: the negative log-likelihood of the data
    (cross-entropy keeps its ``ignore_index``)."""
    fn = nn.CrossEntropyLoss(reduction="sum", ignore_index=ignored_class(lc)) \
        if lc.kind == "ce" else nn.MSELoss(reduction="sum")
    return LossCurvature(fn, lc.kind, False)


#: :func:`kron_factors`' sums: the square root's columns are summed, a layer output they do not
#: reach adds nothing, and the refusals name the Laplace posterior's fixes.
_COLUMNS = Sums(
    average=False, unused_ok=True,
    one_call="the Kronecker structure needs one call per layer: use structure='diag'",
    all_called="leave their parameters out of the model (or freeze them with "
               "requires_grad_(False))",
    none_counted="the likelihood counts no sample; pass data with at least one counted target")


def kron_factors(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data
                 ) -> list[tuple[Layer, torch.Tensor, torch.Tensor]]:
    """``(layer, G, A)`` for every Linear or Conv2d layer of ``ps`` (``lc`` a sum loss, see
    :func:`sum_loss`)."""

    def columns(i: int, out: torch.Tensor, y: Any) -> torch.Tensor:
        return lc.sqrt_columns(out, y).movedim(1, 0)  # (K, n, C): column k of every sample

    return [(L, G, A) for L, A, G in collect(model, ps, lc, batches, columns, sums=_COLUMNS)]


def last_layer(model: nn.Module) -> tuple[str, nn.Linear]:
    """The name and module of the model's last ``nn.Linear`` (in ``named_modules`` order)."""
    found = [(n, m) for n, m in model.named_modules() if type(m) is nn.Linear]
    if not found:
        raise UnsupportedOperationError(
            "structure='last_layer' needs an nn.Linear layer that produces the model's output; "
            "the model has none: use structure='kron', 'diag' or 'full'")
    return found[-1]


def features(model: nn.Module, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(φ̃, output)``: the last Linear layer's inputs with a 1 appended when it has a bias
    ``(n, d [+ 1])``, from a forward hook, and the model's output ``(n, C)``."""
    name, mod = last_layer(model)
    got: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = mod.register_forward_hook(lambda m, args, out: got.append((args[0], out)))
    try:
        with torch.no_grad():
            out = model(X)
    finally:
        handle.remove()
    if len(got) != 1 or got[0][1] is not out or out.ndim != 2:
        raise UnsupportedOperationError(
            f"structure='last_layer' needs the last nn.Linear ({name!r}) to be called once and "
            "to return the model's output of shape (n, C); use structure='kron', 'diag' or "
            "'full' for this model")
    phi = got[0][0].detach()
    if mod.bias is not None:
        phi = torch.cat([phi, phi.new_ones(phi.shape[0], 1)], dim=1)
    return phi, out.detach()


def last_layer_factors(model: nn.Module, lc: LossCurvature, batches: Data
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(G, A)`` of the last Linear layer: ``G = Σ_n H_n`` ``(C, C)`` and
    ``A = (1/N) Σ_n φ̃_n φ̃_nᵀ``, over the ``N`` samples the likelihood counts."""
    G: torch.Tensor | None = None
    A: torch.Tensor | None = None
    N = 0
    for i, (X, y) in enumerate(batches):
        phi, out = features(model, X)
        if i == 0:
            lc.check(out, y)
        keep = lc.counted(y)
        if keep is not None:
            phi, out = phi[keep], out[keep]
        if lc.kind == "ce":
            p = torch.softmax(out, dim=1)
            H = torch.diag(p.sum(dim=0)) - p.T @ p
        else:
            H = 2.0 * out.shape[0] * torch.eye(out.shape[1], dtype=out.dtype, device=out.device)
        G = H if G is None else G + H
        A = phi.T @ phi if A is None else A + phi.T @ phi
        N += phi.shape[0]
    assert G is not None and A is not None
    if N == 0:
        raise _no_sample(lc)
    return (G + G.T) / 2, (A + A.T) / (2 * N)


def linear_jacobians(model: nn.Module, ps: Params, X: torch.Tensor, layers: list[Layer]
                     ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]] | None:
    """The model's output ``(n, C)`` and, per Linear layer, ``(ã, B)``: its inputs with a 1 for
    the bias ``(n, d_in [+ 1])`` and the Jacobian of the output in its output ``(n, C, d_out)``
    (``C`` backward passes), so that the layer's per-sample Jacobian is ``B_n ⊗ ã_nᵀ``;
    ``None`` where a layer is not an ``nn.Linear`` called once on ``(n, d_in)`` inputs."""
    if not all(type(L.module) is nn.Linear for L in layers):
        return None
    seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {L.name: [] for L in layers}

    def record(name: str) -> Callable[[Any, torch.Tensor], None]:
        return lambda args, out: seen[name].append((args[0], out))

    out = hooked_forward(model, ps, X, {L.module: record(L.name) for L in layers})
    if out.ndim != 2 or any(len(c) != 1 or c[0][0].ndim != 2 for c in seen.values()):
        return None
    C = out.shape[1]
    outs = [seen[L.name][0][1] for L in layers]
    eye = torch.eye(C, dtype=out.dtype, device=out.device)
    cols = [torch.autograd.grad(out, outs, eye[c].expand_as(out), retain_graph=c + 1 < C,
                                allow_unused=True) for c in range(C)]
    result = []
    for i, L in enumerate(layers):
        a = _augmented(seen[L.name][0][0].detach(), L)
        B = torch.stack([torch.zeros_like(outs[i]) if g[i] is None else g[i] for g in cols],
                        dim=1)
        result.append((a, B))
    return out.detach(), result
