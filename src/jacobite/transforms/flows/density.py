"""``TransformedDensity``: the law of ``Y = T(X)`` for ``X ~ base`` and an invertible ``T``.

``log p_Y(y) = log p_X(x) − log|det J_T(x)|`` with ``x = T⁻¹(y)``. ``T`` is a torch
``Transform`` (its ``inv`` and ``log_abs_det_jacobian`` are used) or any invertible batched torch
function ``(B, D) → (B, D)``: then ``x`` comes from the ``inverse`` you give or, without one,
numerically (Newton's method on the whole batch, :func:`jacobite.root` for any sample it
leaves), and the log-det from ``T.log_abs_det_jacobian`` when
``T`` has one, else exactly from per-sample Jacobians (:func:`jacobite.batch_jacobian`) and
``slogdet``.

Module state: where jacobite itself calls ``T`` many times — the numerical inverse and the exact
log-det — every module ``T`` runs is guarded as in every jacobite entry point (a module that
changes its own state, such as BatchNorm in training mode, raises
:class:`~jacobite.errors.ModuleStateError`; call ``model.eval()``). ``sample``, ``rsample``, a
given ``inverse`` and a transform's own ``log_abs_det_jacobian`` call ``T`` once, as
``torch.distributions.TransformedDistribution`` does, and are left unguarded.

>>> import torch
>>> from torch.distributions import MultivariateNormal
>>> base = MultivariateNormal(torch.zeros(2), torch.eye(2))
>>> q = TransformedDensity(base, lambda x: 2 * x + 1, inverse=lambda y: (y - 1) / 2)
>>> y = torch.tensor([[1.0, 1.0]])
>>> expected = base.log_prob(torch.zeros(1, 2)) - 2 * torch.log(torch.tensor(2.0))
>>> torch.allclose(q.log_prob(y), expected)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.distributions import Distribution, Transform, constraints

from ... import _validate
from ..._modules import keep_state
from ...dense import batch_jacobian
from ...errors import ArgumentTypeError, ShapeError
from ._invert import invert

__all__ = ["TransformedDensity"]

Map = Callable[[torch.Tensor], torch.Tensor]


class TransformedDensity(Distribution):
    """The law of ``Y = T(X)``, ``X ~ base``, with ``log_prob``, ``sample`` and ``rsample``.

    Args:
        base: a ``torch.distributions.Distribution`` over vectors (``event_shape == (D,)``).
        transform: a ``torch.distributions.Transform`` (event dimension 0 or 1), or an
            invertible torch function mapping a batch ``(B, D)`` to ``(B, D)`` sample by sample.
        inverse: ``T⁻¹`` as a batched torch function ``(B, D) → (B, D)``. Without it a
            torch ``Transform`` uses its ``inv``, and a function is inverted numerically,
            started at ``y``: Newton's method on all samples at once (per-sample Jacobians,
            backtracking), then :func:`jacobite.root` for any sample still unsolved; a
            sample neither solves raises :class:`~jacobite.errors.ConvergenceError`. The
            solution is differentiable in ``y`` and in what ``T`` closes over (the implicit
            function rule, first order).

    ``rsample`` is differentiable through ``T`` (and through ``base.rsample``). The log-det is
    ``T.log_abs_det_jacobian(x, y)`` when ``T`` provides it (a structured or closed form),
    otherwise ``slogdet`` of the exact per-sample Jacobians.

    >>> import torch
    >>> from torch.distributions import MultivariateNormal
    >>> base = MultivariateNormal(torch.zeros(2, dtype=torch.float64),
    ...                           torch.eye(2, dtype=torch.float64))
    >>> q = TransformedDensity(base, lambda x: x + 0.1 * torch.sin(x))  # inverse by Newton
    >>> y = q.sample((3,))
    >>> q.log_prob(y).shape
    torch.Size([3])
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, base: Distribution, transform: Transform | Map,
                 inverse: Map | None = None, *, validate_args: bool | None = None) -> None:
        if not isinstance(base, Distribution):
            raise ArgumentTypeError(f"base must be a torch.distributions.Distribution (e.g. "
                                    f"MultivariateNormal), got {type(base).__name__}")
        if len(base.event_shape) != 1:
            raise ShapeError(f"base must be a distribution over vectors (event_shape (D,)), "
                             f"got event_shape {tuple(base.event_shape)}; wrap a scalar one "
                             f"in torch.distributions.Independent(base, 1)")
        if isinstance(transform, Transform):
            if transform.event_dim > 1:
                raise ShapeError(f"transform must act on vectors (event_dim 0 or 1), got "
                                 f"event_dim {transform.event_dim}")
        else:
            _validate.callable_(transform, "transform")
        if inverse is not None:
            _validate.callable_(inverse, "inverse")
        self.base, self.transform, self.inverse = base, transform, inverse
        super().__init__(base.batch_shape, base.event_shape, validate_args=validate_args)

    @property
    def dim(self) -> int:
        """The dimension ``D``."""
        return int(self.base.event_shape[0])

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return _batched(self.transform, x, self.dim)

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        """Reparametrised samples ``T(x)``, ``x ~ base.rsample``: differentiable through ``T``."""
        return self._forward(self.base.rsample(torch.Size(sample_shape)))

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> torch.Tensor:
        """Samples ``T(x)``, ``x ~ base``, without gradients."""
        with torch.no_grad():
            return self._forward(self.base.sample(torch.Size(sample_shape)))

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """``x = T⁻¹(y)`` for a batch ``(..., D)``: the given inverse, the transform's ``inv``,
        or Newton's method on the batch with :func:`jacobite.root` as backup."""
        y = self._check(y)
        if self.inverse is not None:
            return _batched(self.inverse, y, self.dim)
        if isinstance(self.transform, Transform):
            return self.transform.inv(y)
        with keep_state():  # Newton calls T many times: T must not change itself
            return invert(lambda v: _batched(self.transform, v, self.dim),
                          y.reshape(-1, self.dim)).reshape(y.shape)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """``log|det J_T(x)|`` per sample: the transform's own, or ``slogdet`` of the exact
        per-sample Jacobians."""
        T = self.transform
        ladj = getattr(T, "log_abs_det_jacobian", None)
        if ladj is not None:
            y = self._forward(x) if y is None else y
            out = ladj(x, y)
            if isinstance(T, Transform) and T.event_dim == 0:
                out = out.sum(-1)
            return out.expand(x.shape[:-1]) if out.ndim < x.ndim - 1 else out
        flat = x.reshape(-1, self.dim)
        with keep_state():  # one call of T per Jacobian row: T must not change itself
            J = batch_jacobian(lambda xi: _batched(T, xi, self.dim), flat)
        return torch.linalg.slogdet(J)[1].reshape(x.shape[:-1])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """``log p_X(T⁻¹(y)) − log|det J_T(T⁻¹(y))|`` for ``value`` of shape ``(..., D)``."""
        y = self._check(value)
        x = self.invert(y)
        return self.base.log_prob(x) - self.log_abs_det_jacobian(x, y)

    def _check(self, y: Any) -> torch.Tensor:
        if not isinstance(y, torch.Tensor):
            raise ArgumentTypeError(f"value must be a torch.Tensor of shape (..., {self.dim}), "
                                    f"got {type(y).__name__}")
        if y.ndim == 0 or y.shape[-1] != self.dim:
            raise ShapeError(f"value must have shape (..., {self.dim}), got {tuple(y.shape)}")
        return y

    def __repr__(self) -> str:
        return f"TransformedDensity(base={self.base!r}, transform={self.transform!r})"


def _batched(f: Transform | Map, x: torch.Tensor, dim: int) -> torch.Tensor:
    """``f`` on ``x`` of shape ``(..., D)`` through a ``(B, D)`` batch; the shape checked."""
    if isinstance(f, Transform):
        return f(x)
    flat = x.reshape(-1, dim)
    out = f(flat)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(flat.shape):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(f"the transform must map a batch ({flat.shape[0]}, {dim}) to the same "
                         f"shape, got {shape}; write it for batches (index with x[..., i])")
    return out.reshape(x.shape)
