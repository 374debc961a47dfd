"""The aggregator contract.

An :class:`Aggregator` maps a Jacobian ``J`` of shape ``(m, n)`` (one row per objective) to an
update of shape ``(n,)``. A :class:`GramianWeightedAggregator` only needs the Gramian
``G = J Jᵀ``: it implements ``weights(G) -> w`` and its update is ``Jᵀ w`` — which lets
:func:`jacobite.multiobjective.backward` compute ``G`` without ever storing ``J``.

>>> import torch
>>> from jacobite.multiobjective.aggregators import Mean
>>> Mean()(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
tensor([0.5000, 0.5000])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import DtypeError, InvalidOptionError, NonFiniteInputError, ShapeError
from .._params import gram

__all__ = ["Aggregator", "GramianWeightedAggregator"]


def check_finite(t: Tensor, what: str) -> Tensor:
    """Raise NonFiniteInputError if ``t`` holds NaN or Inf (cheap: one sum, then a full scan
    only when the sum is not finite)."""
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise NonFiniteInputError(f"{what} contains NaN or Inf; check the losses and their "
                                  "gradients (e.g. with torch.autograd.detect_anomaly)")
    return t


def _check_matrix(t: Any, what: str, *, square: bool = False, finite: bool = True) -> Tensor:
    if not isinstance(t, Tensor):
        raise ShapeError(f"{what} must be a torch.Tensor, got {type(t).__name__}; "
                         "stack the per-objective gradients into one (m, n) tensor")
    if t.ndim != 2:
        raise ShapeError(f"{what} must be 2-D, got shape {tuple(t.shape)}; pass one row per "
                         "objective (flatten parameters with .reshape(m, -1))")
    if square and t.shape[0] != t.shape[1]:
        raise ShapeError(f"{what} must be square (m, m), got shape {tuple(t.shape)}; "
                         "pass G = J @ J.T")
    if t.shape[0] < 1:
        raise ShapeError(f"{what} has no rows (m = 0); an aggregator needs at least one objective")
    if not t.is_floating_point():
        raise DtypeError(f"{what} has dtype {t.dtype}; convert it with .double() or .float()")
    return check_finite(t, what) if finite else t


def check_vector(v: Tensor | None, name: str, m: int | None = None) -> Tensor | None:
    """Validate an optional 1-D parameter (a preference vector, weights, leaks)."""
    if v is None:
        return None
    if not isinstance(v, Tensor) or v.ndim != 1:
        raise ShapeError(f"{name} must be a 1-D tensor, got {getattr(v, 'shape', type(v))}")
    if m is not None and v.shape[0] != m:
        raise ShapeError(f"{name} has {v.shape[0]} entries but the Jacobian has {m} rows; "
                         f"give one entry per objective")
    if not bool(torch.isfinite(v).all()):
        raise NonFiniteInputError(f"{name} contains NaN or Inf")
    return v


def check_nonnegative(value: float, name: str, *, strict: bool = False) -> float:
    if value < 0 or (strict and value == 0):
        raise InvalidOptionError(f"{name} must be {'positive' if strict else 'non-negative'}, "
                                 f"got {value}")
    return value


def pref_weights(pref_vector: Tensor | None, G: Tensor, default: float | None) -> Tensor:
    """The preference vector (on G's device and dtype), or ``default`` in every entry
    (``None``: 1/m)."""
    m = G.shape[0]
    if pref_vector is None:
        fill = 1.0 / m if default is None else default
        return torch.full((m,), fill, dtype=G.dtype, device=G.device)
    check_vector(pref_vector, "pref_vector", m)
    return pref_vector.to(dtype=G.dtype, device=G.device)


class Aggregator:
    """Base class: ``aggregator(J)`` with ``J`` of shape ``(m, n)`` returns an update ``(n,)``.

    ``__call__`` validates ``J`` (a floating 2-D tensor with m ≥ 1 rows and no NaN/Inf, else a
    :class:`jacobite.errors.JacobiteError` saying how to fix it) and then calls
    :meth:`forward`, which subclasses implement.
    """

    #: whether ``forward`` checks finiteness itself (Gramian-weighted ones check G, cheaper)
    _checks_finite = False

    def __call__(self, J: Tensor) -> Tensor:
        return self.forward(_check_matrix(J, "the Jacobian J", finite=not self._checks_finite))

    def forward(self, J: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class GramianWeightedAggregator(Aggregator):
    """An aggregator whose update is ``Jᵀ w`` with ``w = weights(G)`` computed from the Gramian
    ``G = J Jᵀ`` alone. Subclasses implement :meth:`_weights`; :meth:`weights` validates ``G``
    (square, floating, finite) and returns ``w`` of shape ``(m,)`` in ``G``'s dtype and device.
    """

    def weights(self, G: Tensor) -> Tensor:
        """The weights ``w`` (shape ``(m,)``) of the update ``Jᵀ w``, from ``G = J Jᵀ``."""
        return self._weights(_check_matrix(G, "the Gramian G", square=True))

    def _weights(self, G: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    _checks_finite = True

    def forward(self, J: Tensor) -> Tensor:
        # a NaN/Inf anywhere in row i makes G_ii = ‖g_i‖² non-finite: checking G (m × m) is
        # exact and much cheaper than scanning J
        G = check_finite(gram(J), "the Jacobian J (or its Gramian J Jᵀ, which overflowed)")
        return self._weights(G) @ J
