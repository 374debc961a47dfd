"""The softmax Jacobian ``diag(σ) − σσᵀ`` as a lazy operator, and its O(K) products.

σ is always computed with ``torch.softmax`` (max-shifted, so logits of magnitude 1e4 are fine);
``exp(z)`` is never formed. For one vector of ``K`` logits :func:`softmax_jacobian` returns a
:class:`SoftmaxJacobian`, a :class:`~jacobite.operators.DiagonalPlusLowRank` (O(K) memory, O(K)
products, tagged symmetric, psd and low rank ``K − 1``); for a batch it returns a
:class:`BatchedSoftmaxJacobian`, the Jacobian of the whole flattened map, which stores only σ and
applies every block in O(K). Materialised diagonals use ``σᵢ Σ_{j≠i} σⱼ`` (not ``σᵢ − σᵢ²``), so
``J 1 = 0`` holds to ``eps ‖J‖`` and rank/definiteness tests on ``to_dense()`` come out right.

>>> import torch
>>> z = torch.tensor([2.5, 1.0, 3.0], dtype=torch.float64)
>>> J = softmax_jacobian(z)
>>> sorted(J.tags), J.mv(torch.ones(3, dtype=torch.float64)).abs().max().item() < 1e-15
(['low_rank', 'psd', 'symmetric'], True)
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import get_memory_budget
from ..errors import JacobianTooLarge
from ..operators import DiagonalPlusLowRank, JacobianOperator
from ..operators.tags import LOW_RANK, PSD, SYMMETRIC, close_tags
from . import _checks as chk

__all__ = [
    "BatchedSoftmaxJacobian",
    "SoftmaxJacobian",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
]


def _apply(sigma: torch.Tensor, v: torch.Tensor, dim: int) -> torch.Tensor:
    """σ ⊙ (v − ⟨v, σ⟩) along ``dim``: the product of every block with ``v`` (J is symmetric)."""
    return sigma * (v - (sigma * v).sum(dim, keepdim=True))


def _complement(sigma: torch.Tensor, dim: int) -> torch.Tensor:
    """``1 − σᵢ`` as ``Σ_{j≠i} σⱼ`` (exclusive prefix plus suffix sums): no cancellation at σᵢ ≈ 1.

    ``σᵢ − σᵢ²`` loses all relative accuracy when σᵢ ≈ 1, which leaves ``J 1`` at ``eps`` instead of
    ``eps ‖J‖`` and makes rank and definiteness tests fail; ``σᵢ · Σ_{j≠i} σⱼ`` does not.
    """
    s = sigma.movedim(dim, -1)
    zero = s.new_zeros(*s.shape[:-1], 1)
    prefix = torch.cat([zero, s.cumsum(-1)[..., :-1]], -1)
    suffix = torch.cat([s.flip(-1).cumsum(-1).flip(-1)[..., 1:], zero], -1)
    return (prefix + suffix).movedim(-1, dim)


def _sums_to_one(s: torch.Tensor, dim: int, *, at_most: bool = False) -> bool:
    """σ ≥ 0 and every group sums to 1 (``at_most``: to at most 1) up to rounding.

    Sums of 1 make σ a softmax output (``J 1 = 0``); sums of at most 1 make ``diag(σ) − σσᵀ`` PSD.
    """
    if s.is_complex() or not bool((s >= 0).all()):
        return False
    tol = 4 * torch.finfo(s.dtype).eps * max(s.shape[dim], 1)
    excess = s.sum(dim) - 1
    return bool((excess <= tol).all() if at_most else (excess.abs() <= tol).all())


class SoftmaxJacobian(DiagonalPlusLowRank):
    """``diag(σ) − σσᵀ`` for one vector σ: a :class:`~jacobite.operators.DiagonalPlusLowRank`
    (built by ``DiagonalPlusLowRank.softmax``) that also knows its rank bound ``K − 1`` when σ sums
    to 1 (tag ``low_rank``: ``J 1 = 0``, so ``slogdet`` is ``(0, −inf)`` and ``solve`` refuses) and
    materialises its diagonal as ``σᵢ Σ_{j≠i} σⱼ``, accurate even when some σᵢ ≈ 1.

    >>> import torch
    >>> J = SoftmaxJacobian.from_logits(torch.tensor([0.0, 40.0], dtype=torch.float64))
    >>> J.rank_bound, J.to_dense().sum(1).abs().max().item() < 1e-30
    (1, True)
    """

    _complement_cache: torch.Tensor | None = None
    _distribution = False

    @property
    def complement(self) -> torch.Tensor:
        """``1 − σ``, as ``Σ_{j≠i} σⱼ`` when σ sums to 1 (computed on first use; O(K))."""
        if self._complement_cache is None:
            self._complement_cache = (_complement(self.d, 0) if self._distribution
                                      else 1 - self.d)
        return self._complement_cache

    @classmethod
    def from_sigma(cls, sigma: torch.Tensor) -> SoftmaxJacobian:
        """The Jacobian at softmax output ``sigma`` (shape ``(K,)``).

        >>> import torch
        >>> SoftmaxJacobian.from_sigma(torch.tensor([0.5, 0.5])).diagonal().tolist()
        [0.25, 0.25]
        """
        op = cls.softmax(sigma)
        assert isinstance(op, SoftmaxJacobian)
        if op.shape[0] and _sums_to_one(op.d.detach(), 0):  # J 1 = σ (1 − Σσ) = 0: rank <= K − 1
            op._distribution = True
            op._rank_bound = op.shape[0] - 1
            op._tags = close_tags(op.tags | {LOW_RANK})
        return op

    @classmethod
    def from_logits(cls, z: torch.Tensor) -> SoftmaxJacobian:
        """The Jacobian of softmax at logits ``z`` (shape ``(K,)``), σ by ``torch.softmax``.

        >>> import torch
        >>> SoftmaxJacobian.from_logits(torch.zeros(2)).to_dense().tolist()
        [[0.25, -0.25], [-0.25, 0.25]]
        """
        return cls.from_sigma(torch.softmax(z, 0))

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return _apply(self.d, v, 0)

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return _apply(self.d[:, None], V, 0)

    _rmv, _rmm = _mv, _mm

    def _diagonal(self) -> torch.Tensor:
        return self.d * self.complement

    # The determinant lemma and Woodbury (DiagonalPlusLowRank's fast paths) would return rounding
    # noise for this singular matrix; the base contract answers from the rank bound instead.
    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._distribution:
            return super()._slogdet()
        return JacobianOperator._slogdet(self)

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if not self._distribution:
            return super()._solve(B)
        return JacobianOperator._solve(self, B)

    def _to_dense(self) -> torch.Tensor:
        out = -torch.outer(self.d, self.d)
        out.diagonal().copy_(self._diagonal())
        return out


class BatchedSoftmaxJacobian(JacobianOperator):
    """Jacobian of ``z ↦ softmax(z, dim)`` for a tensor ``z`` of two or more dimensions.

    The operator acts on the row-major flattening of ``z`` (shape ``(N, N)``, ``N = z.numel()``):
    it is block diagonal up to that ordering, one ``K × K`` block ``diag(σ_g) − σ_g σ_gᵀ`` per
    softmax group ``g`` (for ``dim=-1`` and ``z`` of shape ``(B, K)``: exactly ``blockdiag`` over
    the samples, sample-major). Only σ is stored; ``mv``/``rmv`` cost O(N). Tags: symmetric; psd
    when σ ≥ 0 and each group sums to at most 1; and when σ is a softmax output (each group summing
    to 1) ``low_rank`` with ``rank_bound = N − G`` (each block has ``1`` in its null space).

    * :meth:`apply` takes and returns tensors shaped like ``z`` (no flattening needed);
    * :meth:`block` gives one group's :class:`SoftmaxJacobian`;
    * :meth:`to_dense_blocks` gives the ``(G, K, K)`` stack (what a batched reference
      implementation returns), :meth:`to_dense` the ``(N, N)`` block-diagonal matrix; both check
      the memory budget first, so a vocabulary-sized ``K`` raises
      :class:`~jacobite.errors.JacobianTooLarge` instead of allocating.

    >>> import torch
    >>> z = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    >>> J = BatchedSoftmaxJacobian(torch.softmax(z, -1))
    >>> J.shape, J.num_blocks, J.rank_bound
    ((4, 4), 2, 2)
    >>> J.to_dense_blocks()[0].tolist()
    [[0.25, -0.25], [-0.25, 0.25]]
    """

    def __init__(self, sigma: torch.Tensor, dim: int = -1) -> None:
        sigma = chk.float_tensor(sigma, "sigma", min_ndim=1)
        self.dim = chk.norm_dim(dim, sigma.ndim)
        self.sigma = sigma
        n = sigma.numel()
        K = sigma.shape[self.dim]
        groups = n // K if K else 0
        tags, bound = {SYMMETRIC}, None
        self._distribution = bool(n) and _sums_to_one(sigma.detach(), self.dim)
        if self._distribution:  # a softmax output: J 1 = 0 per group
            bound = n - groups
        if n and _sums_to_one(sigma.detach(), self.dim, at_most=True):
            tags.add(PSD)
        super().__init__((n, n), sigma.dtype, sigma.device, tags, rank_bound=bound)

    @property
    def num_classes(self) -> int:
        """``K``, the length of each softmax group."""
        return self.sigma.shape[self.dim]

    @property
    def num_blocks(self) -> int:
        """``G``, the number of softmax groups (the batch size for ``(B, K)`` logits)."""
        K = self.num_classes
        return self.sigma.numel() // K if K else 0

    def _groups(self) -> torch.Tensor:
        return self.sigma.movedim(self.dim, -1).reshape(-1, self.num_classes)

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``J v`` (= ``Jᵀ v``) for ``v`` shaped like the logits; returns the same shape.

        >>> import torch
        >>> J = softmax_jacobian(torch.zeros(2, 2, dtype=torch.float64))
        >>> J.apply(torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)).tolist()
        [[0.25, -0.25], [0.0, 0.0]]
        """
        v = chk.float_tensor(v, "v", finite=False)
        chk.same_shape(self.sigma, v, "the logits", "v")
        chk.same_dtype(self.sigma, v, "the logits", "v")
        return _apply(self.sigma, v, self.dim)

    def block(self, g: int) -> SoftmaxJacobian:
        """The ``K × K`` Jacobian of softmax group ``g`` (sample ``g`` for ``(B, K)`` logits).

        >>> import torch
        >>> J = softmax_jacobian(torch.zeros(3, 4))
        >>> J.block(1).shape, sorted(J.block(1).tags)
        ((4, 4), ['low_rank', 'psd', 'symmetric'])
        """
        return SoftmaxJacobian.from_sigma(self._groups()[g])

    def to_dense_blocks(self) -> torch.Tensor:
        """The ``(G, K, K)`` stack of dense blocks ``diag(σ_g) − σ_g σ_gᵀ`` (memory-checked).

        >>> import torch
        >>> softmax_jacobian(torch.zeros(5, 3)).to_dense_blocks().shape
        torch.Size([5, 3, 3])
        """
        G, K = self.num_blocks, self.num_classes
        need = G * K * K * self.sigma.element_size()
        if need > get_memory_budget():
            raise JacobianTooLarge(
                f"to_dense_blocks() would store {G} dense {K}x{K} blocks ({need} bytes), more than "
                f"the memory budget; use mv/apply (O(K) per sample) or block(g) for one sample, or "
                f"raise the budget with jacobite.config.memory_budget(...)"
            )
        s = self._groups()
        out = -(s[:, :, None] * s[:, None, :])
        out.diagonal(dim1=-2, dim2=-1).copy_(s * self._one_minus(s, -1))
        return out

    def _one_minus(self, s: torch.Tensor, dim: int) -> torch.Tensor:
        return _complement(s, dim) if self._distribution else 1 - s

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return _apply(self.sigma, v.reshape(self.sigma.shape), self.dim).reshape(-1)

    _rmv = _mv

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        k = V.shape[1]
        Vs = V.reshape(*self.sigma.shape, k)
        return _apply(self.sigma.unsqueeze(-1), Vs, self.dim).reshape(-1, k)

    _rmm = _mm

    def _diagonal(self) -> torch.Tensor:
        return (self.sigma * self._one_minus(self.sigma, self.dim)).reshape(-1)

    def _to_dense(self) -> torch.Tensor:
        shape = list(self.sigma.shape)
        shape[self.dim] = 1
        group = torch.arange(self.num_blocks, device=self.device).reshape(
            [s for i, s in enumerate(shape) if i != self.dim]).unsqueeze(self.dim)
        group = group.expand(self.sigma.shape).reshape(-1)
        s = self.sigma.reshape(-1)
        out = -(s[:, None] * s[None, :]) * (group[:, None] == group[None, :])
        out.diagonal().copy_(self._diagonal())
        return out


