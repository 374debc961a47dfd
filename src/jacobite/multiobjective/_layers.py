"""The Gramian ``J Jᵀ`` layer by layer from the autograd graph, without the m parameter gradients.

For a dense layer ``z = x Wᵀ + b`` (``nn.Linear``: an ``addmm`` / ``mm`` node whose weight edge
leads straight to a parameter, through a transpose or, for ``x @ W``, without) with input ``X``
(R × d_in, R rows: the batch, or batch × tokens) and the m per-loss gradients at its output
``Gᵢ = ∂ℓᵢ/∂z`` (R × d_out), the gradients of loss i are ``Gᵢᵀ X̃`` (``X̃ = [X, 1]`` with a
bias), so the layer's share of the Gramian is::

    G_layer[i, j] = ⟨Gᵢᵀ X̃, Gⱼᵀ X̃⟩ = ⟨Gᵢ, K Gⱼ⟩,   K = X̃ X̃ᵀ   (R × R).

One batched backward pass gives every ``Gᵢ`` (autograd skips the weight products: only
gradients at the layer outputs are asked for, through ``GradientEdge``), ``X`` is the input the
node saved for its own backward, and per layer the cheaper of two exact forms is used:

* **kernel** (R < d_in, e.g. a batch of 256 into a 512-wide layer): ``⟨Gᵢ, K Gⱼ⟩``, as the Gram
  matrix of ``Lᵀ Gᵢ`` with ``K = L Lᵀ`` (Cholesky; the triangular product block row by block
  row: 5/8 of the m R² d_out multiply-adds of ``K Gᵢ``), and the update ``(Σᵢ wᵢ Gᵢ)ᵀ X̃`` is
  one more product;
* **gradients** (otherwise): the m gradients ``Gᵢᵀ X`` (and bias rows ``Σ_r Gᵢ``) and their Gram
  matrix, the update ``Σᵢ wᵢ (Gᵢᵀ X)`` — what a plain Jacobian computes, for this layer only.

Parameters used anywhere else (shared weights, a weight also in a penalty, convolutions,
norms, ...) keep their rows from the same batched pass. The update is formed from the stored
pieces, so no second backward pass runs. This is the idea of TorchJD's later "autogram" engine
(Gramians from module inputs and output gradients), derived from the autograd graph here so
that it works on losses that are already computed.

The graph is read through attributes autograd does not document (``next_functions``, the
``_saved_*`` tensors and scalars, ``_input_metadata``), each through :func:`_attr`: if a torch
release renames or drops one, :func:`find_dense_layers` finds no layer (or no bias) and every
parameter takes the generic path — the same Gramian and update, computed from the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor
from torch.autograd.graph import GradientEdge

from .. import config
from .._validate import ChunkSize
from ._params import accumulate, gram, row_chunk

__all__ = ["DenseLayer", "LayerwiseGramian", "find_dense_layers", "layerwise_descent",
           "layerwise_gramian"]

_MISSING = object()


class _GraphUnreadable(Exception):
    """An autograd attribute this module relies on is missing (renamed by a torch release)."""


def _attr(node: Any, name: str, default: Any = _MISSING) -> Any:
    """``getattr(node, name)`` for the undocumented autograd attributes. Without ``default`` a
    missing one raises :class:`_GraphUnreadable` (the caller then uses the generic path)."""
    try:
        return getattr(node, name)
    except (AttributeError, RuntimeError) as exc:  # RuntimeError: a freed saved tensor
        if default is _MISSING:
            raise _GraphUnreadable(name) from exc
        return default


def _edges(node: Any) -> tuple[Any, ...]:
    return tuple(_attr(node, "next_functions"))


_WEIGHT_EDGE = {"AddmmBackward0": 2, "MmBackward0": 1}
_SAVED_INPUT = {"AddmmBackward0": "_saved_mat1", "MmBackward0": "_saved_self"}


@dataclass
class DenseLayer:
    """A matrix-product node ``z = x Wᵀ (+ b)`` (or ``z = x W`` when ``transposed``: the weight
    stored as d_in × d_out) of the graph whose weight (and bias) feed nothing else."""

    node: Any
    weight: Tensor
    bias: Tensor | None
    x: Tensor  # (R, d_in), the input saved by the node
    transposed: bool = False

    @property
    def d_out(self) -> int:
        return self.weight.shape[1] if self.transposed else self.weight.shape[0]

    def weight_grad(self, X: Tensor, Gw: Tensor) -> Tensor:
        """``Gwᵀ X`` (d_out × d_in) in the weight's own layout; batched over leading dims."""
        return torch.matmul(X.T, Gw) if self.transposed else torch.matmul(Gw.mT, X)


