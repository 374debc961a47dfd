"""Step sizes: the defaults of every method and the checking of a user-supplied ``step``.

Every default is relative: ``h_j = c * max(|x_j|, 1)`` with ``c`` depending on the method and on
the machine epsilon ``eps`` of the working precision:

* ``"forward"``: ``c = sqrt(eps)`` (balances truncation ``~h`` against rounding ``~eps/h``);
* ``"central"``: ``c = eps**(1/3)`` (truncation ``~h**2``);
* ``"richardson"``: the largest step, ``c = 1/2``; the extrapolation walks down from it;
* ``"complex"``: ``c = 1e-20`` (no subtractive cancellation, so tiny steps are safe).

>>> import numpy as np
>>> default_steps("central", np.array([0.0, 10.0]), np.finfo(float).eps).round(8)
array([6.06e-06, 6.06e-05])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ..errors import InvalidOptionError, NonFiniteInputError, ShapeError

__all__ = ["METHODS", "NumericOptionError", "default_steps", "scale", "user_steps"]

#: A finite-difference scheme: Richardson extrapolation, central, forward or complex step.
Method = Literal["richardson", "central", "forward", "complex"]
METHODS: tuple[Method, ...] = ("richardson", "central", "forward", "complex")

RICHARDSON_BASE = 0.5
COMPLEX_STEP = 1e-20


NumericOptionError = InvalidOptionError  # an invalid ``method`` or ``step``


def scale(x: np.ndarray) -> np.ndarray:
    """The typical size of each coordinate, ``max(|x_j|, 1)``.

    >>> scale(np.array([-3.0, 0.1]))
    array([3., 1.])
    """
    return np.maximum(np.abs(x), 1.0)


def default_steps(method: Method, x: np.ndarray, eps: float) -> np.ndarray:
    """Default step per coordinate of the flat point ``x`` for ``method``.

    >>> import numpy as np
    >>> float(default_steps("forward", np.array([4.0]), 2.0 ** -52)[0]) == 4 * 2.0 ** -26
    True
    """
    if method == "forward":
        c = np.sqrt(eps)
    elif method == "central":
        c = np.cbrt(eps)
    elif method == "richardson":
        c = RICHARDSON_BASE
    elif method == "complex":
        c = COMPLEX_STEP
    else:  # pragma: no cover - checked by the caller
        raise NumericOptionError(f"unknown method {method!r}; use one of {METHODS}")
    return c * scale(x)


def user_steps(step: Any, in_shape: tuple[int, ...]) -> np.ndarray:
    """Check a user ``step`` (a positive number or an array broadcastable to x) and flatten it.

    >>> user_steps(1e-3, (2,))
    array([0.001, 0.001])
    """
    if isinstance(step, torch.Tensor):
        step = step.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(step, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise NumericOptionError(
            f"step must be a positive number or an array of them, got {step!r}"
        ) from exc
    try:
        arr = np.broadcast_to(arr, in_shape)
    except ValueError as exc:
        raise ShapeError(
            f"step has shape {arr.shape}, which does not broadcast to x's shape {in_shape}; "
            "pass one number or one step per entry of x"
        ) from exc
    if not np.all(np.isfinite(arr)):
        raise NonFiniteInputError("step contains NaN or Inf; pass finite positive steps")
    if np.any(arr <= 0):
        raise NumericOptionError(
            "step must be positive (the sign is chosen by the method); pass e.g. step=1e-6"
        )
    return arr.reshape(-1).copy()
