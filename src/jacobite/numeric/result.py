"""The result of :func:`jacobite.numeric.jacobian`: values, error estimates and call counts.

>>> import numpy as np
>>> from jacobite.numeric import jacobian
>>> res = jacobian(np.sin, np.ones(3), method="central")
>>> res.jacobian.shape, res.as_matrix().shape, res.nfev  # f(x), 6 for the noise, 4 per input
((3, 3), (3, 3), 19)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._steps import Method

__all__ = ["Array", "NumericJacobian"]

Array = np.ndarray | torch.Tensor


@dataclass(frozen=True, eq=False)
class NumericJacobian:
    """A numerically computed Jacobian with an entrywise error estimate.

    Attributes
    ----------
    jacobian:
        The Jacobian, shape ``out_shape + in_shape`` (``torch.func.jacrev``'s convention; the
        dimensions of a scalar input or output vanish). A NumPy array when ``x`` was NumPy-like,
        a tensor on ``x``'s device when ``x`` was a tensor.
    error:
        Nonnegative estimate of ``|jacobian - true Jacobian|``, entry by entry, same shape and
        type as ``jacobian``. It is an estimate, not a rigorous bound.
    nfev:
        Number of calls of ``f``, the evaluation at ``x`` itself included.
    method:
        ``"richardson"``, ``"central"``, ``"forward"``, ``"backward"`` or ``"complex"``.
    step:
        The step size behind each entry (same shape as ``jacobian``): for ``"richardson"`` the
        step of the finest difference the selected extrapolation used.
    in_shape, out_shape:
        Shapes of ``x`` and of ``f(x)``.

    >>> import numpy as np
    >>> from jacobite.numeric import jacobian
    >>> res = jacobian(lambda v: v ** 2, np.array([1.0, 2.0]))
    >>> np.round(res.jacobian, 12)
    array([[2., 0.],
           [0., 4.]])
    >>> bool((res.error < 1e-12).all())
    True
    """

    jacobian: Any
    error: Any
    nfev: int
    method: Method
    step: Any
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`jacobian`, ``out_shape + in_shape``.

        >>> import numpy as np
        >>> from jacobite.numeric import jacobian
        >>> jacobian(np.sum, np.ones((2, 3)), method="forward").shape
        (2, 3)
        """
        return tuple(self.out_shape) + tuple(self.in_shape)

    @property
    def m(self) -> int:
        """Number of scalar outputs (``prod(out_shape)``)."""
        return int(np.prod(self.out_shape, dtype=np.int64))

    @property
    def n(self) -> int:
        """Number of scalar inputs (``prod(in_shape)``)."""
        return int(np.prod(self.in_shape, dtype=np.int64))

    def as_matrix(self) -> Array:
        """The Jacobian as an ``(m, n)`` matrix (outputs flattened by rows, inputs by columns).

        >>> import numpy as np
        >>> from jacobite.numeric import jacobian
        >>> jacobian(np.sum, np.ones((2, 3)), method="forward").as_matrix().shape
        (1, 6)
        """
        return self.jacobian.reshape(self.m, self.n)

    @property
    def flat(self) -> Array:
        """Same as :meth:`as_matrix`: the ``(m, n)`` view of :attr:`jacobian`."""
        return self.as_matrix()

    def error_matrix(self) -> Array:
        """The error estimate as an ``(m, n)`` matrix, matching :meth:`as_matrix`.

        >>> import numpy as np
        >>> from jacobite.numeric import jacobian
        >>> jacobian(np.exp, 1.0).error_matrix().shape
        (1, 1)
        """
        return self.error.reshape(self.m, self.n)

    @property
    def max_error(self) -> float:
        """Largest entry of :attr:`error` (0.0 for an empty Jacobian).

        >>> import numpy as np
        >>> from jacobite.numeric import jacobian
        >>> jacobian(np.exp, 1.0, method="complex").max_error < 1e-14
        True
        """
        if self.m * self.n == 0:
            return 0.0
        return float(self.error.max())

    def __repr__(self) -> str:
        kind = "tensor" if isinstance(self.jacobian, torch.Tensor) else "ndarray"
        return (
            f"NumericJacobian(method={self.method!r}, shape={self.shape}, {kind}, "
            f"nfev={self.nfev}, max_error={self.max_error:.3g})"
        )
