"""Checks of an operator's factorising methods against torch.linalg on the dense matrix it
should represent.

>>> import torch
>>> from jacobite.operators import DenseOperator
>>> D = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
>>> assert_solve_and_slogdet_equal_dense(DenseOperator(D), D, torch.ones(2, dtype=torch.float64))
"""

from __future__ import annotations

from typing import Any

import torch


def assert_solve_and_slogdet_equal_dense(op: Any, D: torch.Tensor, b: torch.Tensor,
                                         solve_rtol: float = 1e-8) -> None:
    """``op.solve(b)`` equals ``torch.linalg.solve(D, b)`` (to ``solve_rtol``, atol 1e-9) and
    ``op.slogdet()`` equals ``torch.linalg.slogdet(D)``: the same sign, the log |det| to 1e-9."""
    torch.testing.assert_close(op.solve(b), torch.linalg.solve(D, b), rtol=solve_rtol, atol=1e-9)
    sign, lad = op.slogdet()
    ref_sign, ref_lad = torch.linalg.slogdet(D)
    assert float(sign) == float(ref_sign)
    torch.testing.assert_close(lad, ref_lad, rtol=1e-9, atol=1e-9)
