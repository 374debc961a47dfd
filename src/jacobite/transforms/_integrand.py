"""The pulled-back integrand ``u ↦ f(T(u)) |det J_T(u)|`` for SciPy: pointwise and vectorised.

``f`` is a torch function of ONE point ``x`` of the original coordinates (shape ``(n,)``)
returning a scalar; the vectorised form maps it over a batch with ``torch.func.vmap`` (falling
back to a loop for functions vmap cannot trace). ``det J`` always comes from AD.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import dense
from ..errors import InvalidOptionError, NonFiniteInputError, OutputTypeError, ShapeError
from .base import Transform

__all__ = ["Integrand", "as_point_function"]

PointFunction = Callable[[torch.Tensor], Any]


def as_point_function(f: Any, transform: Transform) -> PointFunction:
    """Turn the user's integrand into a function of one point ``x`` of shape ``(n,)``.

    ``f`` is a torch callable, a number (a constant), or a string expression in the original
    coordinates (``"exp(-(x**2 + y**2))"``), parsed safely by :func:`jacobite.symbolic.to_torch`.

    >>> import torch
    >>> from jacobite.transforms import Polar
    >>> g = as_point_function(2.5, Polar())
    >>> float(g(torch.zeros(2, dtype=torch.float64)))
    2.5
    """
    if isinstance(f, numbers.Real) and not isinstance(f, bool):
        c = float(f)
        return lambda x: torch.zeros_like(x[0]) + c  # batched under vmap
    if isinstance(f, str):
        return _from_string(f, transform)
    if not callable(f):
        raise OutputTypeError(f"the integrand must be a torch function of the point x = "
                              f"({', '.join(transform.coordinates)}) or a number, got "
                              f"{type(f).__name__}")
    return f


def _from_string(expr: str, transform: Transform) -> PointFunction:
    """Parse ``expr`` (a function of the original coordinates) with :mod:`jacobite.symbolic`."""
    try:
        from .. import symbolic
    except ImportError as exc:  # pragma: no cover - jacobite.symbolic ships with jacobite
        raise InvalidOptionError(
            f"string integrands ({expr!r}) need jacobite.symbolic, which is not available; "
            f"pass a torch function of the point instead, e.g. "
            f"lambda p: torch.exp(-(p ** 2).sum())") from exc
    fn = symbolic.to_torch(expr, variables=list(transform.coordinates))
    if fn.shape != ():
        raise ShapeError(f"the integrand {expr!r} has {len(fn.exprs)} comma-separated "
                         f"components; give ONE scalar expression in "
                         f"{', '.join(transform.coordinates)}")
    return lambda x: fn(x.unsqueeze(0))[0]  # a batch of one: 1-D points work with any version


def _describe(u: np.ndarray, x: torch.Tensor | None, T: Transform) -> str:
    at = ", ".join(f"{v}={float(c):.6g}" for v, c in zip(T.variables, u, strict=True))
    if x is None:
        return at
    xs = ", ".join(f"{v}={float(c):.6g}" for v, c in zip(T.coordinates, x.tolist(), strict=True))
    return f"{at} ({xs})"


class Integrand:
    """``u ↦ f(T(u)) |det J(u)|`` with an evaluation counter and finiteness checks.

    >>> import torch
    >>> from jacobite.transforms import Polar
    >>> g = Integrand(lambda p: torch.exp(-(p ** 2).sum()), Polar())
    >>> import math
    >>> abs(g.at_point(1.0, 0.0) - math.exp(-1.0)) < 1e-15
    True
    >>> g.at_points(np.array([[0.5, 0.0], [2.0, 1.0]])).shape, g.neval
    ((2,), 3)
    """

    def __init__(self, f: Any, transform: Transform) -> None:
        self.T = transform
        self.g = as_point_function(f, transform)
        self.neval = 0
        self._const_absdet: torch.Tensor | None = None
        self._vmap_ok = True

    def _absdet_const(self, u: torch.Tensor) -> torch.Tensor:
        if self._const_absdet is None:
            self._const_absdet = self.T.det_jacobian(u.reshape(-1)[: self.T.dim]).abs()
        return self._const_absdet

    def _scalar(self, val: Any, u: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        if isinstance(val, numbers.Real) and not isinstance(val, bool):
            val = torch.tensor(float(val), dtype=torch.float64)
        if not isinstance(val, torch.Tensor):
            raise OutputTypeError(f"the integrand returned {type(val).__name__}; it must return "
                                  f"a scalar torch tensor (or a number)")
        if val.numel() != 1:
            raise ShapeError(f"the integrand must return a scalar, got shape {tuple(val.shape)} "
                             f"at {_describe(u, x, self.T)}; reduce it, e.g. with .sum()")
        if val.is_complex():
            raise OutputTypeError("the integrand returned a complex value; integrate its .real "
                                  "and .imag parts separately")
        return val.reshape(()).to(torch.float64)

    def _not_finite(self, u: np.ndarray, x: torch.Tensor | None, what: str) -> NonFiniteInputError:
        return NonFiniteInputError(
            f"{what} is not finite at {_describe(u, x, self.T)}; make the integrand finite on the "
            f"region (e.g. cut out a singular point by shrinking the region in "
            f"{self.T.variables}) or rewrite it in a numerically stable form")

    def at_point(self, *u: float) -> float:
        """The pulled-back integrand at one point of the new coordinates (for ``quad``)."""
        self.neval += 1
        ut = torch.tensor(u, dtype=torch.float64)
        if self.T.constant_jacobian:
            x, absdet = self.T.forward(ut), self._absdet_const(ut)
        else:
            x, det = self.T.value_and_det(ut)
            absdet = det.abs()
        x = x.detach()
        if not bool(torch.isfinite(x).all() and torch.isfinite(absdet)):
            raise self._not_finite(np.asarray(u), None, f"the {self.T.name} transform (or its "
                                                        f"Jacobian determinant)")
        val = self._scalar(self.g(x), np.asarray(u), x)
        if not bool(torch.isfinite(val)):
            raise self._not_finite(np.asarray(u), x, f"the integrand value {val.item()}")
        return float(val * absdet)

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        if self._vmap_ok:
            try:
                out = torch.func.vmap(self.g)(x)
            except (RuntimeError, ValueError, TypeError, NotImplementedError):
                self._vmap_ok = False  # data-dependent Python control flow: evaluate one by one
            else:
                if isinstance(out, torch.Tensor) and out.numel() == x.shape[0]:
                    return out.reshape(-1).to(torch.float64)
                if isinstance(out, torch.Tensor):
                    raise ShapeError(f"the integrand must return a scalar per point, got shape "
                                     f"{tuple(out.shape[1:])}; reduce it, e.g. with .sum()")
        return torch.stack([self._scalar(self.g(xi), np.full(self.T.dim, np.nan), xi)
                            for xi in x])

    def at_points(self, u: np.ndarray) -> np.ndarray:
        """The pulled-back integrand at a batch ``(B, n)`` of points (for ``cubature``)."""
        u = np.asarray(u, dtype=np.float64)
        self.neval += u.shape[0]
        ut = torch.from_numpy(np.ascontiguousarray(u))
        if self.T.constant_jacobian:
            x, absdet = self.T.forward(ut), self._absdet_const(ut)
        else:
            x, J = dense.batch_jacobian(self.T.forward, ut, return_value=True, check_finite=False)
            absdet = torch.linalg.det(J.reshape(-1, self.T.dim, self.T.dim)).abs()
        x = x.detach()
        ok = torch.isfinite(x).all(-1) & torch.isfinite(absdet)
        if not bool(ok.all()):
            i = int((~ok).nonzero()[0, 0])
            raise self._not_finite(u[i], None, f"the {self.T.name} transform (or its Jacobian "
                                               f"determinant)")
        vals = self._values(x)
        bad = ~torch.isfinite(vals)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise self._not_finite(u[i], x[i], f"the integrand value {vals[i].item()}")
        return (vals * absdet).detach().numpy()  # an integrand may close over trained tensors
