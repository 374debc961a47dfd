"""The exact diagonal of the Gauss–Newton matrix from per-sample VJPs of the columns of the
loss Hessian's square root: ``diag G = Σ_n Σ_k (J_nᵀ s_nk)²``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..config import get_memory_budget
from ..distributed import Group, ProcessGroupLike, resolve
from ..errors import ShapeError
from ._layer_diagonal import InputGradientConv, LayerRule, rule_for
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward, hooked_forward
from ._sharded import count_guard, summed

__all__ = ["ggn_diagonal"]


def ggn_diagonal(model: nn.Module, loss: Any, data: Any, params: Iterable[str] | None = None, *,
                 process_group: ProcessGroupLike = None) -> torch.Tensor:
    """The exact diagonal of :func:`jacobite.curvature.ggn`'s matrix, a ``(P,)`` tensor.

    With ``H_n = S_n S_nᵀ`` the loss Hessian of sample ``n`` in its output (cross-entropy:
    ``S = diag(√p) − p √pᵀ``; MSE: a multiple of ``I``), ``diag G = Σ_n Σ_k (J_nᵀ s_nk)²``:
    ``C`` VJPs per sample, vmapped over the samples of a batch and over the ``C`` columns, in
    chunks of samples whose ``(samples, C, P)`` per-sample gradients fit the memory budget.
    ``nn.Linear`` on ``(n, d)`` inputs, ``nn.Conv2d`` and ``nn.LayerNorm`` layers called once
    skip the per-sample VJPs: their per-sample gradients follow from their input and output
    gradient (``g xᵀ`` for Linear, so the squares sum to ``(Σ_k g_k²)ᵀ (x²)``), from ``C``
    backward passes to the layer outputs (``C − 1`` for cross-entropy, whose loss Hessian
    ``diag(p) − ppᵀ`` has rank ``C − 1``).
    Any ``torch.func``-compatible model (LayerNorm, BatchNorm in eval mode, grouped
    convolutions, attention); outputs of shape ``(n, C)``; cross-entropy (class indices or
    probabilities, ``weight=None``) or MSE, with the reduction conventions of ``ggn``. With a
    ``process_group`` each rank passes its shard of the data and gets the diagonal of the whole
    dataset (the ranks' sample and parameter counts gathered and checked, then one all-reduce
    of the ``P`` sums). With many classes, :func:`jacobite.curvature.diagonal_estimate` costs
    a chosen number of passes and reports a standard error per entry.

    >>> import torch
    >>> from jacobite.curvature import ggn, ggn_diagonal
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
    ...                             torch.nn.Linear(4, 2)).double()
    >>> X, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    >>> loss = torch.nn.CrossEntropyLoss()
    >>> d = ggn_diagonal(model, loss, (X, y))
    >>> torch.allclose(d, ggn(model, loss, (X, y)).to_dense().diagonal())
    True
    """
    model = check_model(model)
    lc = LossCurvature.of(loss)
    lc.require_closed("the exact diagonal needs the loss Hessian's square root in closed form",
                      "ggn(...).diagonal() for any other loss")
    group = resolve(process_group)
    ps = Params.of(model, params)


    def columns(out: torch.Tensor, y: Any, b: int) -> torch.Tensor:
        if b == 0:
            lc.check(out, y)
        if out.ndim != 2:
            raise ShapeError(f"the exact diagonal needs outputs of shape (n, C), got "
                             f"{tuple(out.shape)}; use ggn(...).diagonal() for other shapes")
        S = lc.sqrt_columns(out, y)
        return _rank_columns(S, out) if lc.kind == "ce" and out.shape[1] > 1 else S

    with count_guard(group):  # a rank's bad data stops every rank
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        return column_diagonal(model, ps, lc, batches, columns, group)


def _rank_columns(S: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Cross-entropy's ``C`` columns ``S[n] = (I − u uᵀ) diag(√p)`` (``u = √p``, a unit vector)
    as ``C − 1``: ``Vᵀ S[n]`` with ``V`` the first ``C − 1`` columns of the Householder
    reflection ``I − 2wwᵀ/wᵀw``, ``w = u + e_C`` (``‖w‖² = 2 + 2u_C ≥ 2``), an orthonormal
    basis of ``u``'s complement, which holds the range of ``S[n]``; so
    ``(VᵀS)ᵀ(VᵀS) = SᵀS`` and one backward pass per batch is saved."""
    u = torch.softmax(out.detach(), dim=1).sqrt()
    w = u.clone()
    w[:, -1] += 1.0
    V = -2.0 * w[:, :, None] * w[:, None, :-1] / (w * w).sum(dim=1)[:, None, None]
    V[:, :-1, :] += torch.eye(out.shape[1] - 1, dtype=out.dtype, device=out.device)
    return torch.einsum("nck,ncd->nkd", V, S)