def _consumers(roots: Sequence[Any]) -> dict[Any, list[tuple[Any, int]]]:
    """Every node reachable from ``roots`` → the (node, input position) pairs that feed it."""
    users: dict[Any, list[tuple[Any, int]]] = {}
    stack = [r for r in roots if r is not None]
    seen = set(stack)
    while stack:
        node = stack.pop()
        users.setdefault(node, [])
        for pos, (child, _) in enumerate(_edges(node)):
            if child is None:
                continue
            users.setdefault(child, []).append((node, pos))
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return users


def _only_param(node: Any, users: dict[Any, list[tuple[Any, int]]], ids: set[int]) -> Tensor | None:
    """The parameter behind an ``AccumulateGrad`` node with exactly one consumer, if chosen."""
    var = _attr(node, "variable", None)
    if isinstance(var, Tensor) and id(var) in ids and len(users.get(node, ())) == 1:
        return var
    return None


def _is_transpose(node: Any) -> bool:
    """``W.t()``, ``W.T`` / ``W.permute(1, 0)``, ``W.mT`` / ``W.transpose(0, 1)`` of a matrix."""
    name = type(node).__name__
    if name == "TBackward0":
        return True
    if name == "PermuteBackward0":
        return tuple(_attr(node, "_saved_dims")) == (1, 0)
    if name == "TransposeBackward0":  # dims saved as unsigned: -1 reads 2⁶⁴ - 1
        dims = [_attr(node, f"_saved_dim{i}") for i in (0, 1)]
        return all(isinstance(d, int) for d in dims) and \
            sorted(d % 2 for d in dims) == [0, 1]
    return False


_VIEWS = {"ViewBackward0", "UnsafeViewBackward0", "ReshapeAliasBackward0"}


def _shape(node: Any) -> tuple[int, ...] | None:
    """The shape of the forward output whose gradient ``node`` receives (None if unknown)."""
    meta = _attr(node, "_input_metadata", None)
    try:
        return tuple(meta[0].shape) if meta else None
    except (AttributeError, IndexError, TypeError):  # a layout this module does not know
        return None


def _bias_after(node: Any, users: dict[Any, list[tuple[Any, int]]], ids: set[int],
                d_out: int) -> Tensor | None:
    """The bias of ``z = view(x Wᵀ) + b`` — how ``x @ W.T + b`` and ``nn.Linear`` under vmap are
    recorded — if the product's output feeds only that sum, with no broadcasting on its side;
    then the bias gradient is the product's output gradient summed over its rows."""
    cur = node
    while len(users.get(cur, ())) == 1:
        nxt, _ = users[cur][0]
        if type(nxt).__name__ not in _VIEWS:
            break
        cur = nxt
    if len(users.get(cur, ())) != 1:
        return None
    add, pos = users[cur][0]
    if type(add).__name__ != "AddBackward0" or _attr(add, "_saved_alpha", None) != 1:
        return None
    out, side = _shape(add), _shape(cur)
    if out is None or out != side or out[-1] != d_out:
        return None
    other = _edges(add)[1 - pos][0]
    if type(other).__name__ == "MulBackward1" and _attr(other, "_saved_other", None) == 1 \
            and len(users.get(other, ())) == 1:  # vmap's linear adds 1·b
        other = _edges(other)[0][0]
    b = _only_param(other, users, ids) if other is not None else None
    return b if b is not None and b.shape == (d_out,) else None


def find_dense_layers(outputs: Sequence[Tensor],
                      params: Sequence[Tensor]) -> tuple[list[DenseLayer], list[Tensor]]:
    """The dense layers among ``params`` in the graph of ``outputs``, and the other params
    (all of them, no layer, when the graph cannot be read: see :func:`_attr`)."""
    try:
        return _find_dense_layers(outputs, params)
    except _GraphUnreadable:
        return [], list(params)


