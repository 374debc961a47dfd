"""Matrix-free operators built from closures (e.g. a cached JVP and VJP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from .. import _validate
from ..errors import (
    ConvergenceError,
    DtypeError,
    JacobianTooLarge,
    ShapeError,
    SingularOperatorError,
    UnsupportedOperationError,
)
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import transpose_tags

__all__ = ["FunctionOperator"]

Fn = Callable[[torch.Tensor], torch.Tensor]
#: How :meth:`FunctionOperator.solve` solves: a Krylov method, or materialise and factorise.
SolveMethod = L.IterativeMethod | Literal["dense"]


class FunctionOperator(JacobianOperator):
    """An ``(m, n)`` operator given by ``mv(v) = J v`` and optionally ``rmv(u) = J^T u``.

    Args:
        shape: ``(m, n)``.
        mv: closure ``(n,) -> (m,)``.
        rmv: closure ``(m,) -> (n,)``; without it ``.T``, ``rmv`` and ``rmm`` raise
            :class:`~jacobite.errors.UnsupportedOperationError`.
        dtype, device: those of the vectors the closures take and return.
        tags, rank_bound: structure promises; they are *trusted* (no check is possible
            without materialising; use :func:`jacobite.operators.verify_tags` on small ones).
        mm, rmm: optional batched closures ``(n, k) -> (m, k)`` / ``(m, k) -> (n, k)``;
            by default ``torch.func.vmap`` over ``mv``/``rmv``, falling back to a loop.
        name: shown in ``repr``.

    ``to_dense``/``slogdet`` materialise (within the memory budget, else
    :class:`~jacobite.errors.JacobianTooLarge`); ``solve`` runs SciPy's GMRES (CG when tagged
    ``psd``) and raises :class:`~jacobite.errors.ConvergenceError` if it does not converge —
    or, when the dense matrix fits the budget and explains the failure,
    :class:`~jacobite.errors.SingularOperatorError` (singular) or
    :class:`~jacobite.errors.NonFiniteInputError` (NaN or Inf in the products). A Krylov
    solve that converges on a singular but consistent system returns one of its solutions.
    ``lstsq`` uses LSMR.

    >>> import torch
    >>> A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> op = FunctionOperator((2, 2), lambda v: A @ v, lambda u: A.T @ u, dtype=A.dtype)
    >>> op.solve(torch.tensor([4.0, 3.0], dtype=torch.float64))
    tensor([1., 1.], dtype=torch.float64)
    >>> op.T.mv(torch.tensor([1.0, 0.0], dtype=torch.float64))
    tensor([3., 1.], dtype=torch.float64)
    """

    #: ``f(*args)`` on an operator made by :func:`jacobite.linearize` (absent on others)
    value: Any

    def __init__(
        self, shape: tuple[int, int], mv: Fn, rmv: Fn | None = None, *, dtype: torch.dtype,
        device: torch.device | str | None = None, tags: Any = (), rank_bound: int | None = None,
        mm: Fn | None = None, rmm: Fn | None = None, name: str | None = None,
    ) -> None:
        _validate.callable_(mv, "mv")
        for label, g in (("rmv", rmv), ("mm", mm), ("rmm", rmm)):
            if g is not None:
                _validate.callable_(g, label)
        if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
            raise DtypeError(f"dtype must be a floating torch.dtype, got {dtype!r}; pass e.g. "
                             f"dtype=torch.float64")
        super().__init__(shape, dtype, device, tags, rank_bound)  # checks the shape
        self._fmv, self._frmv, self._fmm, self._frmm = mv, rmv, mm, rmm
        self.name = name

    def __repr__(self) -> str:
        base = super().__repr__()
        return base if self.name is None else f"{base[:-1]}, name={self.name!r})"

    def _no_rmv(self, what: str) -> UnsupportedOperationError:
        label = f" {self.name!r}" if self.name else ""
        return UnsupportedOperationError(
            f"{what} needs J^T u, but the FunctionOperator{label} was built without rmv; pass "
            f"rmv=<closure computing J^T u> (e.g. a VJP) when constructing it"
        )

    def _checked(self, out: Any, shape: tuple[int, ...], which: str) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ShapeError(
                f"the {which} closure of {self!r} returned {got}, expected shape {shape}; fix the "
                f"closure or the declared shape"
            )
        return out

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._checked(self._fmv(v), (self.shape[0],), "mv")

    def _rmv(self, u: torch.Tensor) -> torch.Tensor:
        if self._frmv is None:
            raise self._no_rmv("rmv")
        return self._checked(self._frmv(u), (self.shape[1],), "rmv")

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        if self._fmm is not None:
            return self._checked(self._fmm(V), (self.shape[0], V.shape[1]), "mm")
        return self._checked(self._batched(self._fmv, V, self.shape[0]),
                             (self.shape[0], V.shape[1]), "mv")

    def _rmm(self, U: torch.Tensor) -> torch.Tensor:
        if self._frmv is None:
            raise self._no_rmv("rmm")
        if self._frmm is not None:
            return self._checked(self._frmm(U), (self.shape[1], U.shape[1]), "rmm")
        return self._checked(self._batched(self._frmv, U, self.shape[1]),
                             (self.shape[1], U.shape[1]), "rmv")

    def _transpose(self) -> JacobianOperator:
        if self.is_symmetric():
            return self
        if self._frmv is None:
            raise self._no_rmv(".T")
        return FunctionOperator(
            (self.shape[1], self.shape[0]), self._frmv, self._fmv, dtype=self.dtype,
            device=self.device, tags=transpose_tags(self.tags), rank_bound=self.rank_bound,
            mm=self._frmm, rmm=self._fmm, name=None if self.name is None else f"{self.name}.T",
        )

    def _solve(
        self, B: torch.Tensor, *, method: SolveMethod | None = None, rtol: float | None = None,
        atol: float = 0.0, max_iter: int | None = None,
    ) -> torch.Tensor:
        if method == "dense" or (method is None and (
                self.rank_bound is not None or self.is_diagonal() or self.is_triangular())):
            return super()._solve(B)
        if method is None:
            method = "cg" if self.is_psd() else "gmres"
        try:
            X = L.iterative_solve(self, B, method=method, rtol=rtol, atol=atol,
                                  max_iter=max_iter)
        except ConvergenceError:
            self._diagnose(B)
            raise
        self._refuse_blown_up(B, X)
        return X

    def _refuse_blown_up(self, B: torch.Tensor, X: torch.Tensor) -> None:
        """A small residual can hide a numerically singular ``J``: ``x`` of size ``‖b‖ / eps``.
        ``‖J‖ ‖x‖ / ‖b‖`` is a lower bound on the condition number (``‖J b‖ / ‖b‖`` and
        ``‖J r‖ / ‖r‖`` for a fixed ±1 vector ``r`` bound ``‖J‖`` from below); at
        ``1 / (n · eps)`` or more, ``J`` is singular by the rule of :meth:`slogdet`, and the
        solution is refused."""
        n = self.shape[0]
        r = torch.ones(n, 1, dtype=self.dtype, device=self.device)
        r[1::2] = -1
        r[2::3] *= -1
        JB = self._mm(torch.cat([B, r], dim=1)).detach()
        norm_r = float(JB[:, -1].norm()) / n ** 0.5
        for j in range(B.shape[1]):
            nb, nx = float(B[:, j].norm()), float(X[:, j].norm())
            if nb == 0:
                continue
            cond_lb = max(float(JB[:, j].norm()) / nb, norm_r) * nx / nb
            if cond_lb * n * L.eps_of(self.dtype) >= 1:
                raise SingularOperatorError(
                    f"cannot solve: the Krylov solution has norm {nx:.3g} for a right-hand "
                    f"side of norm {nb:.3g}, so the condition number is at least "
                    f"{cond_lb:.3g} and the operator is numerically singular; "
                    f"{L._SINGULAR_FIX}")

    def _diagnose(self, B: torch.Tensor) -> None:
        """After a failed Krylov solve: raise the error that explains it, if one does — NaN or
        Inf in the products, or a singular matrix (decided on the dense matrix when it fits
        the memory budget)."""
        L.check_finite_matrix(self._mm(B), "solve")
        try:
            chk.ensure_fits(self, self.shape, "solve")
        except JacobianTooLarge:
            return
        L.solve_dense(self.to_dense().detach(), B.detach())  # raises if singular or non-finite

    def solve(
        self, b: torch.Tensor, *, method: SolveMethod | None = None, rtol: float | None = None,
        atol: float = 0.0, max_iter: int | None = None, maxiter: int | None = None,
    ) -> torch.Tensor:
        """Solve ``J x = b`` iteratively (``b`` of shape ``(n,)`` or ``(n, k)``).

        ``method``: ``"gmres"`` (default), ``"cg"`` (default when tagged ``psd``) or
        ``"dense"`` (materialise within the memory budget and factorise). ``rtol`` defaults
        to 1e-10 in double, 1e-5 in single and ``10 eps`` in half precision (whose products
        run in SciPy in float32 and are rounded back). The iterative paths run in SciPy
        and are not differentiable by autograd. ``max_iter`` bounds the iterations per
        right-hand side (``maxiter`` is its deprecated spelling).
        """
        max_iter = _validate.max_iter(_validate.renamed("maxiter", maxiter, "max_iter", max_iter))
        chk.check_square(self, "solve")
        Bm, vec = chk.check_rhs(self, b, "solve")
        if method is not None:
            _validate.choice(method, "method", ("gmres", "cg", "dense"))
        x = self._solve(Bm, method=method, rtol=rtol, atol=atol, max_iter=max_iter)
        return x[:, 0] if vec else x

    def _lstsq(self, B: torch.Tensor) -> torch.Tensor:
        if self._frmv is None:
            raise self._no_rmv("lstsq")
        return L.iterative_lstsq(self, B)