def softmax_jacobian(z: torch.Tensor, dim: int = -1) -> JacobianOperator:
    """The Jacobian of ``softmax(z, dim)`` as a structured operator, never a dense matrix.

    * ``z`` of shape ``(K,)``: a :class:`SoftmaxJacobian` (a ``DiagonalPlusLowRank`` built by
      ``DiagonalPlusLowRank.softmax(σ)``) = ``diag(σ) − σσᵀ``, tagged symmetric, psd and low rank
      (``K − 1``). Products cost O(K) and memory is O(K), so ``K = 131072`` (a language model's
      vocabulary) takes milliseconds; call ``.to_dense()`` for the ``K × K`` matrix.
    * ``z`` with more dimensions (e.g. a batch ``(B, K)``): a :class:`BatchedSoftmaxJacobian`, the
      Jacobian of the flattened map (``(N, N)``, ``N = z.numel()``), block diagonal with one
      softmax block per group along ``dim``; ``.block(b)`` / ``.to_dense_blocks()`` give the
      per-sample blocks.

    σ comes from ``torch.softmax`` (stable for logits of any magnitude).

    >>> import torch
    >>> J = softmax_jacobian(torch.tensor([0.0, 0.0], dtype=torch.float64))
    >>> J.to_dense().tolist()
    [[0.25, -0.25], [-0.25, 0.25]]
    >>> type(softmax_jacobian(torch.zeros(4, 3))).__name__
    'BatchedSoftmaxJacobian'
    """
    z = chk.float_tensor(z, "z", min_ndim=1)
    d = chk.norm_dim(dim, z.ndim)
    sigma = torch.softmax(z, d)
    if z.ndim == 1:
        return SoftmaxJacobian.from_sigma(sigma)
    return BatchedSoftmaxJacobian(sigma, d)


