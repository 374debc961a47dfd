"""The complex-step derivative ``J[:, j] = Im f(x + i h e_j) / h``.

For a complex-analytic ``f`` (one built from ``+ - * /``, ``exp``, ``sin``, ``log``, powers ...
and applied to complex inputs unchanged) there is no subtractive cancellation, so ``h`` can be
tiny (``tiny**(1/3) * max(|x_j|, 1)``, ``tiny`` the smallest normal number of the working
precision): the truncation error ``h**2 |f'''| / 6`` then lies below ``tiny / h``, the smallest
imaginary part that keeps full precision, and the result is exact to a few units of the working
precision (or to ``tiny / h``, about ``1e-205`` in float64). ``n + 1`` calls, plus two for the
analyticity check.

``f`` must accept complex inputs and return complex outputs; ``abs``, ``real``, comparisons,
``max`` and friends break analyticity. If ``f`` raises on a complex input or returns a real
result, :class:`~jacobite.errors.UnsupportedOperationError` is raised. A function that
silently discards the imaginary part (``x.real``, ``conj``) cannot always be detected: its
complex-step Jacobian is wrong.

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(lambda v: np.exp(v) / np.sqrt(v), np.array([1.5, 2.0]), method="complex")
>>> v = np.array([1.5, 2.0])
>>> exact = np.exp(v) * (1 / np.sqrt(v) - 0.5 * v ** -1.5)
>>> bool(np.allclose(np.diag(res.jacobian), exact, rtol=1e-14, atol=0))
True
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import NonFiniteInputError, UnsupportedOperationError
from ._problem import Problem
from ._steps import representable, scale

__all__ = ["complex_step"]

ERROR_ULPS = 4.0   # error estimate: ERROR_ULPS * eps * |J|
REAL_TOL = 1e-6    # Re f(x + ih) must match f(x) to this relative size (analyticity sanity check)
AGREE = 1e-4       # the real difference must match the complex step to this relative size ...
MAX_DISAGREEMENT = 0.1  # ... or to its own accuracy where that is worse (float32), at most this


def _check_cauchy_riemann(p: Problem, jac: np.ndarray) -> None:
    """A non-analytic f (``v * conj(v)``) can keep Re f(x + ih) = f(x) and still give a wrong
    imaginary part. For an analytic f the complex-step J agrees with the real derivative, so one
    central difference along a fixed direction u (two evaluations, counted in ``nfev``) must
    match ``Jᵀu`` to within the difference's own error; a mismatch means the complex step is not
    valid for f."""
    if not np.all(np.isfinite(jac)):
        return  # reported by the caller
    rng = np.random.default_rng(0)
    u = rng.uniform(0.5, 1.5, p.n) * rng.choice([-1.0, 1.0], p.n)
    # the central step of the "central" method, (eps s)**(1/3), balances functions varying on
    # the scale of x against those varying on their own (sin at 1e8); the displacement is the
    # one the rounded points really make
    s = scale(p.x)
    t = representable(np.cbrt(p.eps * s), p.x, p.in_eps)
    xp = p.actual_points((p.x + t * u)[None])[0]
    xm = p.actual_points((p.x - t * u)[None])[0]
    d = xp - xm
    fd = p.evaluate(xp) - p.evaluate(xm)
    cs = jac.T @ d
    size = np.abs(jac).T @ np.abs(d) + (np.abs(p.f0) + 1.0) * float(np.max(np.abs(d) / s))
    # the difference itself is accurate to about (eps s)**(2/3): allow a hundred times that
    tol = min(MAX_DISAGREEMENT, max(AGREE, 100 * float(np.max(np.cbrt(p.eps * s))) ** 2))
    if np.any(np.abs(fd - cs) > tol * size):
        raise UnsupportedOperationError(
            "the complex-step derivative disagrees with a real finite difference: f is not "
            "complex-analytic (it uses conj, abs, real, angle or a comparison on its input), so "
            "the complex step cannot be used; use method='richardson' instead")


def complex_step(p: Problem, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex-step Jacobian of ``p`` with steps ``h``: ``(J, error, step)``, each ``(m, n)``.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> p = Problem(np.sin, np.array([1.0]), (), None, method="complex")
    >>> J, err, step = complex_step(p, np.array([1e-100]))
    >>> float(J[0, 0]) == float(np.cos(1.0)), p.nfev  # f(x), one complex step, the check's two
    (True, 4)
    """
    n, m = p.n, p.m
    jac = np.empty((n, m))
    mag = np.abs(p.f0)
    for j in range(n):
        z = p.x.astype(np.complex128)
        z[j] += 1j * h[j]
        out = p.evaluate_complex(z)
        jac[j] = out.imag / h[j]
        drift = np.abs(out.real - p.f0)
        if np.any(drift > REAL_TOL * (mag + np.abs(jac[j]) * abs(p.x[j]) + 1.0)):
            raise UnsupportedOperationError(
                "Re f(x + i h e_j) differs from f(x): f is not complex-analytic (it uses abs, "
                "real, conj or a comparison on its input), so the complex step cannot be used; "
                "use method='richardson' instead"
            )
    _check_cauchy_riemann(p, jac)
    if not np.all(np.isfinite(jac)):
        cols = sorted({int(c) for c in np.argwhere(~np.isfinite(jac))[:, 0]})
        raise NonFiniteInputError(
            f"the complex step gave NaN or Inf along flat input index(es) {cols[:5]}: f is not "
            "finite for complex inputs near x; use method='richardson' instead"
        )
    # imaginary parts keep full precision only down to the smallest normal number; the step
    # is chosen so that the truncation error h**2 |f'''| / 6 hides below that floor. Terms of
    # f may cancel in Im f (sin(x) + x where cos(x) ~ -1): rounding is relative to the typical
    # derivative |f| / max(|x|, 1) as well as to |J|
    tiny = float(torch.finfo(p.dtype).tiny)
    typical = np.abs(p.f0)[None, :] / scale(p.x)[:, None]
    err = ERROR_ULPS * (p.eps * (np.abs(jac) + typical) + tiny / h[:, None])
    return jac.T.copy(), err.T.copy(), np.broadcast_to(h[:, None], (n, m)).T.copy()
