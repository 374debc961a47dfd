"""Plain one-step finite differences: ``"forward"`` (n + 1 calls) and ``"central"`` (2n + 1).

Both work on a :class:`~jacobite.numeric._problem.Problem` and return ``(J, error, step)`` as
``(m, n)`` float64 matrices. Their error estimates are *models* (a measured estimate needs more
calls; use ``"richardson"`` for that):

* forward: ``h/2 * |f''| + 2 eps |f| / h`` with ``|f''|`` modelled as ``(|J| + |f|/s) / s``, i.e.
  assuming ``f`` varies on the scale ``s = max(|x_j|, 1)``;
* central: ``h**2/6 * |f'''| + 2 eps |f| / h`` with ``|f'''|`` modelled from the *measured*
  second difference, ``max(|f''| / s, |J| / s**2)``.

A function that oscillates on a scale much finer than ``s`` (``sin(100 x)``) breaks the models.

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(np.exp, np.array([0.0, 1.0]), method="central")
>>> bool(np.allclose(np.diag(res.jacobian), np.exp([0.0, 1.0]), rtol=1e-9))
True
"""

from __future__ import annotations

import numpy as np

from ..errors import NonFiniteInputError
from ._problem import Problem
from ._steps import NumericOptionError, scale

__all__ = ["central", "forward"]


def _trial(p: Problem, j: int, h: float) -> tuple[np.ndarray, float]:
    """The point ``x + h e_j`` as ``f`` will see it, and the step actually taken."""
    pt = p.x.copy()
    pt[j] = p.x[j] + h
    pt = p.actual_points(pt[None])[0]
    d = pt[j] - p.x[j]
    if d == 0:
        raise NumericOptionError(
            f"step {abs(h):.3g} is too small to change x at flat index {j} in the working "
            "precision; pass a larger step (or leave step=None)"
        )
    return pt, d


def _check_finite(p: Problem, values: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        cols = sorted({int(c) for c in np.argwhere(bad)[:, 0]})
        raise NonFiniteInputError(
            f"f is not finite at {where} for flat input index(es) {cols[:5]}: the step crosses "
            "the edge of f's domain; pass a smaller step, or use method='richardson', which "
            "skips such trial points"
        )


def forward(p: Problem, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward differences ``(f(x + h e_j) - f(x)) / h``: ``n`` calls after the base one.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> p = Problem(lambda v: v ** 2, np.array([3.0]), (), None, method="forward")
    >>> J, err, step = forward(p, np.array([1e-7]))
    >>> bool(abs(J[0, 0] - 6.0) < 1e-6), p.nfev
    (True, 2)
    """
    n, m = p.n, p.m
    f1 = np.empty((n, m))
    d = np.empty(n)
    for j in range(n):
        pt, d[j] = _trial(p, j, float(h[j]))
        f1[j] = p.evaluate(pt)
    _check_finite(p, f1, "x + h e_j")
    s = scale(p.x)[:, None]
    dd = d[:, None]
    jac = (f1 - p.f0[None, :]) / dd
    mag = np.maximum(np.abs(f1), np.abs(p.f0)[None, :])
    habs = np.abs(dd)
    err = (habs / 2 * (np.abs(jac) + mag / s) / s + 2 * p.eps * mag / habs
           + p.eps * np.abs(jac))
    return jac.T.copy(), err.T.copy(), np.broadcast_to(habs, (n, m)).T.copy()


def central(p: Problem, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences ``(f(x + h e_j) - f(x - h e_j)) / 2h``: ``2n`` calls after the base.

    Rounding of ``x +- h`` to the working precision can make the two steps differ; the
    three-point formula for unequal steps keeps second-order accuracy.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> p = Problem(lambda v: v ** 3, np.array([2.0]), (), None, method="central")
    >>> J, err, step = central(p, np.array([1e-5]))
    >>> bool(abs(J[0, 0] - 12.0) < 1e-8), p.nfev
    (True, 3)
    """
    n, m = p.n, p.m
    fp = np.empty((n, m))
    fm = np.empty((n, m))
    hp = np.empty(n)
    hm = np.empty(n)
    for j in range(n):
        pt, hp[j] = _trial(p, j, float(h[j]))
        fp[j] = p.evaluate(pt)
        pt, d = _trial(p, j, -float(h[j]))
        hm[j] = -d
        fm[j] = p.evaluate(pt)
    _check_finite(p, np.concatenate([fp, fm]), "x +- h e_j")
    f0 = p.f0[None, :]
    a, b = hp[:, None], hm[:, None]
    den = a * b * (a + b)
    jac = (b * b * fp - a * a * fm + (a * a - b * b) * f0) / den
    curv = np.abs(2 * (b * fp - (a + b) * f0 + a * fm) / den)
    s = scale(p.x)[:, None]
    hh = (a + b) / 2
    mag = np.maximum(np.maximum(np.abs(fp), np.abs(fm)), np.abs(f0))
    third = np.maximum(curv / s, np.abs(jac) / s ** 2)
    err = hh ** 2 / 6 * third + 2 * p.eps * mag / hh + p.eps * np.abs(jac)
    return jac.T.copy(), err.T.copy(), np.broadcast_to(hh, (n, m)).T.copy()
