"""The one adapter between SciPy's tests and jacobite: argument spelling, nothing else.

SciPy's ``least_squares`` takes every argument by position or keyword; the adapter binds a call
by SciPy's signature and passes the arguments the test gave, by name, to
:func:`jacobite.least_squares`. Defaults are not filled in: what a test leaves out, jacobite
chooses.

>>> import numpy as np
>>> res = least_squares(lambda x: x - 1.0, np.array([0.0]))
>>> res.x
array([1.])
"""

from __future__ import annotations

import inspect
from typing import Any

import scipy.optimize

import jacobite

__all__ = ["least_squares"]

_SCIPY = inspect.signature(scipy.optimize.least_squares)


def least_squares(*args: Any, **kwargs: Any) -> Any:
    """``scipy.optimize.least_squares(*args, **kwargs)`` spelled as a jacobite call."""
    bound = _SCIPY.bind(*args, **kwargs)
    return jacobite.least_squares(**bound.arguments)
