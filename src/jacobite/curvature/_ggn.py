"""The generalised Gauss–Newton matrix ``G = Σ_b J_bᵀ (w_b ∇²_out L_b) J_b / Z`` as a lazy
``(P, P)`` operator (``J_b`` the Jacobian of the batch's outputs in the parameters; weights as in
:mod:`jacobite.curvature._loss`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.fx.experimental import const_fold
from torch.fx.experimental.proxy_tensor import make_fx
from torch.nn import functional as F

from .. import _validate
from ..distributed import Group, ProcessGroupLike, resolve
from ..operators import FunctionOperator
from ._diagonal import ggn_diagonal
from ._loss import LossCurvature
from ._setup import Data, Params, check_model, forward
from ._sharded import count_guard, global_count, reduced

__all__ = ["ggn"]


_LAYERS = (F.linear, F.conv1d, F.conv2d, F.conv3d)


class _ConstantInputLayers(torch.overrides.TorchFunctionMode):
    """``F.linear`` and ``F.conv*d`` of an input without a tangent (the data) and a weight
    with one: the tangent is ``layer(x, W_t, b_t)`` alone. torch's own rule also applies the
    weight to a materialised zero input tangent, a second product as large as the layer's
    forward pass."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _LAYERS and len(args) >= 2:
            x, w = args[0], args[1]
            rest, kw = args[3:], {k: v for k, v in kwargs.items() if k != "bias"}
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            wp, wt = fwAD.unpack_dual(w)
            if wt is not None and fwAD.unpack_dual(x).tangent is None:
                bp, bt = (None, None) if b is None else fwAD.unpack_dual(b)
                if bp is not None and bt is None:
                    bt = torch.zeros_like(bp)
                return fwAD.make_dual(func(x, wp, bp, *rest, **kw),
                                      func(x, wt, bt, *rest, **kw))
        return func(*args, **kwargs)


