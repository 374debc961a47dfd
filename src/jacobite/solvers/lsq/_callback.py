"""``least_squares(callback=...)``: a user function called after every accepted step.

The callback takes either one parameter named ``intermediate_result`` (a
:class:`scipy.optimize.OptimizeResult` with ``x``, ``fun``, ``cost``, ``nit`` and ``nfev``) or
the iterate ``x`` alone (a copy), as in SciPy. Raising ``StopIteration`` or returning ``True``
stops the solve at that point with status :data:`CALLBACK_STATUS` (``-2``, SciPy's code).

It is driven by the residual wrapper, not by the solver loops: every method evaluates the
Jacobian exactly once per accepted step, and that is where the callback runs.

>>> import numpy as np
>>> seen = []
>>> cb = Callback(lambda x: seen.append(x.tolist()), lambda v: v, lambda r: r)
>>> cb(np.array([1.0]), np.array([0.5]), 0.125, 1, 3)  # False: go on
False
>>> seen
[[1.0]]
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ... import _validate
from .engine.status import CALLBACK, MESSAGES

__all__ = ["CALLBACK_MESSAGE", "CALLBACK_STATUS", "Callback", "Halt"]

#: The status of a solve the callback stopped (SciPy's code) and its message.
CALLBACK_STATUS = CALLBACK
CALLBACK_MESSAGE = MESSAGES[CALLBACK]


class Halt(Exception):
    """Raised through the solver when the callback asks to stop; carries the iterate."""

    def __init__(self, x: np.ndarray, f: np.ndarray, J: Any, nit: int) -> None:
        super().__init__("callback stop")
        self.x, self.f, self.J, self.nit = x, f, J, nit


class Callback:
    """The user's ``callback`` in SciPy's two signatures.

    Args:
        callback: ``callback(intermediate_result)`` or ``callback(x)``.
        convert: turns the flat float64 iterate into what the user sees (an array or a tensor
            shaped like ``x0``).
        convert_f: the same for the flat residuals.
    """

    def __init__(self, callback: Callable[..., Any], convert: Callable[[np.ndarray], Any],
                 convert_f: Callable[[np.ndarray], Any]) -> None:
        self.fn = _validate.callable_(callback, "callback")
        self.convert, self.convert_f = convert, convert_f
        try:
            params = set(inspect.signature(callback).parameters)
        except (TypeError, ValueError):  # a builtin without a signature: give it x
            params = set()
        self.full = params == {"intermediate_result"}

    def __call__(self, x: np.ndarray, f: np.ndarray, cost: float, nit: int, nfev: int) -> bool:
        """Call the user's function; ``True`` when it asks to stop."""
        try:
            if self.full:
                from scipy.optimize import OptimizeResult

                res = OptimizeResult(x=self.convert(x.copy()), fun=self.convert_f(f),
                                     cost=cost, nit=nit, nfev=nfev)
                out = self.fn(intermediate_result=res)
            else:
                out = self.fn(self.convert(x.copy()))
        except StopIteration:
            return True
        return out is True
