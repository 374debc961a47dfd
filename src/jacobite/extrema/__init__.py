"""Critical points and their classification (the second-derivative test).

``critical_points`` solves ∇f = 0 — exactly with SymPy for an expression, or with Newton's
method (Hessians from :func:`jacobite.hessian`) for a torch function — and classifies each point
by the eigenvalues of its Hessian: minimum, maximum, saddle or inconclusive.

>>> from jacobite.extrema import critical_points
>>> [(p.point, p.kind) for p in critical_points("x**3 - 3*x + y**2")]
[({'x': -1, 'y': 0}, 'saddle'), ({'x': 1, 'y': 0}, 'minimum')]
"""

from .classify import KINDS, classify_hessian, inertia
from .critical import critical_points
from .result import CriticalPoint

__all__ = ["KINDS", "CriticalPoint", "classify_hessian", "critical_points", "inertia"]
