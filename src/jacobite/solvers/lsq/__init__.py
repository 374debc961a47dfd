"""Nonlinear least squares and curve fitting with exact Jacobians (dense or sparse).

``least_squares`` (Levenberg–Marquardt, trust-region reflective for bounds, Gauss–Newton; robust
losses; SciPy's interface and result) and ``curve_fit`` (SciPy's calling convention, the model in
torch).

>>> import torch
>>> from jacobite.solvers.lsq import curve_fit
>>> x = torch.linspace(0, 2, 9, dtype=torch.float64)
>>> popt, pcov = curve_fit(lambda x, a, b: a * x + b, x, 3 * x + 1, p0=[1.0, 0.0])
>>> popt.round(12).tolist()
[3.0, 1.0]
"""

from .curve_fit import curve_fit
from .engine.batch_result import BatchLeastSquaresResult
from .least_squares import least_squares
from .result import LeastSquaresResult

__all__ = ["BatchLeastSquaresResult", "LeastSquaresResult", "curve_fit", "least_squares"]
