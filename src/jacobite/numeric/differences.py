"""One-step finite differences: ``"forward"``, ``"backward"`` (2n calls) and ``"central"`` (4n).

All work on a :class:`~jacobite.numeric._problem.Problem` and return ``(J, error, step)`` as
``(m, n)`` float64 matrices. The value is the classical difference with step ``h``; the error
estimate *measures* the term that limits it, from one more pair of points per input:

* forward (backward): ``(f(x ± h) - f(x)) / ±h``, error ``h |f''| / 2`` with ``f''`` the second
  divided difference through ``x, x ± h, x ± 2h``;
* central: ``(f(x + h) - f(x - h)) / 2h``, error ``h**2 |f'''| / 6`` with ``f'''`` the third
  divided difference through ``x ± h, x ± 2h``;

plus the noise of ``f`` propagated through the difference, ``c nu / h`` with ``nu`` the larger of
the measured noise level (see :mod:`~jacobite.numeric._noise`) and the rounding ``eps |f|``.
Because the limiting term is measured, not modelled from ``|x|``, the estimate holds for any
``f`` smooth on the scale of the steps (a polynomial at ``x = 0``, ``sin`` at ``x = 1e8``).

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(np.exp, np.array([0.0, 1.0]), method="central")
>>> bool(np.allclose(np.diag(res.jacobian), np.exp([0.0, 1.0]), rtol=1e-9))
True
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..errors import NonFiniteInputError
from ._noise import Noise
from ._problem import Problem
from ._steps import NumericOptionError, representable, scale

__all__ = ["backward", "central", "divided_difference", "forward", "three_point"]

NOISE_ULPS = 2.0   # the noise term: NOISE_ULPS * nu / h
NOISE_SAFETY = 4.0  # the measured noise level may be this much too low (few samples)
REFINE = 4.0       # a column is redone where the balanced step differs this much ...
REFINE_MAX = 1e4   # ... moving the step by this factor at most
NOISY = 1e3        # f counts as noisy where its relative noise exceeds NOISY * eps
FLOOR_ULPS = 4.0   # a step of at most this many units of x's last digit sits at its floor

Scheme = Callable[[Problem, np.ndarray, np.ndarray, Noise], tuple[np.ndarray, ...]]


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


def _check_finite(values: np.ndarray, cols: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        which = sorted({int(cols[c]) for c in np.argwhere(bad)[:, 1]})
        raise NonFiniteInputError(
            f"f is not finite at {where} for flat input index(es) {which[:5]}: the step "
            "crosses the edge of f's domain; pass a smaller step, or use method='richardson', "
            "which skips such trial points"
        )


def _check_overflow(jac: np.ndarray, cols: np.ndarray) -> None:
    bad = ~np.isfinite(jac)
    if bad.any():
        which = sorted({int(cols[c]) for c in np.argwhere(bad)[:, 0]})
        raise NonFiniteInputError(
            f"the difference of f overflows for flat input index(es) {which[:5]} (f is finite "
            "but its values at x and x + h are too far apart for float64, e.g. a jump near "
            "the float limit); pass a smaller step=..., or rescale f"
        )


def _sample(p: Problem, h: np.ndarray, cols: np.ndarray, factors: tuple[float, ...]
            ) -> tuple[np.ndarray, np.ndarray]:
    """``f`` at ``x + c h_j e_j`` for the columns ``cols`` and every factor ``c``: offsets
    ``(k, c, 1)`` and values ``(k, c, m)``."""
    t = np.empty((len(factors), cols.size, 1))
    vals = np.empty((len(factors), cols.size, p.m))
    for q, j in enumerate(cols):
        for i, c in enumerate(factors):
            pt, t[i, q, 0] = _trial(p, int(j), c * float(h[j]))
            vals[i, q] = p.evaluate(pt)
    return t, vals


def divided_difference(t: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The highest divided difference ``f[t_0, ..., t_k]`` along axis 0 (nodes ``t``).

    >>> import numpy as np
    >>> t = np.array([0.0, 1.0, 3.0])
    >>> float(divided_difference(t, t ** 2))  # the leading coefficient of t**2
    1.0
    """
    c = np.array(f, dtype=np.float64)
    for lv in range(1, c.shape[0]):
        c[lv:] = (c[lv:] - c[lv - 1:-1]) / (t[lv:] - t[:-lv])
    return c[-1]


