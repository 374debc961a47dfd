"""Half precision for factorisations: LAPACK has no float16 / bfloat16 kernels, so the
operators factorise such matrices in float32 (complex32 in complex64) and return results in
their own dtype.

>>> import torch
>>> lapack(torch.eye(2, dtype=torch.bfloat16)).dtype
torch.float32
"""

from __future__ import annotations

import torch

__all__ = ["lapack", "lapack_dtype", "matrix_rank"]

#: Half precisions have no LAPACK kernels: they are factorised in the wider dtype, and results
#: go back to the operator's dtype.
_WIDER = {torch.float16: torch.float32, torch.bfloat16: torch.float32,
          torch.complex32: torch.complex64}


def lapack_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a factorisation of ``dtype`` runs in: float32 (complex64) for half precision.

    >>> lapack_dtype(torch.bfloat16), lapack_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    return _WIDER.get(dtype, dtype)


def lapack(t: torch.Tensor) -> torch.Tensor:
    """``t`` in :func:`lapack_dtype` (itself unless it is half precision).

    >>> torch.linalg.eigvalsh(lapack(torch.eye(2, dtype=torch.float16)))
    tensor([1., 1.])
    """
    return t.to(lapack_dtype(t.dtype))


def matrix_rank(a: torch.Tensor, atol: float | None = None) -> int:
    """``torch.linalg.matrix_rank``; half precision in float32 with the tolerance of its own
    rounding (``max(m, n) · eps``), not float32's.

    >>> matrix_rank(torch.ones(3, 3, dtype=torch.bfloat16))
    1
    """
    if a.dtype in _WIDER and atol is None:
        rtol = max(a.shape[-2:]) * torch.finfo(a.real.dtype if a.is_complex() else a.dtype).eps
        return int(torch.linalg.matrix_rank(lapack(a), rtol=rtol))
    return int(torch.linalg.matrix_rank(lapack(a), atol=atol))
