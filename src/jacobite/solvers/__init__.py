"""Solvers that put Jacobians to work (the *use* layer).

``newton_minimize``: Newton's method for minimisation with the exact Hessian or the Gauss–Newton
approximation ``JᵀJ``, and a backtracking line search. ``least_squares`` and ``curve_fit``
(:mod:`jacobite.solvers.lsq`): nonlinear least squares — Levenberg–Marquardt, trust-region
reflective for bounds, Gauss–Newton, robust losses — with exact dense or sparse Jacobians.
``root``: F(x) = 0 by Powell's hybrid dogleg or Newton with a line search; ``implicit_jacobian``
and ``solve_implicit``: derivatives of a solution x*(θ) of F(x, θ) = 0 (implicit layers).

>>> import torch
>>> from jacobite.solvers import least_squares, newton_minimize
>>> rosen = lambda v: 100 * (v[1] - v[0] ** 2) ** 2 + (1 - v[0]) ** 2
>>> res = newton_minimize(rosen, [-1.2, 1.0])
>>> res.success, [round(c, 10) for c in res.x.tolist()]
(True, [1.0, 1.0])
>>> fit = least_squares(lambda v: torch.stack([10 * (v[1] - v[0] ** 2), 1 - v[0]]), [-1.2, 1.0])
>>> fit.success, [round(c, 10) for c in fit.x.tolist()]
(True, [1.0, 1.0])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

# lsq and root load here: their functions share their modules' names, and a later import of
# such a module would replace the function with it on this package. The others load on use.
from .lsq import LeastSquaresResult, curve_fit, least_squares
from .root import RootResult, root

if TYPE_CHECKING:  # pragma: no cover
    from .implicit import implicit_jacobian, solve_implicit
    from .newton import NewtonIterate, NewtonResult, newton_minimize

__all__ = ["LeastSquaresResult", "NewtonIterate", "NewtonResult", "RootResult", "curve_fit",
           "implicit_jacobian", "least_squares", "newton_minimize", "root", "solve_implicit"]

_SOURCE = {**dict.fromkeys(("implicit_jacobian", "solve_implicit"), ".implicit"),
           **dict.fromkeys(("NewtonIterate", "NewtonResult", "newton_minimize"), ".newton")}


# the modules themselves load as when loaded eagerly
__getattr__, __dir__ = lazy_exports(__name__, globals(), _SOURCE, ("implicit", "newton"))
