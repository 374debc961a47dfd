"""Diagonal operators: :class:`DiagonalOperator` (``diag(d)``) and :class:`ScaledIdentity`."""

from __future__ import annotations

from typing import Any

import torch

from .. import _validate
from ..errors import DtypeError, ShapeError
from . import _csr
from . import _validate as chk
from . import linalg as L
from .base import JacobianOperator
from .tags import DIAGONAL, IDENTITY, PSD, SCALED_IDENTITY

__all__ = ["DiagonalOperator", "ScaledIdentity"]


def _diag_csr(d: torch.Tensor) -> torch.Tensor:
    n = d.shape[0]
    idx = torch.arange(n + 1, device=d.device)
    return _csr.csr_tensor(idx, idx[:n], d, (n, n))


class DiagonalOperator(JacobianOperator):
    """``diag(d)`` for a 1-D tensor ``d`` (e.g. the Jacobian of an elementwise function).

    Tags: ``diagonal`` (so symmetric and triangular), plus ``psd`` when ``d >= 0``.
    mv, solve and slogdet cost O(n); ``to_sparse`` builds the CSR directly.

    >>> import torch
    >>> D = DiagonalOperator(torch.tensor([2.0, -1.0, 4.0]))
    >>> D.mv(torch.ones(3))
    tensor([ 2., -1.,  4.])
    >>> D.slogdet()
    (tensor(-1.), tensor(2.0794))
    >>> D.solve(torch.tensor([2.0, 2.0, 2.0]))
    tensor([ 1.0000, -2.0000,  0.5000])
    """

    def __init__(self, d: torch.Tensor) -> None:
        d = chk.check_float_tensor(d, "d", 1)
        tags = {DIAGONAL}
        if not d.is_complex() and bool((d >= 0).all()):
            tags.add(PSD)
        super().__init__((d.shape[0], d.shape[0]), d.dtype, d.device, tags)
        self.d = d

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.d * v

    _rmv = _mv

    def _mm(self, V: torch.Tensor) -> torch.Tensor:
        return self.d[:, None] * V

    _rmm = _mm

    def _to_dense(self) -> torch.Tensor:
        return torch.diag(self.d)

    def _diagonal(self) -> torch.Tensor:
        return self.d

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        return L.slogdet_from_diagonal(self.d)

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        return L.divide_by_diagonal(self.d, B)

    def _to_sparse(self) -> torch.Tensor:
        return _diag_csr(self.d)


class ScaledIdentity(JacobianOperator):
    """``scale * I`` of size ``n`` (``scale`` a number or a 0-d tensor); O(1) storage.

    Tags: ``scaled_identity`` (so diagonal), ``psd`` when ``scale >= 0``, ``identity`` when
    ``scale == 1``.

    >>> import torch
    >>> S = ScaledIdentity(3.0, 4, dtype=torch.float64)
    >>> S.slogdet()
    (tensor(1., dtype=torch.float64), tensor(4.3944, dtype=torch.float64))
    >>> ScaledIdentity.identity(2).is_identity()
    True
    """

    def __init__(
        self, scale: Any, n: int, *, dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if isinstance(scale, torch.Tensor):
            if scale.numel() != 1:
                raise ShapeError(
                    f"scale must be a number or a 0-d tensor, got shape {tuple(scale.shape)}; "
                    f"for a vector of scales use DiagonalOperator(d)"
                )
            scale = scale.reshape(())
            dtype = scale.dtype if dtype is None else _validate.floating_dtype(dtype)
            device = device if device is not None else scale.device
            scale = scale.to(dtype=dtype, device=device)
        else:
            dtype = torch.get_default_dtype() if dtype is None else _validate.floating_dtype(dtype)
            device = None if device is None else _validate.device(device)
            scale = torch.tensor(chk.scalar_value(scale), dtype=dtype, device=device)
        if not (dtype.is_floating_point or dtype.is_complex):
            raise DtypeError(f"ScaledIdentity needs a floating dtype, got {dtype}")
        n = _validate.nonnegative_int(n, "n")
        value = chk.scalar_value(scale)
        tags = {SCALED_IDENTITY}
        if isinstance(value, (int, float)) and value >= 0:
            tags.add(PSD)
        if value == 1:
            tags.add(IDENTITY)
        super().__init__((int(n), int(n)), dtype, scale.device, tags)
        self.scale = scale

    @classmethod
    def identity(
        cls, n: int, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> ScaledIdentity:
        """The ``n x n`` identity operator.

        >>> ScaledIdentity.identity(3).mv(torch.ones(3))
        tensor([1., 1., 1.])
        """
        return cls(1.0, n, dtype=dtype, device=device)

    def _mv(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * v

    _rmv = _mm = _rmm = _mv

    def _full(self) -> torch.Tensor:
        return self.scale.expand(self.shape[0]).clone()

    def _to_dense(self) -> torch.Tensor:
        return torch.diag(self._full())

    def _diagonal(self) -> torch.Tensor:
        return self._full()

    def _slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.shape[0]
        if self.scale.is_complex() or n == 0:
            return L.slogdet_from_diagonal(self._full())
        return torch.sign(self.scale) ** n, n * self.scale.abs().log()

    def _solve(self, B: torch.Tensor) -> torch.Tensor:
        return L.divide_by_diagonal(self._full(), B)

    def _to_sparse(self) -> torch.Tensor:
        return _diag_csr(self._full())
