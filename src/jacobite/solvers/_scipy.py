"""Cheap questions about SciPy objects that never import SciPy.

Importing ``scipy.sparse`` costs more than a small least-squares solve, so the solvers import it
only where a sparse matrix, LSMR or a ``LinearOperator`` is really used. Asking whether a value
*is* one of those needs no import: an object cannot be a SciPy sparse matrix (or operator) unless
its module was loaded, so these look in :data:`sys.modules` first.

>>> import numpy as np
>>> issparse(np.eye(2))
False
>>> import scipy.sparse
>>> issparse(scipy.sparse.eye(2))
True
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["is_linear_operator", "issparse"]


def issparse(x: Any) -> bool:
    """Whether ``x`` is a SciPy sparse matrix or array, without importing ``scipy.sparse``.

    >>> issparse([[1.0]])
    False
    """
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and bool(sparse.issparse(x))


def is_linear_operator(x: Any) -> bool:
    """Whether ``x`` is a SciPy ``LinearOperator``, without importing ``scipy.sparse.linalg``.

    >>> is_linear_operator(lambda v: v)
    False
    """
    linalg = sys.modules.get("scipy.sparse.linalg")
    return linalg is not None and isinstance(x, linalg.LinearOperator)
