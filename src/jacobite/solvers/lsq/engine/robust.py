"""Robust losses on batched residuals (torch, batch-first; SciPy's formulation).

A loss is a function ``ρ`` of the squared residual ``z = r²``; the cost of problem ``b`` is
``½ Σᵢ C_b² ρ(f_bi² / C_b²)`` with ``C_b`` its ``f_scale``. :class:`RobustLoss` evaluates
``(ρ, ρ', ρ'')`` for a ``(B, m)`` batch of residuals with ``f_scale`` already multiplied out (as
:func:`scipy.optimize.least_squares` does), the cost per problem, and Triggs et al.'s (2000)
correction of the residuals and Jacobian, ``J̃ = diag(s) J``, ``f̃ = ρ' f / s`` with
``s = √(ρ' + 2 ρ'' f²)``, so that ``J̃ᵀ f̃`` is the gradient of the robust cost and ``J̃ᵀ J̃`` its
Gauss–Newton model. ``"linear"`` is no loss at all (:func:`robust` returns ``None``: the fast
path).

=========== ==========================================
``soft_l1`` ``ρ(z) = 2 (√(1 + z) − 1)``
``huber``   ``ρ(z) = z`` if ``z <= 1`` else ``2√z − 1``
``cauchy``  ``ρ(z) = ln(1 + z)``
``arctan``  ``ρ(z) = arctan(z)``
=========== ==========================================

A callable follows SciPy's convention: ``loss(z)`` with ``z`` a float64 NumPy array returns an
array of shape ``(3,) + z.shape`` holding ``ρ(z)``, ``ρ'(z)``, ``ρ''(z)`` entry by entry (it is
called once per evaluation on all ``B·m`` squared residuals of the batch, flattened).

>>> import torch
>>> rho = robust("huber", torch.tensor([1.0], dtype=torch.float64))
>>> rho.cost(torch.tensor([[0.5, 3.0]], dtype=torch.float64)).tolist()
[2.625]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ....errors import InvalidOptionError, OutputTypeError, ShapeError

__all__ = ["ROBUST_LOSSES", "RobustLoss", "model", "robust"]

ROBUST_LOSSES = ("soft_l1", "huber", "cauchy", "arctan")

Base = Callable[[torch.Tensor], torch.Tensor]


def _soft_l1(z: torch.Tensor) -> torch.Tensor:
    t = 1.0 + z
    s = t.sqrt()
    return torch.stack([2.0 * (s - 1.0), 1.0 / s, -0.5 / (t * s)])


def _huber(z: torch.Tensor) -> torch.Tensor:
    big = z > 1.0
    zb = torch.where(big, z, torch.ones_like(z))
    sz = zb.sqrt()
    return torch.stack([torch.where(big, 2.0 * sz - 1.0, z),
                        torch.where(big, 1.0 / sz, torch.ones_like(z)),
                        torch.where(big, -0.5 / (zb * sz), torch.zeros_like(z))])


def _cauchy(z: torch.Tensor) -> torch.Tensor:
    t = 1.0 + z
    return torch.stack([torch.log1p(z), 1.0 / t, -1.0 / (t * t)])


def _arctan(z: torch.Tensor) -> torch.Tensor:
    t = 1.0 + z * z
    return torch.stack([torch.arctan(z), 1.0 / t, -2.0 * z / (t * t)])


_BASE: dict[str, Base] = {"soft_l1": _soft_l1, "huber": _huber, "cauchy": _cauchy,
                          "arctan": _arctan}


def _user(loss: Callable[..., Any]) -> Base:
    """A SciPy-convention NumPy callable as a function of a ``(B, m)`` tensor."""
    def base(z: torch.Tensor) -> torch.Tensor:
        flat = z.detach().to("cpu", torch.float64).reshape(-1).numpy()
        try:
            out = np.asarray(loss(flat), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise OutputTypeError(f"loss(z) must return a float array of shape (3, {flat.size}) "
                                  f"(rho, rho', rho'' of z); got {type(exc).__name__}: "
                                  f"{exc}") from exc
        if out.shape != (3, flat.size):
            raise ShapeError(f"loss(z) must return shape (3, {flat.size}): rows rho(z), "
                             f"rho'(z), rho''(z) entry by entry; got {out.shape}")
        return torch.as_tensor(out, dtype=z.dtype, device=z.device).reshape(3, *z.shape)

    return base


class RobustLoss:
    """A robust loss with a per-problem ``f_scale`` (a ``(B,)`` tensor, positive).

    >>> import torch
    >>> L = robust("cauchy", torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> L(torch.full((2, 1), 2.0, dtype=torch.float64))[0].squeeze(-1).tolist()
    [1.6094379124341003, 2.772588722239781]
    """

    def __init__(self, name: str, base: Base, f_scale: torch.Tensor) -> None:
        self.name = name
        self._base = base
        self.f_scale = f_scale.reshape(-1)
        self.c2 = (self.f_scale * self.f_scale)[:, None]

    def with_scale(self, f_scale: torch.Tensor) -> RobustLoss:
        """The same loss with another ``f_scale`` (e.g. of residuals rescaled by a power of 2)."""
        return RobustLoss(self.name, self._base, f_scale)

    def take(self, keep: torch.Tensor) -> RobustLoss:
        """The loss of the problems selected by ``keep`` (a boolean or index tensor); a single
        ``f_scale`` is shared by every problem and kept as it is."""
        fs = self.f_scale if self.f_scale.numel() == 1 else self.f_scale[keep]
        return RobustLoss(self.name, self._base, fs)

    def __call__(self, f: torch.Tensor) -> torch.Tensor:
        """``(3, B, m)``: ``ρ, ρ', ρ''`` of ``f²`` with ``f_scale`` applied."""
        rho = self._base(f * f / self.c2)
        return torch.stack([rho[0] * self.c2, rho[1], rho[2] / self.c2])

    def cost(self, f: torch.Tensor) -> torch.Tensor:
        """``(B,)``: ``½ Σ ρ(f²)`` per problem."""
        z = f * f / self.c2
        return 0.5 * (self._base(z)[0] * self.c2).sum(dim=-1)

    @staticmethod
    def scaled(J: Any, f: torch.Tensor, rho: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Triggs et al.'s ``(J̃, f̃)`` for ``J`` of shape ``(B, m, n)`` (or, for one problem, a
        SciPy sparse matrix) and ``f`` of ``(B, m)`` (the weight ``s`` floored at machine
        epsilon); nothing is modified in place."""
        eps = torch.finfo(f.dtype).eps
        s = rho[1] + 2.0 * rho[2] * f * f
        s = torch.clamp(s, min=eps).sqrt()
        if isinstance(J, torch.Tensor):
            return s.unsqueeze(-1) * J, rho[1] * f / s
        import scipy.sparse as sp

        return sp.diags(s[0].detach().cpu().numpy()) @ J, rho[1] * f / s


def robust(loss: str | Callable[..., Any], f_scale: torch.Tensor) -> RobustLoss | None:
    """The loss named ``loss`` (or a SciPy-convention callable) with per-problem ``f_scale``;
    ``None`` for ``"linear"``.

    Raises:
        InvalidOptionError: an unknown name, or an ``f_scale`` that is not positive and finite
            or whose square leaves the dtype's range.

    >>> import torch
    >>> robust("linear", torch.ones(1)) is None
    True
    """
    if isinstance(loss, str):
        if loss == "linear":
            return None
        if loss not in _BASE:
            raise InvalidOptionError(f"loss must be 'linear', one of {', '.join(ROBUST_LOSSES)} "
                                     f"or a callable rho(z) -> (3, m); got {loss!r}")
        base, name = _BASE[loss], loss
    elif callable(loss):
        base, name = _user(loss), getattr(loss, "__name__", "callable")
    else:
        raise InvalidOptionError(f"loss must be a name or a callable rho(z) -> (3, m); got "
                                 f"{type(loss).__name__}")
    c2 = f_scale * f_scale
    if not bool(((f_scale > 0) & (c2 > 0) & c2.isfinite()).all()):
        raise InvalidOptionError("f_scale must be positive and finite, and its square within "
                                 "float64's range; divide the residuals and f_scale by a common "
                                 "factor (their typical size)")
    return RobustLoss(name, base, f_scale)


def model(J: Any, f: torch.Tensor, loss: Callable[[torch.Tensor], torch.Tensor] | None
          ) -> tuple[Any, torch.Tensor]:
    """Triggs' ``(J̃, f̃)`` of any batched loss ``loss(f) -> (3, B, m)`` (``(J, f)`` without
    one): the Gauss–Newton model of the robust cost.

    >>> import torch
    >>> J = torch.eye(2, dtype=torch.float64)[None]
    >>> f = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    >>> Jt, ft = model(J, f, robust("huber", torch.ones(1, dtype=torch.float64)))
    >>> (Jt.mT @ ft[..., None])[..., 0].tolist()  # ρ'(f²) f: the robust gradient
    [[1.0, 1.0]]
    """
    if loss is None:
        return J, f
    return RobustLoss.scaled(J, f, loss(f))
