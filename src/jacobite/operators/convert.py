"""Turn matrices of any common kind into a :class:`JacobianOperator`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _validate
from ..errors import DtypeError
from .base import JacobianOperator
from .dense import DenseOperator
from .function import FunctionOperator
from .sparse import SparseOperator

__all__ = ["as_operator"]


def as_operator(x: Any, *, dtype: torch.dtype | None = None) -> JacobianOperator:
    """Wrap ``x`` as an operator: operators pass through, dense tensors/arrays become
    :class:`DenseOperator`, sparse ones :class:`SparseOperator`, and a SciPy
    ``LinearOperator`` a :class:`FunctionOperator` (``dtype`` defaults to its dtype).

    >>> import torch
    >>> as_operator(torch.eye(2)).shape
    (2, 2)
    >>> import scipy.sparse as sp
    >>> type(as_operator(sp.eye(3))).__name__
    'SparseOperator'
    """
    if isinstance(x, JacobianOperator):
        return x
    if dtype is not None:
        dtype = _validate.floating_dtype(dtype)
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    if sp.issparse(x) or (isinstance(x, torch.Tensor) and x.layout != torch.strided):
        return SparseOperator(x, dtype=dtype)
    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(x)
        return DenseOperator(t if dtype is None else t.to(dtype))
    if isinstance(x, spla.LinearOperator):
        np_dtype = np.dtype(x.dtype) if x.dtype is not None else np.dtype(np.float64)
        dt = dtype or torch.from_numpy(np.zeros(0, dtype=np_dtype)).dtype

        def mv(v: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x.matvec(v.detach().cpu().numpy())), dtype=dt)

        def rmv(u: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x.rmatvec(u.detach().cpu().numpy())), dtype=dt)

        return FunctionOperator(x.shape, lambda v: mv(v).reshape(-1),
                                lambda u: rmv(u).reshape(-1), dtype=dt)
    raise DtypeError(
        f"cannot turn a {type(x).__name__} into an operator; pass a torch.Tensor, a NumPy array, "
        f"a scipy.sparse matrix, a scipy LinearOperator or a JacobianOperator"
    )
