"""The second-derivative test: classify a critical point by the inertia of its Hessian.

With ``p`` positive, ``q`` negative and ``z`` zero eigenvalues of the (symmetric) Hessian:
both ``p`` and ``q`` nonzero is a **saddle** (even if the Hessian is singular); otherwise a zero
eigenvalue makes the test **inconclusive**; otherwise all positive is a (strict local)
**minimum** and all negative a **maximum**. In two variables this is the familiar rule: det H < 0
saddle, det H > 0 and H₁₁ > 0 minimum, H₁₁ < 0 maximum, det H = 0 inconclusive.

Exact SymPy Hessians are classified exactly: the characteristic polynomial of a symmetric matrix
has only real roots, so Descartes' rule of signs counts its positive and negative roots exactly.
Float Hessians use their eigenvalues with a relative tolerance.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import (
    ArgumentTypeError,
    DtypeError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    require,
)

__all__ = ["KINDS", "classify_hessian", "inertia"]

#: The possible classifications.
KINDS = ("minimum", "maximum", "saddle", "inconclusive")


def kind_of(pos: int, neg: int, zero: int) -> str:
    """The classification for an inertia ``(positive, negative, zero)`` count."""
    if not (pos or neg or zero):
        raise ShapeError("the Hessian is empty (a function of no variables), so its point is "
                         "neither a minimum nor a maximum; pass the (n, n) Hessian with n >= 1")
    if pos and neg:
        return "saddle"
    if zero:
        return "inconclusive"
    return "minimum" if pos else "maximum"


def _exact_sign(sp: Any, c: Any) -> int:
    c = sp.simplify(c)
    if c.is_zero:
        return 0
    if c.is_positive:
        return 1
    if c.is_negative:
        return -1
    v = c.evalf(60)
    if not v.is_real and abs(sp.im(v)) > 1e-40:  # pragma: no cover - symmetric real input
        raise ShapeError("the Hessian has a non-real characteristic polynomial; is it symmetric?")
    v = sp.re(v)
    return 0 if abs(v) < sp.Float("1e-40", 60) else (1 if v > 0 else -1)


def _exact_inertia(sp: Any, H: Any) -> tuple[int, int, int]:
    if H.free_symbols:
        names = ", ".join(sorted(s.name for s in H.free_symbols))
        raise ShapeError(f"the Hessian still depends on {names}; substitute the point first")
    if H != H.T:
        raise ShapeError("the Hessian is not symmetric; a Hessian of a smooth function is")
    n = H.rows
    lam = sp.Dummy("lam")
    signs = [_exact_sign(sp, c) for c in H.charpoly(lam).all_coeffs()]
    zero = 0
    while signs and signs[-1] == 0:
        signs.pop()
        zero += 1
    nz = [s for s in signs if s]
    pos = sum(1 for a, b in itertools.pairwise(nz) if a != b)
    return pos, n - zero - pos, zero


def inertia(H: Any, *, tol: float = 1e-8) -> tuple[int, int, int]:
    """``(positive, negative, zero)`` eigenvalue counts of a symmetric matrix.

    Exact for a SymPy matrix of numbers; for a tensor / array an eigenvalue counts as zero when
    ``|λ| <= tol * max(1, max |λ|)``.

    >>> import torch
    >>> inertia(torch.tensor([[2.0, 0.0], [0.0, -3.0]]))
    (1, 1, 0)
    """
    if type(H).__module__.startswith("sympy"):
        sp = require("sympy", "symbolic")
        M = sp.Matrix(H)
        if not M.is_square:
            raise NotSquareError(f"a Hessian is square; got {M.rows}x{M.cols}")
        return _exact_inertia(sp, M)
    tol = _validate.tolerance(tol, "tol")
    if isinstance(H, torch.Tensor):
        if not (H.is_floating_point() or H.is_complex()):
            raise DtypeError(f"H has dtype {H.dtype}; a Hessian is floating-point: pass "
                             f"H.to(torch.float64)")
        # a complex Hessian is taken as Hermitian (its imaginary parts must not be dropped)
        A = H.detach().to(torch.complex128 if H.is_complex() else torch.float64).cpu()
    else:
        try:
            A = torch.as_tensor(np.asarray(H, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ArgumentTypeError(f"H must be a square matrix (a tensor, an array or nested "
                                    f"lists of numbers, or a SymPy Matrix), got "
                                    f"{type(H).__name__}") from exc
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise NotSquareError(f"a Hessian is a square matrix; got shape {tuple(A.shape)}: pass "
                             f"the (n, n) matrix of second derivatives")
    if not torch.isfinite(A).all():
        raise NonFiniteInputError("the Hessian contains NaN or Inf; evaluate it at a point where "
                                  "f is twice differentiable")
    ev = torch.linalg.eigvalsh((A + A.mH) / 2)
    cut = tol * max(1.0, float(ev.abs().max()) if ev.numel() else 1.0)
    pos = int((ev > cut).sum())
    neg = int((ev < -cut).sum())
    return pos, neg, A.shape[0] - pos - neg


def classify_hessian(H: Any, *, tol: float = 1e-8) -> str:
    """``"minimum"``, ``"maximum"``, ``"saddle"`` or ``"inconclusive"`` for a Hessian at a
    critical point (see the module docstring for the rule and :func:`inertia` for ``tol``).

    >>> import torch
    >>> classify_hessian(torch.tensor([[2.0, 0.0], [0.0, 8.0]]))
    'minimum'
    >>> import sympy
    >>> classify_hessian(sympy.Matrix([[0, 0], [0, 0]]))
    'inconclusive'
    """
    return kind_of(*inertia(H, tol=tol))
