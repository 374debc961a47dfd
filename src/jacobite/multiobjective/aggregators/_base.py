"""The aggregator contract.

An :class:`Aggregator` maps a Jacobian ``J`` of shape ``(m, n)`` (one row per objective) to an
update of shape ``(n,)``. A :class:`GramianWeightedAggregator` only needs the Gramian
``G = J Jᵀ``: it implements ``weights(G) -> w`` and its update is ``Jᵀ w`` — which lets
:func:`jacobite.multiobjective.backward` compute ``G`` without ever storing ``J``.

>>> import torch
>>> from jacobite.multiobjective.aggregators import Mean
>>> Mean()(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
tensor([0.5000, 0.5000])

Options are validated attributes (:class:`Option`): the check that guards the constructor also
guards every later assignment.

>>> from jacobite.multiobjective.aggregators import TrimmedMean
>>> agg = TrimmedMean(2)
>>> try:
...     agg.trim_number = -1
... except ValueError as e:
...     print(type(e).__name__)
InvalidOptionError

Differentiation: an aggregator whose ``differentiable`` is True (Mean, Sum, Constant, Random,
Krum, PCGrad, IMTLG, AlignedMTL, ConFIG, GradDrop, TrimmedMean) keeps the whole autograd graph
of its output, weights included, so gradients through it are exact wherever the output is
differentiable. The solver-based ones (UPGrad, DualProj, MGDA, CAGrad, NashMTL) compute their
weights outside autograd: their output still flows forward, but a backward pass through it
raises :class:`~jacobite.errors.UnsupportedOperationError` instead of returning a partial
gradient. No aggregator runs under ``torch.func.vmap``: loop over the Jacobians instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import torch
from torch import Tensor

from ... import _validate
from ...errors import (
    ArgumentTypeError,
    DtypeError,
    NonFiniteInputError,
    ShapeError,
    UnsupportedOperationError,
)
from .._params import gram

__all__ = ["Aggregator", "GramianWeightedAggregator", "Option"]

T = TypeVar("T")


class Option(Generic[T]):
    """A validated aggregator attribute: ``check(value, name)`` runs on every assignment, the
    constructor's included, and its result is stored.

    >>> class Demo:
    ...     k = Option(lambda v, name: int(v))
    >>> d = Demo(); d.k = "3"; d.k
    3
    """

    def __init__(self, check: Callable[[Any, str], T]) -> None:
        self.check = check
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__["_opt_" + self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_opt_" + self.name] = self.check(value, self.name)


def _transforms(t: Tensor) -> set[str]:
    """The torch.func transforms wrapping ``t``: ``"vmap"`` and/or ``"grad"`` (empty outside)."""
    ft = getattr(torch._C, "_functorch", None)
    wrapped = getattr(ft, "is_functorch_wrapped_tensor", None)
    batched = getattr(ft, "is_batchedtensor", None)
    unwrap = getattr(ft, "get_unwrapped", None)
    kinds: set[str] = set()
    if wrapped is None or batched is None or unwrap is None:  # pragma: no cover - old torch
        return kinds
    while wrapped(t):
        kinds.add("vmap" if batched(t) else "grad")
        t = unwrap(t)
    return kinds


class _NoBackward(torch.autograd.Function):
    """Identity on the value; a backward pass through it raises (no partial gradients)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(value: Tensor, source: Tensor, name: str) -> Tensor:
        return value.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.name = inputs[2]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise _not_differentiable(ctx.name)


def _not_differentiable(name: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"{name} is not differentiable: its weights come from a solver outside autograd, so a "
        "gradient through its output would be partial. Aggregate a detached Jacobian "
        f"({name}(J.detach())) and keep the update out of the graph, or use a differentiable "
        "aggregator (Mean, IMTLG, AlignedMTL, PCGrad, ConFIG...)")


def check_finite(t: Tensor, what: str) -> Tensor:
    """Raise NonFiniteInputError if ``t`` holds NaN or Inf (cheap: one sum, then a full scan
    only when the sum is not finite)."""
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise NonFiniteInputError(f"{what} contains NaN or Inf; check the losses and their "
                                  "gradients (e.g. with torch.autograd.detect_anomaly)")
    return t


