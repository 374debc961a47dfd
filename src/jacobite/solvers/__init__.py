"""Solvers that put Jacobians to work (the *use* layer).

``newton_minimize``: Newton's method for minimisation with the exact Hessian or the Gauss–Newton
approximation ``JᵀJ``, and a backtracking line search.

>>> import torch
>>> from jacobite.solvers import newton_minimize
>>> rosen = lambda v: 100 * (v[1] - v[0] ** 2) ** 2 + (1 - v[0]) ** 2
>>> res = newton_minimize(rosen, [-1.2, 1.0])
>>> res.success, [round(c, 10) for c in res.x.tolist()]
(True, [1.0, 1.0])
"""

from .newton import NewtonIterate, NewtonResult, newton_minimize

__all__ = ["NewtonIterate", "NewtonResult", "newton_minimize"]