def three_point(a: np.ndarray, b: np.ndarray, fp: np.ndarray, fm: np.ndarray,
                f0: np.ndarray) -> np.ndarray:
    """The central difference through ``x - b, x, x + a`` (second order for unequal steps).

    The steps are scaled by their mean before they multiply the values, so that neither
    ``b**2 f(x + a)`` nor ``a b (a + b)`` overflows where steps and values are both large
    (``v**2`` at ``1e150``: values near ``1e300``, steps near ``1e45``).

    >>> import numpy as np
    >>> float(three_point(np.array(2.0), np.array(1.0), np.array(9.0), np.array(0.0),
    ...                   np.array(1.0)))  # (1 + t)**2 at t = 0, nodes -1, 0, 2
    2.0
    """
    s = (a + b) / 2
    al, be = a / s, b / s
    # differences first: the rounding of the weights then multiplies small numbers
    return (be * be * (fp - f0) - al * al * (fm - f0)) / (al * be * (al + be) * s)


def _noise(p: Problem, noise: Noise, vals: np.ndarray) -> np.ndarray:
    """``nu``: the noise (at least the rounding) of the values of each column, ``(n, m)``."""
    mag = np.maximum(np.abs(vals).max(axis=0), np.abs(p.f0)[None, :])
    return np.maximum(noise.of(mag), p.eps * mag)


