"""What a ``jac`` callable returns, as the solvers' matrix: dense float64 or CSR.

A dense tensor or array is either ``m × n`` or ``∂out/∂x`` with the shapes of ``fun``'s output
and of ``x`` joined (0-d and 1-d read as one row, as SciPy reads them); a SciPy sparse matrix
and a torch sparse tensor become CSR; a :class:`~scipy.sparse.linalg.LinearOperator` is
materialised by products (:func:`._fd.as_matrix`).

>>> import numpy as np
>>> as_jacobian(np.array([1.0, 2.0]), 1, 2, (), (2,), None)[0].tolist()
[[1.0, 2.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._scipy import is_linear_operator, issparse
from ._fd import as_matrix

__all__ = ["as_jacobian"]


def as_jacobian(out: Any, m: int, n: int, out_shape: tuple[int, ...],
                in_shape: tuple[int, ...], sparsity: Any) -> tuple[Any, bool]:
    """``(J, operator)``: ``out`` as a dense float64 array or CSR matrix, and whether it was a
    ``LinearOperator``. The shape is the caller's to check."""
    if is_linear_operator(out):
        return as_matrix(out, n, sparsity), True
    if issparse(out):
        import scipy.sparse as sp

        return sp.csr_matrix(out, dtype=np.float64), False
    if isinstance(out, torch.Tensor) and out.layout != torch.strided:
        import scipy.sparse as sp  # a torch sparse Jacobian becomes CSR

        t = out.detach().to("cpu", torch.float64)
        c = t.coalesce() if t.is_sparse else t.to_sparse_coo().coalesce()
        idx = c.indices().numpy()
        return sp.csr_matrix((c.values().numpy(), (idx[0], idx[1])), shape=tuple(c.shape)), False
    J = out.detach().to("cpu", torch.float64).numpy() if isinstance(out, torch.Tensor) else \
        np.asarray(out, dtype=np.float64)
    if J.shape == (*out_shape, *in_shape) or J.ndim < 2:  # SciPy reads 0-d / 1-d as one row
        J = J.reshape(m, n) if J.size == m * n else np.atleast_2d(J)
    return J, False
