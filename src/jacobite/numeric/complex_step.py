"""The complex-step derivative ``J[:, j] = Im f(x + i h e_j) / h``.

For a complex-analytic ``f`` (one built from ``+ - * /``, ``exp``, ``sin``, ``log``, powers ...
and applied to complex inputs unchanged) there is no subtractive cancellation, so ``h`` can be
tiny (``tiny**(1/3) * max(|x_j|, 1)``, ``tiny`` the smallest normal number of the working
precision): the truncation error ``h**2 |f'''| / 6`` then lies below ``tiny / h``, the smallest
imaginary part that keeps full precision, and the result is exact to a few units of the working
precision (or to ``tiny / h``, about ``1e-205`` in float64). ``n + 1`` calls, plus two for the
analyticity check and one for the linearity check.

At a point where ``f`` is not analytic although it accepts complex inputs (``sqrt`` or ``log``
at 0, a branch point: the derivative is infinite or does not exist) the complex step is not a
derivative; it is refused with :class:`~jacobite.errors.UnsupportedOperationError` rather than
returned as a large finite number, because ``Im f(x + i h) / h`` then changes with ``h``.

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
SPREAD = 16.0      # the linearity check's steps, in units of h ...
LINEAR_TOL = 1e-3  # ... must reproduce J (h u) to this relative size


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


def _check_linear(p: Problem, jac: np.ndarray, err: np.ndarray, h: np.ndarray) -> None:
    """At a branch point or singularity (``sqrt`` or ``log`` at 0) ``f`` is not analytic and
    ``Im f(x + i h) / h`` is not a derivative: it grows without bound as ``h`` shrinks
    (``1 / sqrt(2 h)`` for ``sqrt`` at 0, ``1.3e51`` at the default step). For an analytic
    ``f`` the imaginary part is linear in the step to far below the working precision, so one
    more call at the steps ``SPREAD * h`` along a fixed direction ``u`` must reproduce
    ``SPREAD * J (h u)``, within ``LINEAR_TOL``, a hundred times the error estimate and the
    truncation the larger steps may add."""
    rng = np.random.default_rng(1)
    u = rng.uniform(0.5, 1.5, p.n)
    z = p.x.astype(np.complex128) + 1j * SPREAD * h * u
    got = p.evaluate_complex(z).imag / SPREAD
    want = jac.T @ (h * u)
    # the truncation error hides below tiny / h at the steps h, so below SPREAD**2 times that
    # at the larger steps
    tiny = float(torch.finfo(p.dtype).tiny)
    size = (LINEAR_TOL * (np.abs(jac).T @ (h * u)) + 100 * (err.T @ (h * u))
            + ERROR_ULPS * SPREAD ** 2 * tiny * np.sum(u))
    if np.any(~np.isfinite(got) | (np.abs(got - want) > size)):
        raise UnsupportedOperationError(
            "the complex-step derivative changes with the step: f is not analytic at x or "
            "within the step of x (a branch point or singularity, such as sqrt or log at 0, "
            "where the derivative is infinite or does not exist), so no step gives a "
            "derivative there; move x into "
            "the interior of f's domain, or use method='forward' or 'backward' for a "
            "one-sided difference with an error estimate"
        )


def complex_step(p: Problem, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex-step Jacobian of ``p`` with steps ``h``: ``(J, error, step)``, each ``(m, n)``.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> p = Problem(np.sin, np.array([1.0]), (), None, method="complex")
    >>> J, err, step = complex_step(p, np.array([1e-100]))
    >>> float(J[0, 0]) == float(np.cos(1.0)), p.nfev  # f(x), one complex step, three checks
    (True, 5)
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
    _check_linear(p, jac, err, h)
    return jac.T.copy(), err.T.copy(), np.broadcast_to(h[:, None], (n, m)).T.copy()
