"""Kronecker-factored curvature (K-FAC) of the ``nn.Linear`` and ``nn.Conv2d`` layers of a
network: per layer ``G ⊗ A`` with ``A = (1/N) Σ_n ã_n ã_nᵀ`` (the layer's inputs, with a 1
appended for the bias) and ``G = c Σ_n (1/S) Σ_s g_{n,s} g_{n,s}ᵀ`` (the gradients of sample
n's loss in the layer's output, ``c`` the reduction factor of :mod:`jacobite.curvature.fisher`),
one block per layer. A layer applied at ``T`` positions per sample (a convolution's output
pixels, a Linear layer on ``(n, ..., d)``) counts every position as a row:
``A = (1/(N T)) Σ_{n,t} ã ãᵀ``, ``G = c Σ_{n,t} (1/S) Σ_s g gᵀ`` (a convolution's ``ã`` is its
unfolded patch, its weight read as ``(C_out, C_in k_h k_w)``).

A Linear layer's per-sample gradient is ``g ⊗ ã`` (row-major ``[W | b]``), so its Fisher block
is ``c Σ_n (g_n g_nᵀ) ⊗ (ã_n ã_nᵀ)``; K-FAC replaces this mean of products by the product of
the means, exact for one sample. The labels are drawn from the model (``kind="mc"``, the same
draws as ``fisher(kind="mc")`` with the same ``seed``) or are the data's (``"empirical"``).

>>> import torch
>>> from jacobite.curvature import kfac
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
>>> X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
>>> K = kfac(model, torch.nn.CrossEntropyLoss(), (X, y), damping=1e-3)
>>> K.shape, [tuple(A.shape) for _, A, _ in K.factors]
((67, 67), [(5, 5), (9, 9)])
>>> x = K.solve(torch.ones(67))
>>> bool(torch.allclose(K.mv(x), torch.ones(67), atol=1e-3))
True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .. import _validate
from ..distributed import ProcessGroupLike, resolve
from ..operators import FunctionOperator, JacobianOperator, KroneckerOperator
from ._kfac_stats import Layer, collect, drawn
from ._loss import LossCurvature
from ._setup import Data, Params, check_model
from ._sharded import count_guard

__all__ = ["KFACOperator", "kfac"]


class _Block:
    """One layer's ``G ⊗ A + damping · I`` on its slice of the parameter vector (the weight
    row-major, then the bias), through the row-major ``[W | b]`` layout of the factors."""

    def __init__(self, layer: Layer, G: torch.Tensor, A: torch.Tensor,
                 damping: float) -> None:
        self.layer = layer
        # Gram matrices: positive semi-definite, eigendecomposed at the first solve
        self.K = KroneckerOperator(G, A, shift=damping, psd=True)

    def _to_matrix(self, V: torch.Tensor) -> torch.Tensor:
        """Rows of the parameter vector → rows of vec_row([W | b])."""
        L, k = self.layer, V.shape[1]
        parts = []
        if L.w is not None:
            parts.append(V[L.w].reshape(L.d_out, L.d_in, k))
        if L.b is not None:
            parts.append(V[L.b].reshape(L.d_out, 1, k))
        return torch.cat(parts, dim=1).reshape(-1, k)

    def _scatter(self, M: torch.Tensor, out: torch.Tensor) -> None:
        L, k = self.layer, M.shape[1]
        M3 = M.reshape(L.d_out, -1, k)
        if L.w is not None:
            out[L.w] = M3[:, :L.d_in].reshape(-1, k)
        if L.b is not None:
            out[L.b] = M3[:, -1].reshape(-1, k)

    def apply(self, op: Any, V: torch.Tensor, out: torch.Tensor) -> None:
        self._scatter(op(self._to_matrix(V)), out)


class KFACOperator(JacobianOperator):
    """The block-diagonal K-FAC operator over the parameter vector: one damped Kronecker block
    ``G ⊗ A + damping · I`` per Linear or Conv2d layer. ``solve``, ``slogdet`` and
    :meth:`inv_sqrt` work block by block through the factors' eigendecompositions;
    ``factors`` lists ``(layer name, A, G)``.

    >>> import torch
    >>> from jacobite.curvature import kfac
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(1, 3, dtype=torch.float64), torch.randn(1, 2, dtype=torch.float64)
    >>> K = kfac(model, torch.nn.MSELoss(reduction="sum"), (X, y), kind="empirical")
    >>> K.is_psd(), K.slogdet()[1]  # one sample: rank one
    (True, tensor(-inf, dtype=torch.float64))
    """

    def __init__(self, size: int, blocks: list[_Block], dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__((size, size), dtype, device, ("symmetric", "psd"))
        self._blocks = blocks

    @property
    def factors(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        return [(b.layer.name, b.K.B, b.K.A) for b in self._blocks]

    def _each(self, V: torch.Tensor, op: str) -> torch.Tensor:
        out = torch.zeros_like(V)
        for b in self._blocks:
            b.apply(getattr(b.K, op), V, out)
        return out

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self._each(V, "mm")

    _rmm = _mm

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._mm(v[:, None])[:, 0]

    _rmv = _mv

    def _transpose(self) -> JacobianOperator:
        return self

    def _diagonal(self) -> torch.Tensor:
        out = torch.zeros(self.shape[0], 1, dtype=self.dtype, device=self.device)
        for b in self._blocks:
            b._scatter(b.K.diagonal()[:, None], out)
        return out[:, 0]

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        sign = torch.ones((), dtype=self.dtype, device=self.device)
        lad = torch.zeros((), dtype=self.dtype, device=self.device)
        for b in self._blocks:
            s, l_ = b.K.slogdet()
            sign, lad = sign * s, lad + l_
        return sign, lad

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        return self._each(B, "solve")

    def inv_sqrt(self) -> JacobianOperator:
        """``(K + damping · I)^(-1/2)`` block by block, as a lazy symmetric operator (each
        block's factors must make it positive definite: pass ``damping > 0``)."""
        roots = [b.K.inv_sqrt() for b in self._blocks]

        def mm(V: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(V)
            for b, R in zip(self._blocks, roots, strict=True):
                b.apply(R.mm, V, out)
            return out

        n = self.shape[0]
        return FunctionOperator((n, n), lambda v: mm(v[:, None])[:, 0],
                                lambda v: mm(v[:, None])[:, 0], dtype=self.dtype,
                                device=self.device, tags=("symmetric", "psd"), mm=mm, rmm=mm,
                                name="kfac_inv_sqrt")


def kfac(model: nn.Module, loss: Any, data: Any, params: Iterable[str] | None = None, *,
         kind: str = "mc", samples: int = 1, seed: int = 0,
         damping: float = 0.0, process_group: ProcessGroupLike = None) -> KFACOperator:
    """K-FAC of ``loss(model(X), y)`` over ``data``: a block-diagonal ``(P, P)`` operator with
    one Kronecker block ``G ⊗ A + damping · I`` per ``nn.Linear`` or ``nn.Conv2d`` layer.

    Args:
        model, loss, data, params: as for :func:`jacobite.curvature.fisher`; every parameter
            chosen must be the weight or bias of an ``nn.Linear`` or ``nn.Conv2d`` (one group,
            zero padding) layer called once per forward pass (choose them with ``params=``).
            Cross-entropy follows torch's loss: a sample whose target is ``ignore_index``
            counts in neither factor nor in a mean's count (a mean runs over the counted
            targets of all batches, as over the data in one batch); ``label_smoothing`` and
            probability targets enter the gradients ``g`` as they enter the loss.
        kind: ``"mc"`` (labels drawn from the model's predictive: a Fisher approximation) or
            ``"empirical"`` (the data's labels).
        samples, seed: labels drawn per sample for ``"mc"``, and their seed, as in ``fisher``.
        damping: a number ≥ 0 added to every block's diagonal (``G ⊗ A + damping · I``),
            applied exactly through the factors' eigendecompositions.
        process_group: ``None``, or a ``torch.distributed`` process group whose ranks each
            pass their shard of the data: the factors' *sums* ``Σ ã ãᵀ`` and ``Σ g gᵀ``, the
            row counts and the sample count are added over the ranks by one all-reduce at
            set-up, then normalised as in one process (``A`` by the global rows, ``G`` by the
            global count of counted samples for a mean loss), so every rank holds the factors of the
            concatenated data (``kind="mc"``: the ranks draw independent labels, as in
            ``fisher``). Products and solves then need no communication.

    Memory: the factors, ``d_out² + (d_in + 1)²`` numbers per layer. Set-up: one forward
    pass and ``samples`` backward passes per batch.

    >>> import torch
    >>> from jacobite.curvature import kfac
    >>> model = torch.nn.Linear(3, 2).double()
    >>> X, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    >>> K = kfac(model, torch.nn.CrossEntropyLoss(), (X, y), damping=0.1)
    >>> K.shape, K.inv_sqrt().shape
    ((8, 8), (8, 8))
    """
    kind = _validate.choice(kind, "kind", ("mc", "empirical"))
    samples = _validate.positive_int(samples, "samples")
    seed_ = _validate.seed(seed, "seed")
    damping = _validate.tolerance(damping, "damping")
    model = check_model(model)
    lc = LossCurvature.of(loss)
    lc.require_closed("K-FAC needs a loss that is a negative log-likelihood with a predictive "
                      "to draw labels from")
    group = resolve(process_group)
    ps = Params.of(model, params)
    with count_guard(group):
        batches = Data(data, targets=True, dtype=ps.dtype, device=ps.device)
        stats = collect(model, ps, lc, batches, drawn(lc, kind, samples, seed_ or 0, group),
                        group)
    blocks = [_Block(layer, G, A, damping) for layer, A, G in stats]
    return KFACOperator(ps.size, blocks, ps.dtype, ps.device)
