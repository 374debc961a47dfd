"""Robust loss functions ρ(z) of the squared residual ``z = r²`` (SciPy's formulation).

The cost is ``½ Σ f_scale² ρ(r² / f_scale²)``. Each loss returns the array ``(ρ, ρ', ρ'')``
already multiplied out for ``f_scale`` exactly as :func:`scipy.optimize.least_squares` does,
so the cost, the gradient ``Jᵀ(ρ' r)`` and the Triggs et al. (2000) correction of the residuals
and Jacobian (:func:`scale_for_robust_loss`) agree with SciPy to rounding.

=========== ==========================================
``linear``  ``ρ(z) = z`` (ordinary least squares)
``soft_l1`` ``ρ(z) = 2 (√(1 + z) − 1)``
``huber``   ``ρ(z) = z`` if ``z <= 1`` else ``2√z − 1``
``cauchy``  ``ρ(z) = ln(1 + z)``
``arctan``  ``ρ(z) = arctan(z)``
=========== ==========================================

>>> import numpy as np
>>> rho = robust_loss("huber", 1.0)(np.array([0.5, 3.0]))
>>> rho[0].tolist()
[0.25, 5.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from ... import _validate
from ...errors import InvalidOptionError, ShapeError
from .engine.robust import _BASE, RobustLoss

__all__ = ["LOSSES", "robust_loss", "scale_for_robust_loss"]

LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")

Loss = Callable[[np.ndarray], np.ndarray]
#: A loss by name (SciPy's names): ``"linear"`` is plain least squares, the others are robust.
LossName = Literal["linear", "soft_l1", "huber", "cauchy", "arctan"]


def _on_numpy(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The engine's loss ``name`` (:mod:`.engine.robust`) on a NumPy array of ``z``."""
    base = _BASE[name]
    return lambda z: base(torch.from_numpy(np.asarray(z, dtype=np.float64))).numpy()


def robust_loss(loss: LossName | Callable[[np.ndarray], Any],
                f_scale: float = 1.0) -> Loss | None:
    """The loss as a function of the residual vector ``f`` returning ``(ρ, ρ', ρ'')`` (shape
    ``(3, m)``) of ``f²`` with ``f_scale`` applied; ``None`` for ``"linear"`` (the fast path).

    ``loss`` may also be a callable ``ρ(z)`` of the squared residuals ``z`` returning the
    ``(3, m)`` array of ``ρ(z), ρ'(z), ρ''(z)`` (SciPy's convention for a custom loss).

    Raises:
        InvalidOptionError: an unknown loss name or ``f_scale <= 0``.

    >>> import numpy as np
    >>> robust_loss("linear") is None
    True
    >>> robust_loss("cauchy", 2.0)(np.array([2.0]))[0].round(6).tolist()
    [2.772589]
    """
    if callable(loss):
        base: Callable[[np.ndarray], Any] = _custom(loss)
    elif loss not in LOSSES:
        raise InvalidOptionError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
    f_scale = _validate.positive_float(f_scale, "f_scale")
    if loss == "linear":
        return None
    if not callable(loss):
        base = _on_numpy(loss)
    c2 = float(f_scale) * float(f_scale)
    if not 0 < c2 < np.inf:
        raise InvalidOptionError(f"f_scale = {f_scale!r} is so large or small that its square "
                                 f"leaves float64's range; divide the residuals and f_scale by a "
                                 f"common factor (their typical size)")

    def rho(f: np.ndarray) -> np.ndarray:
        out = base((f * f) / c2)
        out[0] *= c2
        out[2] /= c2
        return out

    return rho


def _custom(loss: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """A user's ``ρ(z)`` checked on every call: a finite-size ``(3, m)`` float array."""

    def base(z: np.ndarray) -> np.ndarray:
        out = np.array(loss(z), dtype=np.float64)  # a copy: f_scale is applied in place
        if out.shape != (3, z.size):
            raise ShapeError(f"the loss function returned shape {out.shape}; it must return "
                             f"the (3, m) = (3, {z.size}) array of rho(z), rho'(z), rho''(z)")
        return out

    return base


def cost_of(f: np.ndarray, rho: Loss | None) -> float:
    """``½ Σ ρ(f²)`` (``½‖f‖²`` without a loss).

    >>> import numpy as np
    >>> cost_of(np.array([3.0, 4.0]), None)
    12.5
    """
    if rho is None:
        return 0.5 * float(f @ f)
    return 0.5 * float(np.sum(rho(f)[0]))


def scale_for_robust_loss(J: Any, f: np.ndarray, rho: np.ndarray) -> tuple[Any, np.ndarray]:
    """Triggs et al.'s correction: ``J̃ = diag(s) J`` and ``f̃ = ρ' f / s`` with
    ``s = √(ρ' + 2 ρ'' f²)`` (floored at machine epsilon), so that ``J̃ᵀ f̃`` is the true
    gradient and ``J̃ᵀ J̃`` a Gauss–Newton model of the robust cost. ``J`` may be dense or a
    SciPy sparse matrix (typed ``Any``: SciPy ships no type information); nothing is modified in
    place.

    >>> import numpy as np
    >>> f = np.array([1.0, 10.0]); J = np.eye(2)
    >>> Jt, ft = scale_for_robust_loss(J, f, robust_loss("soft_l1")(f))
    >>> np.allclose(Jt.T @ ft, robust_loss("soft_l1")(f)[1] * f)
    True
    """
    if isinstance(J, np.ndarray):
        Jt, ft = RobustLoss.scaled(torch.from_numpy(J)[None], torch.from_numpy(f)[None],
                                   torch.from_numpy(rho)[:, None])
        return Jt[0].numpy(), ft[0].numpy()
    Js, ft = RobustLoss.scaled(J, torch.from_numpy(f)[None], torch.from_numpy(rho)[:, None])
    return Js, ft[0].numpy()