def _resolved(dd: np.ndarray, nodes: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """The part of a measured ``|divided difference|`` that noise ``nu`` cannot explain (zero
    where the noise explains all of it: then only a larger step can resolve the derivative)."""
    k = nodes.shape[0]
    spread = np.zeros(nodes.shape[1:])
    for i in range(k):
        # the product of reciprocals underflows harmlessly where huge steps would overflow
        inverse = [1.0 / np.abs(nodes[i] - nodes[j]) for j in range(k) if j != i]
        spread = spread + np.prod(inverse, axis=0)
    return np.maximum(dd - NOISE_SAFETY * spread * nu, 0.0)


def _one_sided(p: Problem, h: np.ndarray, cols: np.ndarray, noise: Noise, sign: float
               ) -> tuple[np.ndarray, ...]:
    """Forward (``sign = 1``) or backward differences for ``cols``: ``J``, error, step and
    the step that would balance the measured truncation against the noise, each ``(c, m)``."""
    t, vals = _sample(p, h, cols, (sign, 2 * sign))
    _check_finite(vals, cols, "x + h e_j" if sign > 0 else "x - h e_j")
    f0 = np.broadcast_to(p.f0, (1, cols.size, p.m))
    with np.errstate(over="ignore", invalid="ignore"):
        jac = (vals[0] - f0[0]) / t[0]
    _check_overflow(jac, cols)
    nodes = np.concatenate([np.zeros((1, cols.size, 1)), t])
    curv = np.abs(divided_difference(nodes, np.concatenate([f0, vals])))  # ~ |f''| / 2
    habs = np.abs(t[0])
    nu = _noise(p, noise, vals)
    err = habs * curv + NOISE_ULPS * nu / habs + p.eps * np.abs(jac)
    with np.errstate(divide="ignore", over="ignore"):  # inf: no balance in sight
        best = np.sqrt(NOISE_ULPS * nu / _resolved(curv, nodes, nu))
    return jac, err, np.broadcast_to(habs, jac.shape).copy(), best


def _central(p: Problem, h: np.ndarray, cols: np.ndarray, noise: Noise
             ) -> tuple[np.ndarray, ...]:
    """Central differences for ``cols``, as :func:`_one_sided`."""
    t, vals = _sample(p, h, cols, (-2.0, -1.0, 1.0, 2.0))
    _check_finite(vals, cols, "x +- h e_j or x +- 2h e_j")
    a, b = t[2], -t[1]
    fp, fm = vals[2], vals[1]
    with np.errstate(over="ignore", invalid="ignore"):
        jac = three_point(a, b, fp, fm, p.f0[None, :])
    _check_overflow(jac, cols)
    third = np.abs(divided_difference(t, vals))  # ~ |f'''| / 6
    hh = (a + b) / 2
    nu = _noise(p, noise, vals)
    err = a * b * third + NOISE_ULPS * nu / hh + p.eps * np.abs(jac)
    with np.errstate(divide="ignore", over="ignore"):  # inf: no balance in sight
        best = np.cbrt(NOISE_ULPS * nu / (2 * _resolved(third, t, nu)))
    return jac, err, np.broadcast_to(hh, jac.shape).copy(), best


def _refined(p: Problem, h: np.ndarray, noise: Noise, scheme: Scheme, refine: bool,
             power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scheme`` at the steps ``h``, then (if ``refine``) once more for the columns where the
    measured truncation and noise call for a step at least ``REFINE`` times larger or smaller,
    at that step; each column keeps the result with the smaller estimate. A column whose step
    sits at ``x``'s last digits with nothing resolved tries ``eps**power max(|x_j|, 1)``
    (``power`` 1/2 one-sided, 1/3 central), the balance for ``f`` varying on the scale of x.
    ``(J, error, step)``, ``(m, n)`` each."""
    cols = np.arange(p.n)
    jac, err, used, best = scheme(p, h, cols, noise)
    # one step per column: the smallest that any output asks for. Where noise explains all of
    # the measured truncation, a larger step is only worth a try if f is noisy (otherwise the
    # default step is already near the balance)
    ask = np.min(best, axis=1)
    noisy = noise.relative > NOISY * p.eps
    unresolved = ~np.isfinite(ask)
    ask = np.where(unresolved, h * REFINE_MAX if noisy else h, ask)
    ask = np.clip(ask, h / REFINE_MAX, h * REFINE_MAX)
    # where |x| is so large that the step sits at x's last digits (beyond 1 / eps no function
    # varying on the scale 1 is resolvable), only a function varying on the scale of x can be
    # differentiated: its balanced step is eps**power |x| (v**2 at 1e150: 6e144, not 2e134)
    floor = unresolved & (h <= FLOOR_ULPS * p.in_eps * np.abs(p.x))
    ask = np.where(floor, np.maximum(ask, max(noise.relative, p.eps) ** power * scale(p.x)),
                   ask)
    ask = representable(ask, p.x, p.in_eps)
    redo = np.flatnonzero(((ask > REFINE * h) | (ask < h / REFINE)) & refine)
    if redo.size:
        h2 = h.copy()
        h2[redo] = ask[redo]
        j2, e2, u2, _ = scheme(p, h2, redo, noise)
        better = e2.max(axis=1) < err[redo].max(axis=1)
        keep = redo[better]
        jac[keep], err[keep], used[keep] = j2[better], e2[better], u2[better]
    return jac.T.copy(), err.T.copy(), used.T.copy()


def forward(p: Problem, h: np.ndarray, noise: Noise, refine: bool = True
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward differences ``(f(x + h e_j) - f(x)) / h``; ``2n`` calls after the base one, at
    most ``4n`` where the step is refined. ``(J, error, step)``, each ``(m, n)``.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> from jacobite.numeric._noise import noise_level
    >>> p = Problem(lambda v: v ** 2, np.array([3.0]), (), None, method="forward")
    >>> J, err, step = forward(p, np.array([1e-7]), noise_level(p))
    >>> bool(abs(J[0, 0] - 6.0) <= err[0, 0] < 1e-6)
    True
    """
    return _refined(p, h, noise, partial(_one_sided, sign=1.0), refine, 1 / 2)


def backward(p: Problem, h: np.ndarray, noise: Noise, refine: bool = True
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward differences ``(f(x) - f(x - h e_j)) / h``; see :func:`forward`.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> from jacobite.numeric._noise import noise_level
    >>> p = Problem(np.sqrt, np.array([4.0]), (), None, method="backward")
    >>> J, err, step = backward(p, np.array([1e-7]), noise_level(p))
    >>> bool(abs(J[0, 0] - 0.25) <= err[0, 0] < 1e-7)
    True
    """
    return _refined(p, h, noise, partial(_one_sided, sign=-1.0), refine, 1 / 2)


def central(p: Problem, h: np.ndarray, noise: Noise, refine: bool = True
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences ``(f(x + h e_j) - f(x - h e_j)) / 2h``; ``4n`` calls after the base
    one, at most ``8n`` where the step is refined.

    Rounding of ``x +- h`` to the working precision can make the two steps differ; the
    three-point formula for unequal steps keeps second-order accuracy.

    >>> import numpy as np
    >>> from jacobite.numeric._problem import Problem
    >>> from jacobite.numeric._noise import noise_level
    >>> p = Problem(lambda v: v ** 3, np.array([2.0]), (), None, method="central")
    >>> J, err, step = central(p, np.array([1e-5]), noise_level(p))
    >>> bool(abs(J[0, 0] - 12.0) <= err[0, 0] < 1e-8)
    True
    """
    return _refined(p, h, noise, _central, refine, 1 / 3)
