"""Numeric Jacobians of black-box functions: finite differences with error estimates.

:func:`jacobian` differentiates any callable that maps a NumPy array or a torch tensor to an
array or tensor, by finite differences (``"forward"``, ``"central"``), adaptive Richardson
extrapolation (``"richardson"``, the default) or the complex step (``"complex"``). Every result
carries an entrywise error estimate and the number of calls of ``f``.

>>> import numpy as np
>>> from jacobite import numeric
>>> res = numeric.jacobian(lambda v: np.array([v[0] ** 2 * v[1], np.exp(v[1])]), [3.0, 0.0])
>>> np.round(res.jacobian, 12)
array([[0., 9.],
       [0., 1.]])
>>> res.nfev < 31 * 2  # numdifftools' default Jacobian needs 30 n + 1 = 61 calls here
True
"""

from ._api import jacobian
from ._steps import METHODS, NumericOptionError
from .result import NumericJacobian

__all__ = ["METHODS", "NumericJacobian", "NumericOptionError", "jacobian"]
