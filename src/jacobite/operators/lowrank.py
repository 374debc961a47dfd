"""Low-rank structure: :class:`DiagonalPlusLowRank` (``diag(d) + U C V^T``) and
:class:`LowRankOperator` (``U C V^T``). Products cost O((m + n) k), never O(m n).

>>> import torch
>>> sigma = torch.softmax(torch.tensor([1.0, 2.0, 3.0]), 0)
>>> J = DiagonalPlusLowRank.softmax(sigma)
>>> torch.allclose(J.to_dense(), torch.diag(sigma) - torch.outer(sigma, sigma))
True
"""

from __future__ import annotations

from typing import Any

import torch

from ..config import get_memory_budget
from ..errors import DtypeError, ShapeError, SingularOperatorError
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import PSD, SYMMETRIC, close_tags, normalize_tags

__all__ = ["DiagonalPlusLowRank", "LowRankOperator"]


def _factor(x: Any, name: str, rows: int | None, like: torch.Tensor | None) -> torch.Tensor:
    x = chk.check_float_tensor(x, name, (1, 2))
    if x.ndim == 1:
        x = x[:, None]
    if rows is not None and x.shape[0] != rows:
        raise ShapeError(f"{name} must have {rows} rows, got shape {tuple(x.shape)}")
    if like is not None and x.dtype != like.dtype:
        raise DtypeError(f"{name} has dtype {x.dtype} but expected {like.dtype}; convert it "
                         f"with {name}.to({like.dtype})")
    return x


