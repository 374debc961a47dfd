"""``integrate``: integrals by change of variables, ``∫ f(x) dx = ∫ f(T(u)) |det J_T(u)| du``.

The region is given in the *new* coordinates ``u`` (e.g. the whole plane is
``r ∈ [0, ∞), θ ∈ [0, 2π)`` in polar coordinates). ``|det J|`` comes from automatic
differentiation; the quadrature is SciPy's: ``scipy.integrate.quad`` (one dimension) or
``nquad`` (nested adaptive QUADPACK, infinite limits allowed), or the vectorised adaptive
``scipy.integrate.cubature`` — jacobite writes no integrator of its own.

The Gaussian integral ``∬ e^{-(x²+y²)} dx dy = π``:

>>> import math, torch
>>> res = integrate(lambda p: torch.exp(-(p ** 2).sum()), "polar", epsabs=1e-12, epsrel=1e-12)
>>> abs(res.value - math.pi) < 1e-10
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from .. import _validate
from .._modules import keeps_state
from ..errors import ConvergenceError, InvalidOptionError, JacobiteWarning
from ._budget import Budgeted, OutOfEvaluations, divergence_evidence
from ._integrand import Integrand
from ._region import Bounds, normalize_region
from .base import Transform
from .named import get_transform

__all__ = ["METHODS", "IntegrationResult", "integrate"]

#: Quadrature methods: ``"nquad"`` (pointwise nested QUADPACK via ``quad``/``nquad``),
#: ``"cubature"`` (vectorised ``scipy.integrate.cubature``, one batched AD pass per batch),
#: ``"auto"`` (``quad`` in one dimension, ``cubature`` in two or more).
Method = Literal["auto", "nquad", "cubature"]
METHODS: tuple[Method, ...] = ("auto", "nquad", "cubature")
#: The default ``max_evaluations`` of each method.
MAX_EVALUATIONS: dict[str, int] = {"cubature": 1_000_000, "nquad": 100_000}
#: Over an unbounded region: evaluations after which divergence is tested for.
EARLY_CHECK = 100_000


@dataclass(frozen=True)
class IntegrationResult:
    """The value of an integral with SciPy's error estimate and the work it took.

    Attributes:
        value: the integral.
        error: SciPy's estimate of the absolute error.
        neval: how many times the integrand ``f(T(u)) |det J|`` was evaluated.
        transform: the name of the change of variables used.
        region: the bounds in the new coordinates, one ``(low, high)`` pair per variable.
        variables: the names of the new coordinates.
        method: ``"nquad"`` or ``"cubature"``.
        converged: ``False`` when SciPy reported that it missed the tolerance.
        message: why the result did not converge (empty when it did).

    >>> r = IntegrationResult(3.0, 1e-12, 21, "polar", ((0.0, 1.0),), ("r",), "nquad", True)
    >>> float(r)
    3.0
    """

    value: float
    error: float
    neval: int
    transform: str
    region: tuple[tuple[float, float], ...]
    variables: tuple[str, ...]
    method: str
    converged: bool
    message: str = ""

    def __float__(self) -> float:
        return self.value


def _resolve_method(method: Method, T: Transform) -> Literal["nquad", "cubature"]:
    _validate.choice(method, "method", METHODS)
    if method == "auto":
        return "nquad" if T.dim == 1 else "cubature"
    return method


# SciPy can report success with a NaN estimate (a divergent integral): never a success here
NOT_FINITE = ("the estimate is not finite: the integral diverges over this region or the "
              "integrand is not finite somewhere in it")


def _run_nquad(g: Budgeted, bounds: tuple[tuple[float, float], ...], epsabs: float,
               epsrel: float, limit: int) -> tuple[float, float, list[str]]:
    import scipy.integrate as si  # loaded on use

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", si.IntegrationWarning)
        if len(bounds) == 1:
            (lo, hi), = bounds
            value, error = si.quad(g.at_point, lo, hi, epsabs=epsabs, epsrel=epsrel,
                                   limit=limit)
        else:  # nquad's first range is the innermost integral: u[0] (r for polar) varies fastest
            value, error = si.nquad(g.at_point, list(bounds),
                                    opts={"epsabs": epsabs, "epsrel": epsrel, "limit": limit})
    problems = []
    for w in caught:
        if issubclass(w.category, si.IntegrationWarning):
            problems.append(str(w.message).strip().splitlines()[0])
        else:  # not ours to swallow: pass the user's own warnings on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not (math.isfinite(float(value)) and math.isfinite(float(error))):
        problems.append(NOT_FINITE)
    return float(value), float(error), problems


def _run_cubature(g: Budgeted, bounds: tuple[tuple[float, float], ...], epsabs: float,
                  epsrel: float, limit: int) -> tuple[float, float, list[str]]:
    import scipy.integrate as si  # loaded on use

    lo = [b[0] for b in bounds]
    hi = [b[1] for b in bounds]
    res = si.cubature(g.at_points, lo, hi, rtol=epsrel, atol=epsabs, max_subdivisions=limit)
    problems = [] if res.status == "converged" else [
        f"cubature stopped after {res.subdivisions} subdivisions without converging"]
    if not (math.isfinite(float(res.estimate)) and math.isfinite(float(res.error))):
        problems.append(NOT_FINITE)
    return float(res.estimate), float(res.error), problems


@keeps_state
def integrate(f: Any, transform: str | Transform = "polar", region: Bounds | None = None, *,
              epsabs: float = 1.49e-8, epsrel: float = 1.49e-8, method: Method = "auto",
              limit: int | None = None, max_evaluations: int | None = None,
              ) -> IntegrationResult:
    """``∫ f(x) dx`` over a region given in new coordinates ``u``, as ``∫ f(T(u)) |det J| du``.

    Args:
        f: a torch function of ONE point ``x`` of the ORIGINAL coordinates (a tensor of shape
            ``(n,)``, e.g. ``(x, y)`` for polar) returning a scalar; or a number (``1`` gives the
            area / volume of the region).
        transform: ``"polar"``, ``"cylindrical"``, ``"spherical"`` or a
            :class:`~jacobite.transforms.Transform` (``Affine(A, b)``, ``Transform(fn, n)``).
        region: bounds in the new coordinates: one ``(low, high)`` pair per variable (infinite
            limits allowed), or a dict such as ``{"r": (0, 1)}`` that changes only some of the
            transform's default bounds; ``None`` uses the default (the whole space for the named
            transforms).
        epsabs, epsrel: absolute and relative tolerances passed to SciPy.
        method: ``"nquad"`` (``scipy.integrate.quad`` / ``nquad``: nested adaptive
            Gauss–Kronrod, one point — so one AD call for ``det J`` — per evaluation),
            ``"cubature"`` (``scipy.integrate.cubature``: adaptive Gauss–Kronrod product rules,
            vectorised, so ``det J`` is differentiated for whole batches of points at once —
            typically 10-100x faster; nested ``nquad`` over several infinite ranges can need
            millions of evaluations) or ``"auto"`` (``quad`` in one dimension, ``cubature`` in
            two or more). For maps with a constant Jacobian (:class:`Affine`) ``det J`` is
            differentiated once and reused.
        limit: subdivision limit: per ``quad`` call for ``nquad`` (default 50), in total for
            ``cubature`` (``max_subdivisions``, default 10000).
        max_evaluations: the most evaluations of the integrand to spend; ``None`` means the
            method's default (:data:`MAX_EVALUATIONS`: one million for ``cubature``, a hundred
            thousand for the pointwise ``nquad``). Reaching it raises
            :class:`~jacobite.errors.ConvergenceError` — naming divergence when partial
            integrals over growing regions keep growing.

    Returns:
        An :class:`IntegrationResult` (``value``, ``error``, ``neval``, ...). A result that missed
        the tolerance has ``converged=False`` and emits a :class:`~jacobite.errors.JacobiteWarning`.

    Raises:
        InvalidOptionError: unknown transform or method, bad tolerances, a lower bound above its
            upper bound.
        ShapeError: a region with the wrong number of bounds, a non-scalar integrand.
        NonFiniteInputError: the integrand (or the transform) is NaN or infinite somewhere.
        ConvergenceError: the integral diverges (over an unbounded region: its partial integrals
            over growing regions keep growing, listed in the message), or ``max_evaluations``
            was spent before the tolerance was met.

    The volume of the unit ball in spherical coordinates:

    >>> import math
    >>> res = integrate(1.0, "spherical", {"r": (0, 1)}, epsrel=1e-8)
    >>> abs(res.value - 4 * math.pi / 3) < 1e-8, res.method
    (True, 'cubature')
    """
    T = get_transform(transform)
    bounds = T.region if region is None else normalize_region(region, T.variables, T.region,
                                                               T.name)
    epsabs = _validate.tolerance(epsabs, "epsabs")
    epsrel = _validate.tolerance(epsrel, "epsrel")
    if epsabs == 0 and epsrel < 5e-14:
        raise InvalidOptionError("with epsabs=0, epsrel must be at least 5e-14 (SciPy cannot do "
                                 "better in double precision); raise epsrel or set epsabs > 0")
    chosen = _resolve_method(method, T)
    if limit is not None:
        limit = _validate.positive_int(limit, "limit")
    budget = (MAX_EVALUATIONS[chosen] if max_evaluations is None
              else _validate.positive_int(max_evaluations, "max_evaluations"))
    unbounded = not all(math.isfinite(v) for b in bounds for v in b)
    # over an unbounded region, a first try with a smaller budget lets a divergent integral
    # be recognised (and refused) early; a convergent one is then redone with the full budget
    tries = [EARLY_CHECK, budget] if unbounded and budget > EARLY_CHECK else [budget]
    spent = 0
    for i, cap in enumerate(tries):
        g = Budgeted(Integrand(f, T), cap)
        try:
            value, error, problems = _quadrature(g, chosen, bounds, epsabs, epsrel, limit)
            break
        except OutOfEvaluations:
            spent += g.neval
            if i == 0 and unbounded:
                _refuse_divergent(f, T, bounds)
            if i == len(tries) - 1:
                raise ConvergenceError(
                    f"integrate ({T.name}, {chosen}) spent max_evaluations={budget} "
                    f"evaluations without reaching epsabs={epsabs:g}, epsrel={epsrel:g}; "
                    f"loosen the tolerances, raise max_evaluations, split the region at "
                    f"singularities, or check that the integral exists") from None
    neval = spent + g.neval
    message = ""
    if problems:
        if unbounded:  # SciPy's estimate of a divergent integral can look finite (quad: -2)
            _refuse_divergent(f, T, bounds)
        message = (f"integrate ({T.name}, {chosen}) may have missed the tolerance "
                   f"(epsabs={epsabs:g}, epsrel={epsrel:g}): {problems[0]} — the error estimate "
                   f"is {error:.3g}; loosen the tolerances, raise limit, split the region at "
                   f"singularities or try the other method")
        warnings.warn(message, JacobiteWarning, stacklevel=2)
    return IntegrationResult(value, error, neval, T.name, tuple(bounds), T.variables, chosen,
                             not problems, message)


def _quadrature(g: Budgeted, chosen: str, bounds: tuple[tuple[float, float], ...],
                epsabs: float, epsrel: float, limit: int | None,
                ) -> tuple[float, float, list[str]]:
    if chosen == "nquad":
        return _run_nquad(g, bounds, epsabs, epsrel, limit or 50)
    return _run_cubature(g, bounds, epsabs, epsrel, limit or 10000)


def _refuse_divergent(f: Any, T: Transform, bounds: tuple[tuple[float, float], ...]) -> None:
    """Raise ConvergenceError, with the partial integrals as evidence, if the integral over an
    unbounded region diverges."""
    evidence = divergence_evidence(f, T, bounds)
    if evidence is None:
        return
    shown = ", ".join(f"R={R:g}: {v:.6g}" for R, v in evidence[-4:])
    raise ConvergenceError(
        f"the integral diverges: over the {T.name} region with every infinite bound cut at R, "
        f"the partial integrals keep growing ({shown}); integrate over a bounded region (e.g. "
        f"region={{{T.variables[0]!r}: (0, 1)}}) or check that the integrand decays")