def _dual_product(model: nn.Module, ps: Params, X: Any, v: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """One forward pass carrying the tangent ``v``: ``(output, J v, u ↦ Jᵀu)``. The pullback
    runs the backward pass of that same forward pass (once)."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_() for t in ps.values]
        # a tangent of its own storage, laid out as its parameter, is taken as it is; a view
        # into v would be copied by forward AD into fresh zeros (a fill and a copy)
        tangents = {k: t.clone() for k, t in ps.split(v).items()}
        with fwAD.dual_level(), _ConstantInputLayers():
            duals = {k: fwAD.make_dual(t, tangents[k])
                     for k, t in zip(ps.names, leaves, strict=True)}
            out = forward(model, ps, duals, X)
            primal, tangent = fwAD.unpack_dual(out)
    if tangent is None:  # the output does not depend on the parameters
        tangent = torch.zeros_like(primal)

    def pullback(u: torch.Tensor) -> torch.Tensor:
        if not primal.requires_grad:
            return v.new_zeros(ps.size)
        with torch.no_grad():
            grads = torch.autograd.grad(primal, leaves, u, allow_unused=True)
        return torch.cat([(torch.zeros_like(t) if g is None else g).reshape(-1)
                          for g, t in zip(grads, leaves, strict=True)])

    return primal.detach(), tangent.detach(), pullback


def _traced_jvp(f: Callable[[dict[str, torch.Tensor]], torch.Tensor], ps: Params
                ) -> torch.fx.GraphModule:
    """``(t_1, …, t_k) ↦ J t`` for tangents shaped like the parameters, as one traced graph
    of ATen operations whose parts that do not depend on the tangents (the forward pass, the
    activation masks) are evaluated once and kept. It is traced with contiguous tangents, the
    layout of the views :meth:`Params.split` hands it, so forward AD takes them as they are:
    torch's ``linearize`` traces with broadcast tangents, which its graph then copies into
    fresh zeros on every call (two extra passes over the ``P`` tangent entries)."""
    def pushed(flat: tuple[torch.Tensor, ...]) -> torch.Tensor:
        with fwAD.dual_level():
            duals = {k: fwAD.make_dual(p, t) for k, p, t in zip(ps.names, ps.values, flat,
                                                                  strict=True)}
            primal, tangent = fwAD.unpack_dual(f(duals))
        return torch.zeros_like(primal) if tangent is None else tangent

    like = tuple(torch.zeros(p.shape, dtype=p.dtype, device=p.device) for p in ps.values)
    graph = make_fx(pushed)(like)
    with warnings.catch_warnings():  # torch's constant folding of the traced JVP
        warnings.filterwarnings("ignore", message="Attempted to insert a get_attr")
        return const_fold.split_const_subgraphs(graph)


class _Linearized:
    """One batch's linearisation, kept: the traced JVP and the saved VJP of the model."""

    def __init__(self, model: nn.Module, ps: Params, X: Any) -> None:
        def f(p: dict[str, torch.Tensor]) -> torch.Tensor:
            return forward(model, ps, p, X)

        pair = torch.func.vjp(f, ps.primals())
        self.out: torch.Tensor = pair[0].detach()
        self._vjp = pair[1]
        self._jvp = _traced_jvp(f, ps)
        self._ps = ps

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        out = self._jvp(*self._ps.split(v.contiguous()).values())
        return out[0] if isinstance(out, (list, tuple)) else out

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # torch.func's pullback records its backward pass where grad
            return self._ps.flat(self._vjp(u)[0])  # mode is on; the products need no graph


class _GGNOperator(FunctionOperator):
    """The Gauss–Newton operator; its diagonal is exact from :func:`ggn_diagonal` where the
    loss Hessian has a square root in closed form, else probed by products."""

    def __init__(self, *args: Any, exact_diagonal: Callable[[], torch.Tensor] | None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exact_diagonal = exact_diagonal

    def _diagonal(self) -> torch.Tensor:
        if self._exact_diagonal is not None:
            return self._exact_diagonal()
        return super()._diagonal()


def scan(model: nn.Module, ps: Params, lc: LossCurvature, batches: Data, cache: bool = False,
         group: Group | None = None) -> tuple[list[tuple[_Linearized, Any]], float, torch.Tensor]:
    """One pass over the data before any product: the loss checked against the first batch's
    output, the samples counted for a mean loss (over every rank of ``group``: call it inside
    ``count_guard(group)`` together with the data's set-up), and with ``cache`` every
    batch linearised. Returns the kept ``(linearisation, targets)`` pairs, the scale of a
    product (``1/N`` for a mean loss, else 1) and the last batch's output."""
    kept: list[tuple[_Linearized, Any]] = []
    total: float = 0
    out = torch.empty(0)
    for i, (X, y) in enumerate(batches):
        if cache:
            lin = _Linearized(model, ps, X)
            kept.append((lin, y))
            out = lin.out
        else:
            with torch.no_grad():
                out = forward(model, ps, ps.primals(), X)
        if i == 0:
            lc.check(out, y)
        total += lc.weight(out, y)
    total = global_count(total, ps.size, group)
    return kept, (1.0 / total if lc.mean else 1.0), out


def sandwich(model: nn.Module, ps: Params, batches: Data,
             kept: list[tuple[_Linearized, Any]], scale: float,
             middle: Callable[[torch.Tensor, Any, torch.Tensor, int], torch.Tensor],
             group: Group | None
             ) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                        Callable[[torch.Tensor], torch.Tensor]]:
    """The product ``v ↦ scale Σ_b J_bᵀ middle(out_b, y_b, J_b v, b)`` over the batches (and
    the ranks of ``group``), for one vector and column by column for a matrix: from the
    ``kept`` linearisations of :func:`scan` where it kept any, else one forward pass carrying
    the tangent and its backward pass per batch."""

    def pulled(u: torch.Tensor) -> torch.Tensor:
        return u * scale if scale != 1.0 else u  # the scale on the (small) output side

    def mv(v: torch.Tensor) -> torch.Tensor:
        # the first batch's vector is fresh (a concatenation): the sum starts there
        acc: torch.Tensor | None = None
        if kept:
            for b, (lin, y) in enumerate(kept):
                g = lin.vjp(pulled(middle(lin.out, y, lin.jvp(v), b)))
                acc = g if acc is None else acc.add_(g)
        else:
            for b, (X, y) in enumerate(batches):
                out, Jv, pullback = _dual_product(model, ps, X, v)
                g = pullback(pulled(middle(out, y, Jv, b)))
                acc = g if acc is None else acc.add_(g)
        return v.new_zeros(ps.size) if acc is None else acc

    return reduced(mv, group, ps.size), reduced(columns(mv), group, ps.size)


def columns(mv: Callable[[torch.Tensor], torch.Tensor]
            ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``V ↦ [mv(V[:, 0]), mv(V[:, 1]), …]``: one product per column, no ``vmap`` (the
    products run autograd passes of their own)."""
    return lambda V: torch.stack([mv(V[:, j]) for j in range(V.shape[1])], dim=1)


def ggn(model: nn.Module, loss: Any, data: Any, params: Iterable[str] | None = None, *,
        cache: bool = False, process_group: ProcessGroupLike = None) -> FunctionOperator:
    """The generalised Gauss–Newton matrix of ``loss(model(X), y)`` over ``data``, as a lazy
    symmetric ``(P, P)`` operator: ``G = Σ_b J_bᵀ H_b J_b`` with ``J_b`` the Jacobian of the
    batch's output in the parameters and ``H_b`` the Hessian of the batch's loss in the output.

    Args:
        model: an ``nn.Module`` in eval mode where it holds BatchNorm or dropout.
        loss: ``nn.CrossEntropyLoss`` or ``nn.MSELoss`` (mean or sum; ``H_b`` in closed form,
            ``diag(p) − ppᵀ`` per sample for cross-entropy), or any callable
            ``loss(output, y) -> scalar`` (``H_b`` by reverse-over-reverse products).
        data: one batch ``(X, y)`` or an iterable of batches (a list, a ``DataLoader``).
        params: names of the parameters (default: all with ``requires_grad``); the vector
            follows ``model.named_parameters()`` order, each parameter flattened row-major.
        cache: keep each batch's linearisation (a traced JVP and a saved VJP): products then
            skip the forward pass. It holds about two copies of every batch's forward
            activations (those the JVP and the VJP need) for the operator's lifetime. Without
            it, a product runs one forward pass carrying the tangent and one backward pass
            per batch, and holds one batch's activations at a time.
        process_group: ``None`` (one process), or a ``torch.distributed`` process group (or
            ``"world"``) whose ranks each pass their own shard of the data as ``data`` (see
            :func:`jacobite.distributed.shard_batch`): every product is the sum of the ranks'
            local products, by one all-reduce of ``P`` numbers, identical on every rank and
            equal to the single-process product over the concatenated shards. A mean loss
            divides by the global sample count. Every rank must call every product (the
            operator's methods are collective); a rank that raises makes the others raise
            :class:`~jacobite.errors.RankFailedError`.

    A mean loss gives the curvature of the mean over the whole dataset (each batch weighted
    by its samples); a sum loss or a plain callable, the sum over batches. The operator works
    in the model's dtype and device; its products are not differentiable. Tagged ``psd`` for
    cross-entropy and MSE, whose ``diagonal()`` is exact and cheap (:func:`ggn_diagonal`).

    >>> import torch
    >>> from jacobite.curvature import ggn
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    >>> G = ggn(model, torch.nn.MSELoss(reduction="sum"), (X, y))
    >>> G.shape, G.is_psd()
    ((8, 8), True)
    """
    model = check_model(model)
    lc = LossCurvature.of(loss)
    cache = _validate.boolean(cache, "cache")
    group = resolve(process_group)
    ps = Params.of(model, params)
    with count_guard(group):  # a rank's bad data stops every rank here
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        kept, scale, out = scan(model, ps, lc, batches, cache, group)

    mv, mm = sandwich(model, ps, batches, kept, scale,
                      lambda out, y, Jv, b: lc.hvp(out, y, Jv), group)
    closed = lc.closed
    exact = (lambda: ggn_diagonal(model, loss, data, ps.names, process_group=group)) \
        if closed and out.ndim == 2 else None
    return _GGNOperator((ps.size, ps.size), mv, mv, dtype=ps.dtype, device=ps.device,
                        tags=("symmetric", "psd") if closed else ("symmetric",), mm=mm, rmm=mm,
                        name="ggn", exact_diagonal=exact)