def _find_dense_layers(outputs: Sequence[Tensor],
                       params: Sequence[Tensor]) -> tuple[list[DenseLayer], list[Tensor]]:
    users = _consumers([o.grad_fn for o in outputs])
    ids = {id(p) for p in params}
    layers: list[DenseLayer] = []
    claimed: set[int] = set()
    for node in users:
        name = type(node).__name__
        if name not in _WEIGHT_EDGE:
            continue
        w_node = _edges(node)[_WEIGHT_EDGE[name]][0]
        if w_node is None:
            continue
        transposed = not _is_transpose(w_node)  # x @ W: the parameter itself
        if not transposed:
            if len(users[w_node]) != 1:
                continue
            w_node = _edges(w_node)[0][0]
        weight = _only_param(w_node, users, ids)
        if weight is None or weight.ndim != 2 or id(weight) in claimed:
            continue
        if name == "AddmmBackward0" and (_attr(node, "_saved_alpha") != 1
                                         or _attr(node, "_saved_beta") != 1):
            continue
        x = _attr(node, _SAVED_INPUT[name])
        if not isinstance(x, Tensor):
            raise _GraphUnreadable(_SAVED_INPUT[name])
        layer = DenseLayer(node, weight, None, x.detach(), transposed)
        if x.ndim != 2 or x.shape[1] != weight.shape[0 if transposed else 1]:
            continue
        bias_node = _edges(node)[0][0] if name == "AddmmBackward0" else None
        if bias_node is not None:
            b = _only_param(bias_node, users, ids)
            if b is not None and b.shape == (layer.d_out,):
                layer.bias = b
        elif name == "MmBackward0":
            layer.bias = _bias_after(node, users, ids, layer.d_out)
        claimed.add(id(weight))
        if layer.bias is not None:
            claimed.add(id(layer.bias))
        layers.append(layer)
    return layers, [p for p in params if id(p) not in claimed]


_TRI_MIN_ROWS = 128  # below this, K Gᵢ as one dense product
_TRI_BLOCKS = 4


def _triangular(R: int, device: torch.device | str = "cpu") -> bool:
    """Whether the kernel form goes through K's Cholesky factor: enough rows for the blocks to
    pay, and a CPU (on a GPU, latency rules, not multiply-adds)."""
    return R >= _TRI_MIN_ROWS and torch.device(device).type == "cpu"


def _kernel_cheaper(m: int, R: int, d_in: int, d_out: int,
                    device: torch.device | str = "cpu") -> bool:
    """Multiply-adds of the kernel form (K, its Cholesky factor where :func:`_triangular`,
    Lᵀ Gᵢ block-triangular, the Gram matrix, the update) against the gradient form (the m
    rows, their Gram matrix, Σ wᵢ ·)."""
    k = _TRI_BLOCKS if _triangular(R, device) else 1
    tri = R ** 3 // 3 if k > 1 else 0
    kernel = (R * R * d_in + tri + m * R * R * d_out * (k + 1) // (2 * k)
              + m * m * R * d_out + R * d_in * d_out)
    grads = m * R * d_in * d_out + m * m * d_in * d_out + m * d_in * d_out
    return kernel < grads


