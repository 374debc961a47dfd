"""Step sizes: the defaults of every method and the checking of a user-supplied ``step``.

A function may vary on the scale of ``x`` (powers, ``log``: the rounding error of a difference is
then about ``eps |x| / h`` relative) or on a scale of its own, whatever ``x`` is (``sin``: the
truncation error is then about ``h**p`` relative, ``p`` the order of the scheme). A step
proportional to ``|x|`` is wrong for the second kind at large ``|x|`` (at ``x = 1e8`` it straddles
millions of periods of ``sin``); a step independent of ``|x|`` loses the digits of the first
kind. With ``s = max(|x_j|, 1)`` the defaults balance the two:

* ``"forward"``, ``"backward"``: ``h = (eps s)**(1/2)``: both kinds lose about ``(eps s)**(1/2)``;
* ``"central"``: ``h = (eps s)**(1/3)`` (truncation ``~h**2``);
* ``"richardson"``: the largest step is ``(1 + log s) / 2``; the walk goes down from it, and up
  where rounding is its only error;
* ``"complex"``: ``h = tiny**(1/3) s`` (``tiny`` the smallest normal number): without
  subtractive cancellation the step can be so small that its truncation error is far below
  anything representable next to the derivative.

``eps`` is the relative noise level of ``f`` (at least the machine epsilon), so that a noisy
``f`` gets larger steps.

>>> import numpy as np
>>> default_steps("central", np.array([0.0, 1e8]), np.finfo(float).eps).round(6)
array([6.1e-06, 2.8e-03])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ..errors import InvalidOptionError, NonFiniteInputError, ShapeError

__all__ = ["METHODS", "NumericOptionError", "default_steps", "nominal_scale", "representable",
           "scale", "user_steps"]

#: A finite-difference scheme: Richardson extrapolation, central, forward, backward or complex.
Method = Literal["richardson", "central", "forward", "backward", "complex"]
METHODS: tuple[Method, ...] = ("richardson", "central", "forward", "backward", "complex")

RICHARDSON_BASE = 0.5
MIN_ULPS = 1.0  # a step spans at least one unit of x's precision (the actual step is used)


NumericOptionError = InvalidOptionError  # an invalid ``method`` or ``step``


def scale(x: np.ndarray) -> np.ndarray:
    """The typical size of each coordinate, ``max(|x_j|, 1)``.

    >>> scale(np.array([-3.0, 0.1]))
    array([3., 1.])
    """
    return np.maximum(np.abs(x), 1.0)


def nominal_scale(x: np.ndarray) -> np.ndarray:
    """A scale that grows with ``|x_j|`` only logarithmically, ``1 + log(max(|x_j|, 1))``.

    >>> nominal_scale(np.array([0.5, np.e ** 2]))
    array([1., 3.])
    """
    return 1.0 + np.log(scale(x))


def default_steps(method: Method, x: np.ndarray, eps: float,
                  tiny: float = float(np.finfo(np.float64).tiny)) -> np.ndarray:
    """Default step per coordinate of the flat point ``x`` for ``method``.

    ``eps`` is the relative noise level of ``f``; ``tiny`` the smallest normal number of the
    working precision (complex step only).

    >>> import numpy as np
    >>> float(default_steps("forward", np.array([4.0]), 2.0 ** -52)[0]) == 2 * 2.0 ** -26
    True
    """
    s = scale(x)
    if method in ("forward", "backward"):
        return np.sqrt(eps * s)
    if method == "central":
        return np.cbrt(eps * s)
    if method == "richardson":
        return RICHARDSON_BASE * nominal_scale(x)
    if method == "complex":
        return np.cbrt(tiny) * s
    raise NumericOptionError(  # pragma: no cover - checked by the caller
        f"unknown method {method!r}; use one of {METHODS}")


def representable(h: np.ndarray, x: np.ndarray, in_eps: float) -> np.ndarray:
    """``h``, raised where needed to ``MIN_ULPS`` units of ``x``'s precision, so that
    ``x +- h`` differs from ``x`` (large ``|x|`` in float32, where units are coarse).

    >>> import numpy as np
    >>> representable(np.array([1e-3, 1e-3]), np.array([1.0, 1e8]), 2.0 ** -23).tolist()
    [0.001, 11.920928955078125]
    """
    return np.maximum(h, MIN_ULPS * in_eps * np.abs(x))


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