def column_diagonal(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data,
                    columns: Callable[[torch.Tensor, Any, int], torch.Tensor],
                    group: Group | None = None) -> torch.Tensor:
    """``Σ_b Σ_n Σ_k (J_nᵀ S[n, k])²`` over the batches (divided by the samples for a mean
    loss), with ``S = columns(out, y, b)`` of shape ``(n, K, C)`` for batch ``b``'s output
    ``(n, C)``: layer shortcuts where they apply, per-sample VJPs for the other parameters;
    summed over the ranks of ``group`` (call inside ``count_guard``)."""
    diag: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in ps.primals().items()}
    layers = _shortcut_layers(model, ps)
    total: float = 0
    for b, (X, y) in enumerate(batches):
        S, out, rest = _linear_layers(model, ps, layers, (X, y, b), columns, diag)
        total += lc.weight(out, y)
        if rest:
            _per_sample(model, Params.of(model, rest), X, S, diag)
    flat, total = summed(ps.flat(diag), total, group)
    return flat / total if lc.mean else flat


def _shortcut_layers(model: nn.Module, ps: Params) -> dict[str, tuple[nn.Module, type[LayerRule]]]:
    """The modules a rule of :mod:`._layer_diagonal` covers whose weight is chosen and that own
    their parameters (no parameter shared with another module)."""
    chosen = set(ps.names)
    owners: dict[int, int] = {}
    for mod in model.modules():
        for t in mod._parameters.values():
            if t is not None:
                owners[id(t)] = owners.get(id(t), 0) + 1
    layers: dict[str, tuple[nn.Module, type[LayerRule]]] = {}
    for name, mod in model.named_modules():
        rule = rule_for(mod)
        w = f"{name}.weight" if name else "weight"
        if rule is not None and w in chosen and all(
                owners[id(t)] == 1 for t in mod._parameters.values() if t is not None):
            layers[name] = (mod, rule)
    return layers


def _linear_layers(model: nn.Module, ps: Params,
                   layers: dict[str, tuple[nn.Module, type[LayerRule]]],
                   batch: tuple[Any, Any, int],
                   columns: Callable[[torch.Tensor, Any, int], torch.Tensor],
                   diag: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """One forward pass of the batch ``(X, y, b)``, its columns ``S = columns(out, y, b)``
    and the diagonal of every layer in ``layers`` called once added to ``diag``, from ``K``
    backward passes to the layer outputs (input gradients only: the parameters need none).
    Returns ``S``, the batch's output and the names of the parameters left to the per-sample
    route."""
    X, y, b = batch
    if not layers:
        with torch.no_grad():
            out = forward(model, ps, ps.primals(), X)
        return columns(out, y, b), out, list(ps.names)
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n in layers}

    def record(n: str) -> Callable[[Any, torch.Tensor], torch.Tensor]:
        def hook(args: Any, o: torch.Tensor) -> torch.Tensor:
            if isinstance(o, torch.Tensor) and not o.requires_grad:
                o = o.detach().requires_grad_()  # the first layer reached: a leaf to stop at
            calls[n].append((args[0], o))
            return o
        return hook

    with InputGradientConv():
        out = hooked_forward(model, ps, X, {mod: record(n) for n, (mod, _) in layers.items()},
                             leaves=False)
    S = columns(out.detach(), y, b)
    budget = get_memory_budget()
    fast = {n: layers[n][1](layers[n][0], *c[0]) for n, c in calls.items()
            if len(c) == 1 and isinstance(c[0][0], torch.Tensor) and c[0][1].requires_grad
            and layers[n][1].accepts(layers[n][0], c[0][0], c[0][1], budget)}
    if not fast or not out.requires_grad:
        return S, out.detach(), list(ps.names)
    for k in range(S.shape[1]):
        grads = torch.autograd.grad(out, [r.out for r in fast.values()], S[:, k, :],
                                    retain_graph=k + 1 < S.shape[1], allow_unused=True)
        for r, g in zip(fast.values(), grads, strict=True):
            if g is not None:
                r.add(g)
    for n, r in fast.items():
        prefix = f"{n}." if n else ""
        for p, d in zip(("weight", "bias"), r.finish(), strict=True):
            if d is not None and prefix + p in diag:
                diag[prefix + p] += d
    done = {f"{n}.{p}" if n else p for n in fast for p in ("weight", "bias")}
    return S, out.detach(), [k for k in ps.names if k not in done]


def _per_sample(model: nn.Module, ps: Params, X: Any, S: torch.Tensor,
                diag: dict[str, torch.Tensor]) -> None:
    """Add ``Σ_n Σ_k (J_nᵀ s_nk)²`` for the parameters ``ps`` from vmapped per-sample VJPs."""

    def one(p: dict[str, torch.Tensor], x: Any, Sx: torch.Tensor) -> torch.Tensor:
        """``Σ_k (J_xᵀ s_k)²`` for one sample ``x`` and its ``(K, C)`` columns ``Sx``."""
        pull = torch.func.vjp(lambda q: forward(model, ps, q, x[None])[0], p)[1]
        g = torch.func.vmap(lambda s: ps.flat(pull(s)[0]))(Sx)
        return (g * g).sum(dim=0)

    per_sample = torch.func.vmap(one, in_dims=(None, 0, 0))
    itemsize = ps.values[0].element_size()
    per = max(1, get_memory_budget() // (3 * S.shape[1] * ps.size * itemsize))
    acc = torch.zeros(ps.size, dtype=ps.dtype, device=ps.device)
    for start in range(0, X.shape[0], per):
        with torch.enable_grad():
            acc += per_sample(ps.primals(), X[start:start + per],
                              S[start:start + per]).sum(dim=0)
    for k, v in ps.split(acc).items():
        diag[k] += v
