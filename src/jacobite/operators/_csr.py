"""Conversions between torch sparse CSR tensors, scipy CSR arrays and dense tensors."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import DtypeError

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp


def csr_tensor(
    crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """A torch CSR tensor from its arrays (int64 indices), without torch's beta warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(
            crow.to(torch.int64), col.to(torch.int64), values, size=shape, check_invariants=False
        )


def dense_to_csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return dense.to_sparse_csr()


def to_torch_csr(matrix: Any) -> torch.Tensor:
    """Any torch sparse layout (COO, CSR, CSC) as a torch CSR tensor."""
    if matrix.layout == torch.sparse_csr:
        return matrix  # already CSR (every evaluated sparse Jacobian): no conversion to silence
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        if matrix.layout == torch.sparse_coo:
            matrix = matrix.coalesce()
        if matrix.layout != torch.sparse_csr:
            matrix = matrix.to_sparse_csr()
    return matrix


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    try:
        return torch.empty((), dtype=dtype).numpy().dtype
    except TypeError as exc:
        raise DtypeError(
            f"dtype {dtype} has no NumPy/SciPy equivalent; build the operator in torch.float32 "
            f"or torch.float64 to use SciPy-based methods"
        ) from exc


def scipy_to_torch(matrix: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A scipy sparse matrix/array as a torch CSR tensor of ``dtype`` on ``device``."""
    import scipy.sparse as sp

    csr = sp.csr_array(matrix)
    csr.sum_duplicates()
    crow = torch.from_numpy(np.asarray(csr.indptr, dtype=np.int64)).to(device)
    col = torch.from_numpy(np.asarray(csr.indices, dtype=np.int64)).to(device)
    values = torch.from_numpy(np.ascontiguousarray(csr.data)).to(dtype=dtype, device=device)
    return csr_tensor(crow, col, values, (int(csr.shape[0]), int(csr.shape[1])))


def torch_to_scipy(matrix: torch.Tensor) -> sp.csr_array:
    """A torch CSR tensor as a ``scipy.sparse.csr_array`` (values copied to the CPU; bfloat16,
    which NumPy lacks, as float32)."""
    import scipy.sparse as sp

    matrix = to_torch_csr(matrix)
    values = matrix.values().detach().cpu()
    if values.dtype == torch.bfloat16:  # NumPy has no bfloat16: the values in float32
        values = values.float()
    numpy_dtype(values.dtype)
    return sp.csr_array(
        (values.numpy(), matrix.col_indices().cpu().numpy(), matrix.crow_indices().cpu().numpy()),
        shape=tuple(matrix.shape),
    )


def csr_transpose(matrix: torch.Tensor) -> torch.Tensor:
    """CSR of ``matrix.T``: the CSC arrays of ``matrix`` read as CSR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        csc = matrix.to_sparse_csc()
    m, n = matrix.shape
    return csr_tensor(csc.ccol_indices(), csc.row_indices(), csc.values(), (n, m))


def csr_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """Main diagonal of a torch CSR tensor without densifying."""
    m, n = matrix.shape
    crow, col, values = matrix.crow_indices(), matrix.col_indices(), matrix.values()
    rows = torch.repeat_interleave(torch.arange(m, device=values.device), crow.diff())
    hit = rows == col
    out = torch.zeros(min(m, n), dtype=values.dtype, device=values.device)
    return out.index_add(0, rows[hit], values[hit])