def _kernel_gramian(K: Tensor, Gout: Tensor) -> Tensor:
    """``[⟨Gᵢ, K Gⱼ⟩]`` for ``Gout`` (m, R, d_out). With ``K = L Lᵀ`` (Cholesky) it is the Gram
    matrix of the ``Lᵀ Gᵢ``, formed block row by block row: block b of ``Lᵀ Gᵢ`` only needs rows
    from b on, so four blocks take 5/8 of the dense ``K Gᵢ`` (measured 10.9 against 13 ms at m =
    10, R = 256, d_out = 512; 45 against 54 ms at m = 50). Cholesky is backward stable, so the
    entries are as accurate as the dense product's; where it fails (K singular: fewer distinct
    inputs than rows) the dense product is used."""
    m, R, _ = Gout.shape
    if _triangular(R, K.device):
        L, info = torch.linalg.cholesky_ex(K)
        if int(info) == 0:
            U = L.mT.contiguous()
            cuts = [R * b // _TRI_BLOCKS for b in range(_TRI_BLOCKS + 1)]
            G = K.new_zeros(m, m)
            for a, b in pairwise(cuts):
                G += gram(torch.matmul(U[a:b, a:], Gout[:, a:]).reshape(m, -1))
            return G
    KG = torch.matmul(K, Gout)
    G = gram(Gout.reshape(m, -1), KG.reshape(m, -1))
    return (G + G.T) / 2


class _LayerPiece:
    """One dense layer's share of the Gramian and, given the weights, of the update."""

    def __init__(self, layer: DenseLayer, Gout: Tensor) -> None:
        self.layer = layer
        m, R, d_out = Gout.shape
        X = layer.x.to(Gout.dtype)
        bias = layer.bias is not None
        self.kernel = _kernel_cheaper(m, R, X.shape[1] + bias, d_out, X.device)
        if self.kernel:
            K = X @ X.T
            if bias:
                K += 1.0
            self.gramian = _kernel_gramian(K, Gout)
            self.Gout, self.X = Gout, X
        else:
            # the m weight rows in the weight's own layout (no transpose when the update is
            # written to .grad), and the bias rows Σ_r Gᵢ[r]: measured as fast as X̃ᵀ Gᵢ with
            # X̃ = [X, 1] and 12× faster for a narrow output layer (d_out = m = 2: 0.05 against
            # 0.58 ms), which needed the copy X̃ᵀ
            self.P = layer.weight_grad(X, Gout).reshape(m, -1)
            self.Pb = Gout.sum(1) if bias else None
            self.gramian = gram(self.P)
            if self.Pb is not None:
                self.gramian += self.Pb @ self.Pb.T

    def update(self, w: Tensor) -> list[Tensor]:
        if self.kernel:
            Gw = torch.tensordot(w.to(self.Gout.dtype), self.Gout, dims=1)  # (R, d_out)
            out = [self.layer.weight_grad(self.X, Gw)]
            return out + ([Gw.sum(0)] if self.layer.bias is not None else [])
        w = w.to(self.P.dtype)
        out = [(w @ self.P).reshape(self.layer.weight.shape)]
        return out + ([w @ self.Pb] if self.Pb is not None else [])


class LayerwiseGramian:
    """``G = JJᵀ`` assembled from the dense layers' pieces and the other parameters' rows; keeps
    what :meth:`apply` needs to add the update ``Jᵀw`` to ``.grad``."""

    def __init__(self, pieces: list[_LayerPiece], rest: list[Tensor], rows: list[Tensor]) -> None:
        self.pieces, self.rest, self.rows = pieces, rest, rows
        G = pieces[0].gramian.clone()
        for pc in pieces[1:]:
            G += pc.gramian.to(G.dtype)
        for r in rows:
            G += gram(r).to(G.dtype)
        self.G = G

    def apply(self, w: Tensor) -> None:
        for pc in self.pieces:
            targets = [pc.layer.weight] + ([pc.layer.bias] if pc.layer.bias is not None else [])
            accumulate(targets, pc.update(w))
        accumulate(self.rest, [w.to(r.dtype) @ r for r in self.rows])


def layerwise_gramian(outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                      params: list[Tensor], *, retain_graph: bool,
                      chunk_size: ChunkSize) -> LayerwiseGramian | None:
    """The Gramian of the rows ``Jᵀ c_k`` over ``params`` through the dense layers' pieces (one
    batched backward pass, ``chunk_size`` rows at a time). None — the graph untouched — when no
    dense layer among ``params`` is found or the pieces would exceed the memory budget."""
    layers, rest = find_dense_layers(outputs, params)
    if not layers:
        return None
    m = cotangents[0].shape[0]
    size = sum(ly.x.shape[0] * ly.d_out * ly.weight.element_size() for ly in layers)
    size += sum(p.numel() * p.element_size() for p in rest)
    if 2 * m * size > config.get_memory_budget():
        return None
    inputs: list[Any] = [GradientEdge(ly.node, 0) for ly in layers] + rest
    c = row_chunk(m, size, chunk_size)
    parts: list[tuple[Tensor | None, ...]] = []
    for s in range(0, m, c):
        keep = retain_graph or s + c < m
        cots = [ct[s:s + c] for ct in cotangents]
        if c == 1:
            g = torch.autograd.grad(outputs, inputs, [ct[0] for ct in cots], retain_graph=keep,
                                    allow_unused=True)
            parts.append(tuple(None if t is None else t.unsqueeze(0) for t in g))
        else:
            parts.append(torch.autograd.grad(outputs, inputs, cots, retain_graph=keep,
                                             allow_unused=True, is_grads_batched=True))
    grads = list(parts[0]) if len(parts) == 1 else [
        None if parts[0][i] is None else torch.cat([t for t in (p[i] for p in parts)
                                                    if t is not None])
        for i in range(len(inputs))]
    pieces = []
    for ly, grad in zip(layers, grads, strict=False):
        assert grad is not None, "a dense layer found on the outputs' graph always gets a gradient"
        pieces.append(_LayerPiece(ly, grad))
    rows = [(g if g is not None else p.new_zeros((m, *p.shape))).reshape(m, -1)
            for g, p in zip(grads[len(layers):], rest, strict=True)]
    return LayerwiseGramian(pieces, rest, rows)


def layerwise_descent(outputs: Sequence[Tensor], cotangents: Sequence[Tensor],
                      params: list[Tensor], aggregator: Any, *, retain_graph: bool,
                      chunk_size: ChunkSize) -> Tensor | None:
    """Jacobian descent with a Gramian-weighted aggregator through :func:`layerwise_gramian`:
    adds the update ``Jᵀw`` to ``.grad`` (from the stored pieces: no second backward pass) and
    returns ``w``; None when :func:`layerwise_gramian` does not apply."""
    lg = layerwise_gramian(outputs, cotangents, params, retain_graph=retain_graph,
                           chunk_size=chunk_size)
    if lg is None:
        return None
    w = aggregator.weights(lg.G).detach()
    lg.apply(w)
    return w