def _in_float32(fn: Callable[[Tensor], Tensor], t: Tensor) -> Tensor:
    """``fn(t)``; a half-precision ``t`` is solved in float32 (eigh, pinv and the QP have no
    half kernels) and the answer returned in ``t``'s dtype."""
    if t.dtype in (torch.float16, torch.bfloat16):
        return fn(t.float()).to(t.dtype)
    return fn(t)


def _check_matrix(t: Any, what: str, *, square: bool = False, finite: bool = True) -> Tensor:
    if not isinstance(t, Tensor):
        raise ArgumentTypeError(f"{what} must be a torch.Tensor, got {type(t).__name__}; "
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
    return check_finite(t, what) if finite and not t.is_meta else t


@overload
def check_vector(v: Tensor, name: str, m: int | None = None) -> Tensor: ...
@overload
def check_vector(v: None, name: str, m: int | None = None) -> None: ...
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
        raise NonFiniteInputError(f"{name} contains NaN or Inf; pass finite numbers (one per "
                                  "objective)")
    return v


def nonnegative(value: Any, name: str) -> float:
    """:class:`Option` check: a finite real ≥ 0."""
    return _validate.tolerance(value, name)


def positive(value: Any, name: str) -> float:
    """:class:`Option` check: a finite real > 0."""
    return _validate.positive_float(value, name)


def vector(value: Any, name: str) -> Tensor | None:
    """:class:`Option` check: None or a finite 1-D tensor."""
    return check_vector(value, name)


def one_of(*options: str) -> Callable[[Any, str], str]:
    """:class:`Option` check: one of ``options``."""
    return lambda value, name: _validate.choice(value, name, options)


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
    :meth:`forward`, which subclasses implement. A ``meta`` J (shapes without values) gives a
    ``meta`` update of shape ``(n,)``, as the dense Jacobian functions do for meta inputs.
    """

    #: whether ``forward`` checks finiteness itself (Gramian-weighted ones check G, cheaper)
    _checks_finite = False
    #: whether the output's autograd graph is complete (False: backward through it raises)
    differentiable = True

    def __call__(self, J: Tensor) -> Tensor:
        J = self._guard(J, "J")
        checked = _check_matrix(J.detach() if self._cut(J) else J, "the Jacobian J",
                                finite=not self._checks_finite)
        if checked.shape[1] == 0 or checked.is_meta:
            # no parameters, or no values (meta): the update's shape is all there is to give
            return self._finish(checked.sum(0), J)
        try:
            out = _in_float32(self.forward, checked)
        except RuntimeError as exc:  # a random draw inside a vmap-based transform (jacfwd)
            if "randomness" not in str(exc) or isinstance(exc, UnsupportedOperationError):
                raise
            raise UnsupportedOperationError(
                f"{type(self).__name__} draws random numbers, which a vmap-based transform "
                "(vmap, jacfwd) cannot batch; differentiate it with torch.autograd, "
                "torch.func.grad or jacrev, or aggregate in a Python loop") from exc
        return self._finish(out, J)

    def _guard(self, t: Any, what: str) -> Any:
        """Refuse torch.func transforms this aggregator cannot run under."""
        if not isinstance(t, Tensor):
            return t
        kinds = _transforms(t)
        name = type(self).__name__
        if "vmap" in kinds:
            raise UnsupportedOperationError(
                f"{name} does not run under torch.func.vmap (its weights come from data-"
                "dependent solves); loop over the batch instead: "
                f"torch.stack([agg({what}_i) for {what}_i in {what}s])")
        if "grad" in kinds and not self.differentiable:
            raise _not_differentiable(name)
        return t

    def _cut(self, t: Any) -> bool:
        return not self.differentiable and isinstance(t, Tensor) and t.requires_grad

    def _finish(self, out: Tensor, source: Tensor) -> Tensor:
        if self._cut(source):
            return _NoBackward.apply(out, source, type(self).__name__)
        return out

    def forward(self, J: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        return {}

    #: the vector option ``str()`` shows after the name (TorchJD's short names)
    _str_option: str | None = None

    def __str__(self) -> str:
        name = type(self).__name__
        v = getattr(self, self._str_option) if self._str_option else None
        if not isinstance(v, Tensor):
            return name
        values = repr(v.detach().cpu())[len("tensor("):-1].split(", dtype")[0]
        return f"{name}({values})"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


def times_pow2(t: Tensor, k: int) -> Tensor:
    """``t · 2ᵏ`` exactly (two factors, each representable, for ``|k|`` up to about 2046)."""
    return t * math.ldexp(1.0, k // 2) * math.ldexp(1.0, k - k // 2)


def _rescaled_gram(J: Tensor, G: Tensor) -> tuple[Tensor, int]:
    """``(G, 0)``, or, when its trace overflows (``|J| ≳ 1e154``) or underflows (``≲ 1e-154``)
    in float64, ``(gram(2ᵏ J), k)`` for the exact power of two that brings the largest entry of
    ``J`` near 1 (a NaN or Inf in J never reaches the rescaling: the caller refuses it)."""
    info = torch.finfo(torch.float64)
    trace = float(G.diagonal().sum())
    if info.tiny / info.eps <= trace < math.inf:
        return G, 0
    peak = float(J.detach().abs().max())
    if not 0.0 < peak < math.inf:
        return G, 0  # a zero J keeps its zero Gramian; a NaN or Inf is refused by the caller
    k = -math.frexp(peak)[1]  # up to 1074 for subnormals, past 2**1023
    return gram(times_pow2(J.to(torch.float64), k)), k


class GramianWeightedAggregator(Aggregator):
    """An aggregator whose update is ``Jᵀ w`` with ``w = weights(G)`` computed from the Gramian
    ``G = J Jᵀ`` alone. Subclasses implement :meth:`_weights`; :meth:`weights` validates ``G``
    (square, floating, finite) and returns ``w`` of shape ``(m,)`` in ``G``'s dtype and device.
    """

    def weights(self, G: Tensor) -> Tensor:
        """The weights ``w`` (shape ``(m,)``) of the update ``Jᵀ w``, from ``G = J Jᵀ``; a
        ``meta`` G gives ``meta`` weights of that shape (no values to solve for)."""
        G = self._guard(G, "G")
        checked = _check_matrix(G.detach() if self._cut(G) else G, "the Gramian G", square=True)
        if checked.is_meta:
            return self._finish(checked.sum(0), G)
        return self._finish(_in_float32(self._weights, checked), G)

    def _weights(self, G: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _weights_at(self, G: Tensor, k: int) -> Tensor:
        """The weights of ``J`` given ``G = (2ᵏJ)(2ᵏJ)ᵀ`` (``k ≠ 0`` where ``J Jᵀ`` itself over-
        or underflows float64). This default holds for scale-free weights (``w(cJ) = w(J)``,
        c > 0); aggregators whose weights scale (NashMTL) or meet an absolute threshold
        (CAGrad) override it with their own scaling law."""
        return self._weights(G)

    _checks_finite = True

    def forward(self, J: Tensor) -> Tensor:
        G = gram(J)
        if J.dtype != torch.float64:
            # an overflowing (|J| ≳ 1e19 in float32) or underflowing (≲ 1e-19) Gramian is
            # formed in float64 instead; the weights go back to J's dtype
            info = torch.finfo(G.dtype)
            trace = float(G.diagonal().sum())
            if not trace >= info.tiny / info.eps or trace == float("inf"):
                G = gram(J.to(torch.float64))
        k = 0
        if G.dtype == torch.float64 and G.numel():
            G, k = _rescaled_gram(J, G)
        # a NaN/Inf anywhere in row i makes G_ii = ‖g_i‖² non-finite: checking G (m × m) is
        # exact and much cheaper than scanning J
        G = check_finite(G, "the Jacobian J (or its Gramian J Jᵀ, which overflowed)")
        return self._weights_at(G, k).to(J.dtype) @ J