def _pair(z: Any, v: Any, name: str, dim: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    z = chk.float_tensor(z, "z", min_ndim=1)
    v = chk.float_tensor(v, name, finite=False)
    chk.same_shape(z, v, "z", name)
    chk.same_dtype(z, v, "z", name)
    return z, v, chk.norm_dim(dim, z.ndim)


def softmax_vjp(z: torch.Tensor, g: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``Jᵀ g = σ ⊙ (g − ⟨g, σ⟩)``: the gradient w.r.t. the logits given ``g = ∂L/∂σ``.

    O(K) per softmax group; works for any shape (inner products along ``dim``).

    >>> import torch
    >>> z = torch.tensor([0.0, 0.0], dtype=torch.float64)
    >>> softmax_vjp(z, torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
    [0.25, -0.25]
    """
    z, g, d = _pair(z, g, "g", dim)
    return _apply(torch.softmax(z, d), g, d)


def softmax_jvp(z: torch.Tensor, v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``J v = σ ⊙ (v − ⟨v, σ⟩)``: the change of σ for a change ``v`` of the logits.

    The same formula as :func:`softmax_vjp` because the softmax Jacobian is symmetric. Adding a
    constant to every logit changes nothing (``J 1 = 0``):

    >>> import torch
    >>> z = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    >>> softmax_jvp(z, torch.ones(3, dtype=torch.float64)).abs().max().item() < 1e-16
    True
    """
    z, v, d = _pair(z, v, "v", dim)
    return _apply(torch.softmax(z, d), v, d)