def _core(core: Any, k: int, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(k, dtype=like.dtype, device=like.device)
    if core is None:
        return eye
    if isinstance(core, torch.Tensor) and core.numel() != 1:
        if core.shape != (k, k):
            raise ShapeError(f"core must be a scalar or a ({k}, {k}) matrix, got shape "
                             f"{tuple(core.shape)}")
        if core.dtype != like.dtype:
            raise DtypeError(f"core has dtype {core.dtype} but expected {like.dtype}; convert it "
                             f"with core.to({like.dtype})")
        return core
    if isinstance(core, torch.Tensor):
        return core.reshape(()).to(like.dtype) * eye
    return chk.scalar_value(core) * eye


def _core_tags(core: torch.Tensor) -> tuple[bool, bool]:
    """(symmetric, psd) of the small core matrix."""
    if not torch.equal(core, core.mT):
        return False, False
    if core.is_complex() or core.shape[0] == 0:
        return True, core.shape[0] == 0
    return True, bool(torch.linalg.eigvalsh(L.lapack(core.detach())).min() >= 0)


class DiagonalPlusLowRank(JacobianOperator):
    """``diag(d) + U C V^T`` with ``d`` (n,), ``U``/``V`` (n, k) and core ``C`` (k, k).

    ``V=None`` means ``V = U``; ``core`` is ``None`` (identity), a scalar ``c`` (``c * I``) or a
    ``(k, k)`` tensor; a 1-D ``U``/``V`` is a single column. Tags: ``symmetric`` when
    ``V = U`` and ``C`` is symmetric, ``psd`` when moreover the matrix is provably PSD.
    ``slogdet`` uses the matrix determinant lemma and ``solve`` the Woodbury identity
    (O(n k^2 + k^3)) when all ``d != 0``; a capacitance ``I + C V^T D^-1 U`` that vanishes up
    to the rounding of its terms means a singular matrix: ``(0, -inf)`` and a
    :class:`~jacobite.errors.SingularOperatorError`. A zero ``d_i``, or one within ``n · eps``
    of zero relative to the matrix (when the dense matrix fits the memory budget), takes the
    dense path instead.

    >>> import torch
    >>> J = DiagonalPlusLowRank(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), core=3.0)
    >>> J.to_dense()
    tensor([[4., 3.],
            [3., 5.]])
    >>> J.slogdet()
    (tensor(1.), tensor(2.3979))
    >>> J.solve(torch.tensor([4.0, 3.0]))
    tensor([1.0000, 0.0000])
    """

    def __init__(self, d: torch.Tensor, U: torch.Tensor, V: torch.Tensor | None = None, *,
                 core: Any = None) -> None:
        d = chk.check_float_tensor(d, "d", 1)
        n = d.shape[0]
        same = V is None or V is U
        U = _factor(U, "U", n, d)
        Vt = None if same else _factor(V, "V", n, d)
        if Vt is not None and Vt.shape[1] != U.shape[1]:
            raise ShapeError(f"U and V must have the same number of columns, got {U.shape[1]} "
                             f"and {Vt.shape[1]}")
        self.d, self.U, self.V = d, U, (U if Vt is None else Vt)
        self.core = _core(core, U.shape[1], d)
        sym, core_psd = _core_tags(self.core)
        tags: set[str] = set()
        if Vt is None and sym:
            tags.add(SYMMETRIC)
            if not d.is_complex() and self._provably_psd(core_psd):
                tags.add(PSD)
        super().__init__((n, n), d.dtype, d.device, tags)

    def _provably_psd(self, core_psd: bool) -> bool:
        d = self.d.detach()
        if not bool((d >= 0).all()):
            return False
        if core_psd:
            return True
        if not bool((d > 0).all()):
            return False
        # D + U C U^T = D^1/2 (I + W C W^T) D^1/2 with W = D^-1/2 U: PSD iff the smallest
        # eigenvalue of G^1/2 C G^1/2 (G = W^T W) is >= -1.
        W = self.U.detach() / d.sqrt()[:, None]
        lam, Q = torch.linalg.eigh(L.lapack(W.mT @ W))
        half = (Q * lam.clamp_min(0).sqrt()) @ Q.mT
        S = half @ L.lapack(self.core.detach()) @ half
        return bool(torch.linalg.eigvalsh((S + S.mT) / 2).min() >= -1)

    @classmethod
    def softmax(cls, sigma: torch.Tensor) -> DiagonalPlusLowRank:
        """Jacobian of softmax at output ``sigma``: ``diag(sigma) - sigma sigma^T``.

        Tagged symmetric, and psd when ``sigma >= 0`` and ``sum(sigma) <= 1`` (up to rounding),
        which holds for any softmax output. When ``sum(sigma) == 1`` (up to rounding), as for
        a softmax output, ``J 1 = 0``: the operator carries ``rank_bound = K - 1`` (tag
        ``low_rank``), so ``slogdet`` is ``(0, -inf)`` and ``solve`` refuses, naming
        ``lstsq``. mv/rmv cost O(K).

        >>> import torch
        >>> s = torch.softmax(torch.randn(131072, dtype=torch.float64), 0)
        >>> J = DiagonalPlusLowRank.softmax(s)
        >>> J.is_psd(), J.mv(torch.ones(131072, dtype=torch.float64)).abs().max() < 1e-12
        (True, tensor(True))
        """
        sigma = chk.check_float_tensor(sigma, "sigma", 1)
        op = cls(sigma, sigma, core=-1.0)
        s = sigma.detach()
        n = s.numel()
        if n:
            tol = 4 * L.eps_of(s.dtype) * n
            tags = set(op.tags)
            if not s.is_complex() and bool((s >= 0).all()) and float(s.sum()) <= 1 + tol:
                tags.add(PSD)
            # J 1 = σ (1 − Σσ): a σ that sums to 1 makes J singular, rank at most n − 1
            bound = n - 1 if abs(complex(s.sum()) - 1) <= tol * max(1.0, float(s.abs().sum())) \
                else None
            op._tags, op._rank_bound = normalize_tags(close_tags(tags), op.shape, bound)
        return op

    def _mv(self, v: torch.Tensor, /) -> torch.Tensor:
        return self.d * v + self.U @ (self.core @ (self.V.mT @ v))

    def _rmv(self, u: torch.Tensor, /) -> torch.Tensor:
        return self.d * u + self.V @ (self.core.mT @ (self.U.mT @ u))

    def _mm(self, X: torch.Tensor, /) -> torch.Tensor:
        return self.d[:, None] * X + self.U @ (self.core @ (self.V.mT @ X))

    def _rmm(self, X: torch.Tensor, /) -> torch.Tensor:
        return self.d[:, None] * X + self.V @ (self.core.mT @ (self.U.mT @ X))

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return DiagonalPlusLowRank(self.d, self.V, self.U, core=self.core.mT)

    def _to_dense(self) -> torch.Tensor:
        return torch.diag(self.d) + self.U @ self.core @ self.V.mT

    def _diagonal(self) -> torch.Tensor:
        return self.d + ((self.U @ self.core) * self.V).sum(-1)

    def _capacitance(self) -> tuple[torch.Tensor, torch.Tensor]:
        DinvU = self.U / self.d[:, None]
        k = self.core.shape[0]
        eye = torch.eye(k, dtype=self.dtype, device=self.device)
        return eye + self.core @ (self.V.mT @ DinvU), DinvU

    def _lemma_applies(self) -> bool:
        """Whether the lemma / Woodbury path is reliable: every ``d_i != 0``, and none so close
        to zero (``≤ n · eps`` times the size of the matrix) that ``D⁻¹`` would swamp the
        capacitance; such a near-zero ``d_i`` takes the dense path when it fits the budget."""
        n = self.shape[0]
        d = self.d.detach().abs()
        if n == 0 or bool((d == 0).any()):
            return False
        size = float(d.max()) + float(self.U.detach().norm() * self.core.detach().norm()
                                      * self.V.detach().norm())
        near_zero = float(d.min()) <= n * L.eps_of(self.dtype) * size
        return not (near_zero and n * n * self.d.element_size() <= get_memory_budget())

    def _capacitance_singular(self, K: torch.Tensor, DinvU: torch.Tensor) -> bool:
        """``K = I + C Vᵀ D⁻¹ U`` is singular up to the rounding of the sums that formed it:
        ``σ_min(K) ≤ (n + k) · eps · (1 + ‖|C| |V|ᵀ |D⁻¹U|‖)`` (so ``J`` is singular too)."""
        k = K.shape[0]
        if k == 0:
            return False
        terms = self.core.detach().abs() @ (self.V.detach().abs().mT @ DinvU.detach().abs())
        tol = (self.shape[0] + k) * L.eps_of(self.dtype) * (1 + float(terms.norm()))
        L.check_finite_matrix(K.detach(), "the determinant lemma")
        return float(torch.linalg.svdvals(L.lapack(K.detach()))[-1]) <= tol

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank_bound is not None or not self._lemma_applies():
            return super()._slogdet()
        sign_d, lad_d = L.slogdet_from_diagonal(self.d)
        K, DinvU = self._capacitance()
        if self._capacitance_singular(K, DinvU):
            return torch.zeros_like(sign_d), torch.full_like(lad_d, -torch.inf)
        sign_k, lad_k = torch.linalg.slogdet(L.lapack(K))  # half precision: in float32
        return sign_d * sign_k.to(sign_d.dtype), lad_d + lad_k.to(lad_d.dtype)

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        if self.rank_bound is not None or not self._lemma_applies():
            return super()._solve(B)
        K, DinvU = self._capacitance()
        if self._capacitance_singular(K, DinvU):
            raise SingularOperatorError(
                "cannot solve: diag(d) + U C V^T is singular (the capacitance I + C V^T D^-1 U "
                f"of the Woodbury identity vanishes up to rounding); {L._SINGULAR_FIX}")
        Y = B / self.d[:, None]
        return Y - DinvU @ L.solve_dense(K, self.core @ (self.V.mT @ Y))


class LowRankOperator(JacobianOperator):
    """``U C V^T`` with ``U`` (m, k), ``V`` (n, k) (``None``: ``V = U``) and core ``C`` (k, k).

    ``rank_bound = k`` (tag ``low_rank`` when ``k < min(m, n)``, which also makes ``slogdet``
    return ``(0, -inf)`` without any work); ``symmetric``/``psd`` as for
    :class:`DiagonalPlusLowRank`.

    >>> import torch
    >>> u = torch.tensor([1.0, 2.0, 3.0])
    >>> P = LowRankOperator(u)
    >>> P.rank_bound, sorted(P.tags)
    (1, ['low_rank', 'psd', 'symmetric'])
    >>> P.mv(torch.tensor([1.0, 0.0, 0.0]))
    tensor([1., 2., 3.])
    """

    def __init__(self, U: torch.Tensor, V: torch.Tensor | None = None, *, core: Any = None) -> None:
        same = V is None or V is U
        U = _factor(U, "U", None, None)
        Vt = None if same else _factor(V, "V", None, U)
        if Vt is not None and Vt.shape[1] != U.shape[1]:
            raise ShapeError(f"U and V must have the same number of columns, got {U.shape[1]} "
                             f"and {Vt.shape[1]}")
        self.U, self.V = U, (U if Vt is None else Vt)
        self.core = _core(core, U.shape[1], U)
        sym, core_psd = _core_tags(self.core)
        tags: set[str] = set()
        if Vt is None and sym:
            tags.add(SYMMETRIC)
            if core_psd and not U.is_complex():
                tags.add(PSD)
        k = U.shape[1]
        super().__init__((U.shape[0], self.V.shape[0]), U.dtype, U.device, tags, rank_bound=k)

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.U @ (self.core @ (self.V.mT @ v))

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        return self.V @ (self.core.mT @ (self.U.mT @ u))

    _mm = _mv
    _rmm = _rmv

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        return LowRankOperator(self.V, self.U, core=self.core.mT)

    def _to_dense(self) -> torch.Tensor:
        return self.U @ self.core @ self.V.mT

    def _diagonal(self) -> torch.Tensor:
        p = min(self.shape)
        return ((self.U[:p] @ self.core) * self.V[:p]).sum(-1)
