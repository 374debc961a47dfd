"""The public entry point :func:`jacobian`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import _validate
from .._modules import keeps_state
from ..config import format_bytes
from ..errors import DtypeError, JacobianTooLarge, NonFiniteInputError
from ._noise import noise_level
from ._problem import Problem
from ._steps import (
    METHODS,
    Method,
    NumericOptionError,
    default_steps,
    representable,
    user_steps,
)
from .complex_step import complex_step
from .differences import backward, central, forward
from .result import NumericJacobian
from .richardson import richardson

__all__ = ["jacobian"]


@keeps_state
def jacobian(
    f: Callable[..., Any],
    x: Any,
    method: Method = "richardson",
    *,
    step: Any = None,
    args: tuple = (),
    kwargs: dict[str, Any] | None = None,
    memory_budget: int | str | None = None,
) -> NumericJacobian:
    """Numerical Jacobian of a black-box ``f`` at ``x``, with an entrywise error estimate.

    Parameters
    ----------
    f:
        Called as ``f(x, *args, **kwargs)``; returns a number or an array of any fixed shape.
        It is only ever called on single points (never batched).
    x:
        The point: a float, list, NumPy array or torch tensor of any shape. NumPy-like inputs
        are computed in float64 (integers are converted) and give NumPy results. A tensor keeps
        its dtype and device: ``f`` receives tensors like ``x`` (under ``torch.no_grad()``)
        and the result is a tensor; float32 or lower precision triggers a warning, because
        finite differences then lose most digits. Where ``x``'s precision cannot take steps
        below the scale on which ``f`` varies (``sin`` in float32 beyond about ``1e6``, where
        neighbouring float32 numbers are ``0.06`` or more apart), no difference sees the
        derivative and the error estimate can be far too small: pass ``x.double()``.
    method:
        * ``"richardson"`` (default): adaptive Richardson extrapolation of central differences;
          typically 1e-13 relative or better, with a measured error estimate, in fewer calls
          than numdifftools' default ``Jacobian`` (six of them measure the noise of ``f``).
        * ``"central"``: one central difference with ``h = (eps max(|x|, 1))**(1/3)``, about
          1e-10 relative; ``4n + 7`` calls (the points ``x +- 2h`` measure the error, six
          more the noise of ``f``, which then sets ``eps``). Where ``|x|`` is so large that
          this step sits at ``x``'s last digits (``|x| > 1 / eps``), the step is retried at
          ``eps**(1/3) |x|`` (``v**2`` at ``1e150``: about 1e-11 relative).
        * ``"forward"``, ``"backward"``: one one-sided difference with
          ``h = (eps max(|x|, 1))**(1/2)``, about 1e-8 relative; ``2n + 7`` calls (the point
          ``x +- 2h`` measures the error, six more the noise); one-sided, so usable at the edge
          of ``f``'s domain.
        * ``"complex"``: complex step, ``h = 3e-103 max(|x|, 1)`` in float64, ``n + 4`` calls,
          exact to machine precision, but only for complex-analytic ``f``.
    step:
        Override the step: a positive number or an array broadcastable to ``x``'s shape. For
        ``"richardson"`` it is the largest step of the sequence.
    args, kwargs:
        Extra arguments passed to ``f``.
    memory_budget:
        Bytes for this call (an int or a string such as ``"512 MiB"``); ``None``: the thread's
        budget (:mod:`jacobite.config`). The result holds three ``(m, n)`` float64 arrays
        (``jacobian``, ``error``, ``step``); where they alone exceed the budget,
        :class:`~jacobite.errors.JacobianTooLarge` is raised after the one call ``f(x)`` that
        gives ``m`` and before anything of that size is allocated. The budget also bounds the
        working set of ``"richardson"`` (never its result).

    Returns
    -------
    NumericJacobian
        ``.jacobian`` (shape ``out_shape + in_shape``), ``.error``, ``.nfev``, ``.method``,
        ``.step``; ``.as_matrix()`` gives the ``(m, n)`` view.

    Raises
    ------
    NonFiniteInputError
        ``x`` or ``f(x)`` contains NaN/Inf, or ``f`` is not finite at the trial points; never
        a NaN Jacobian or error in silence.
    JacobianTooLarge
        The result would exceed ``memory_budget``.
    DtypeError
        ``x`` is an integer/bool/complex tensor (use ``x.double()``) or not numeric.
    OutputTypeError
        ``f`` returns something non-numeric, or complex values.
    UnsupportedOperationError
        ``method="complex"`` with a ``f`` that is not complex-analytic.

    >>> import numpy as np
    >>> res = jacobian(lambda v: np.array([v[0] * v[1], np.sin(v[0])]), [1.0, 2.0])
    >>> np.round(res.jacobian, 10)
    array([[2.    , 1.    ],
           [0.5403, 0.    ]])
    >>> res.jacobian.shape, bool(res.error.max() < 1e-12)
    ((2, 2), True)
    >>> import torch
    >>> jacobian(torch.exp, torch.tensor(0.0, dtype=torch.float64), method="complex").jacobian
    tensor(1., dtype=torch.float64)
    """
    if method not in METHODS:
        raise NumericOptionError(f"unknown method {method!r}; use one of {METHODS}")
    if (method == "complex" and isinstance(x, torch.Tensor) and x.is_floating_point()
            and x.dtype not in (torch.float32, torch.float64)):
        raise DtypeError(
            f"the complex step needs a float32 or float64 x, got {x.dtype}; pass x.double()"
        )
    budget = _validate.memory_budget(memory_budget)
    p = Problem(f, x, args, kwargs, method=method)
    _fits(p, budget)
    h = user_steps(step, p.in_shape) if step is not None else None
    if method == "richardson":
        jac, err, used = richardson(p, h, noise_level(p) if p.n and p.m else None, budget)
    elif p.n == 0 or p.m == 0:
        jac = err = used = np.zeros((p.m, p.n))
    elif method == "complex":
        tiny = float(torch.finfo(p.dtype).tiny)
        jac, err, used = complex_step(p, h if h is not None else default_steps(
            method, p.x, p.in_eps, tiny))
    else:
        noise = noise_level(p)
        refine = h is None  # a step the caller chose is kept
        if h is None:
            h = representable(default_steps(method, p.x, noise.relative), p.x, p.in_eps)
        scheme = {"forward": forward, "backward": backward, "central": central}[method]
        jac, err, used = scheme(p, h, noise, refine)
    _finite(jac, err)
    return NumericJacobian(
        jacobian=p.wrap(jac),
        error=p.wrap(err),
        nfev=p.nfev,
        method=method,
        step=p.wrap(used),
        in_shape=p.in_shape,
        out_shape=p.out_shape,
    )


#: arrays of the result's size that a numeric Jacobian holds: the values, the error, the step
RESULT_ARRAYS = 3


def _fits(p: Problem, budget: int) -> None:
    """Raise :class:`JacobianTooLarge` where the result alone would exceed ``budget``."""
    need = RESULT_ARRAYS * p.m * p.n * 8
    if need > budget:
        raise JacobianTooLarge(
            f"the numeric Jacobian of {p.m:,} outputs by {p.n:,} inputs would hold "
            f"{RESULT_ARRAYS} float64 arrays (values, error, step) of {p.m:,} x {p.n:,}, "
            f"{format_bytes(need)} in all, over the memory budget of {format_bytes(budget)}; "
            "differentiate a slice of the inputs at a time, use matrix-free products of "
            "jacobite.linearize(f, x) for a torch f, or raise the budget with memory_budget=... "
            "or jacobite.config.set_memory_budget(...)"
        )


def _finite(jac: np.ndarray, err: np.ndarray) -> None:
    """A NaN or Inf Jacobian or error is never returned: the arithmetic of the difference
    overflowed or ``f`` misbehaved at the trial points."""
    bad = ~(np.isfinite(jac) & np.isfinite(err))
    if bad.any():
        cols = sorted({int(c) for c in np.argwhere(bad)[:, 1]})
        raise NonFiniteInputError(
            f"the numeric Jacobian is not finite along flat input index(es) {cols[:5]} (f or "
            "its differences overflow at the trial points); pass step=... to choose the steps, "
            "or rescale f or x so that f stays well inside the float range"
        )
