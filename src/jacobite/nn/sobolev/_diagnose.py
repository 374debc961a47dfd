"""What went wrong with one sample's supplied Jacobian: the usual bugs of gradient data.

:func:`diagnose` compares a supplied ``(m, n)`` Jacobian ``D`` with a reference ``J`` (within an
entrywise tolerance ``T``) against the mistakes that turn up in training data: a flipped sign,
a constant factor (degrees against radians), a transpose, exchanged columns (inputs) or rows
(outputs). NaN entries of ``D`` are missing partials and never compared.

>>> import torch
>>> J = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
>>> T = torch.full_like(J, 1e-9)
>>> diagnose(-J, J, T).kind, diagnose(J.T, J, T).kind, diagnose(J[:, [1, 0]], J, T).kind
('sign', 'transposed', 'swapped_columns')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Diagnosis", "diagnose", "factor_hint"]


@dataclass(frozen=True)
class Diagnosis:
    """``kind``: ``"zeros"``, ``"sign"``, ``"scaled"``, ``"transposed"``, ``"swapped_columns"``,
    ``"swapped_rows"`` or ``"mismatch"``; ``detail``: one readable line; ``factor``: the
    constant of ``"scaled"``; ``order``: for swapped columns / rows, the index list that puts
    them back (``dydx[..., order]`` / ``dydx[..., order, :]``)."""

    kind: str
    detail: str
    factor: float | None = None
    order: tuple[int, ...] | None = None


def _close(D: torch.Tensor, R: torch.Tensor, T: torch.Tensor, known: torch.Tensor) -> bool:
    return bool(((D - R).abs() <= T)[known].all())


def factor_hint(c: float) -> str:
    """A name for a common wrong factor: degrees against radians, percent."""
    named = {math.pi / 180: "π/180: derivatives per degree where x is in radians; "
                            "multiply them by 180/π",
             180 / math.pi: "180/π: derivatives per radian where x is in degrees; "
                            "multiply them by π/180",
             0.01: "1/100: percent", 100.0: "100: percent"}
    for v, text in named.items():
        if abs(abs(c) - v) <= 1e-3 * v:
            return f" (≈ {'-' if c < 0 else ''}{text})"
    return ""


def _permutation(D: torch.Tensor, J: torch.Tensor, T: torch.Tensor,
                 known: torch.Tensor) -> tuple[int, ...] | None:
    """``order`` with ``D[:, order] ≈ J`` where the columns of ``D`` are those of ``J`` in
    another order (only the columns that disagree are moved), else ``None``."""
    n = J.shape[1]
    wrong = [c for c in range(n) if not _close(D[:, c], J[:, c], T[:, c], known[:, c])]
    if len(wrong) < 2:
        return None
    order = list(range(n))
    used: set[int] = set()
    for j in wrong:  # the column of D that holds J's column j
        hit = next((c for c in wrong if c not in used and c != j
                    and _close(D[:, c], J[:, j], T[:, j], known[:, c])), None)
        if hit is None:
            return None
        used.add(hit)
        order[j] = hit
    return tuple(order)


def diagnose(D: torch.Tensor, J: torch.Tensor, T: torch.Tensor,
             known: torch.Tensor | None = None) -> Diagnosis:
    """The likeliest explanation of ``D ≠ J`` for one sample (``(m, n)`` each)."""
    known = ~torch.isnan(D) if known is None else known
    m, n = J.shape
    if bool((D[known] == 0).all()):
        return Diagnosis("zeros", "dydx is zero where ∂f/∂x is not (missing partials filled "
                                  "with 0?)")
    if _close(D, -J, T, known):
        return Diagnosis("sign", "dydx ≈ −∂f/∂x (sign flipped)", factor=-1.0)
    Dk, Jk = torch.where(known, D, 0), torch.where(known, J, 0)
    jj = float((Jk * Jk).sum())
    if jj > 0 and math.isfinite(float(Dk.sum())):
        c = float((Dk * Jk).sum()) / jj
        if c != 0 and _close(D, c * J, abs(c) * T, known):
            return Diagnosis("scaled", f"dydx ≈ {c:.6g} × ∂f/∂x{factor_hint(c)}", factor=c)
    if m == n and _close(D, J.T, T.T, known):
        return Diagnosis("transposed", "dydx ≈ (∂f/∂x)ᵀ (rows and columns exchanged)")
    cols = _permutation(D, J, T, known)
    if cols is not None:
        moved = [c for c in range(n) if cols[c] != c]
        return Diagnosis("swapped_columns", f"columns (inputs) {moved} of dydx are out of order",
                         order=cols)
    rows = _permutation(D.T, J.T, T.T, known.T)
    if rows is not None:
        moved = [r for r in range(m) if rows[r] != r]
        return Diagnosis("swapped_rows", f"rows (outputs) {moved} of dydx are out of order",
                         order=rows)
    gap = torch.where(known, (D - J).abs(), 0).nan_to_num(nan=math.inf)
    r, c = divmod(int(gap.argmax()), n)
    return Diagnosis("mismatch", f"worst entry [{r}, {c}]: dydx = {float(D[r, c]):.6g}, "
                                 f"∂f/∂x = {float(J[r, c]):.6g}")
