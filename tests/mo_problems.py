"""Jacobians for the multi-objective aggregators, shared by the tests (and benchmarks).

``random_jacobian`` draws rows with unequal scales (log-normal row norms) and conflicts (rows
pulled against the first one); ``DEGENERATE`` holds the hard cases every aggregator must survive:
zero rows, duplicate rows, one row, rank-deficient J, exactly opposite rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DT = torch.float64


def random_jacobian(m: int, n: int, seed: int, *, scale_spread: float = 1.5,
                    conflict: float = 0.8, dtype: torch.dtype = DT) -> torch.Tensor:
    """An (m, n) Jacobian: Gaussian rows with norms spread by ``exp(scale_spread · N(0, 1))``
    and the rows after the first pulled against it (``gᵢ ← gᵢ − conflict · U(0, 1) · ‖gᵢ‖ ĝ₀``),
    so that many pairs of rows conflict."""
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(m, n, dtype=DT, generator=g)
    if m > 1:
        u0 = J[0] / J[0].norm()
        norms = J[1:].norm(dim=1, keepdim=True)
        pull = conflict * torch.rand(m - 1, 1, dtype=DT, generator=g) * norms
        J[1:] -= pull * u0
    J *= torch.exp(scale_spread * torch.randn(m, 1, dtype=DT, generator=g))
    return J.to(dtype)


def _zero_rows() -> torch.Tensor:
    J = random_jacobian(5, 12, 1)
    J[[1, 3]] = 0.0
    return J


def _duplicate_rows() -> torch.Tensor:
    J = random_jacobian(4, 10, 2)
    return torch.cat([J, J[:2]])


def _one_row() -> torch.Tensor:
    return random_jacobian(1, 7, 3)


def _rank_deficient() -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    A = torch.randn(6, 2, dtype=DT, generator=g)
    B = torch.randn(2, 9, dtype=DT, generator=g)
    return A @ B  # rank 2, six rows


def _opposite_rows() -> torch.Tensor:
    J = random_jacobian(3, 8, 5)
    J[1] = -2.0 * J[0]
    return J


def _more_rows_than_columns() -> torch.Tensor:
    return random_jacobian(8, 3, 6)


#: name -> builder of a degenerate Jacobian (float64)
DEGENERATE: dict[str, Callable[[], torch.Tensor]] = {
    "zero_rows": _zero_rows,
    "duplicate_rows": _duplicate_rows,
    "one_row": _one_row,
    "rank_deficient": _rank_deficient,
    "opposite_rows": _opposite_rows,
    "more_rows_than_columns": _more_rows_than_columns,
}
