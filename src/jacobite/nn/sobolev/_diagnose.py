"""What went wrong with supplied per-sample Jacobians: the usual bugs of gradient data.

:func:`diagnose_many` compares supplied ``(B, m, n)`` Jacobians ``D`` with references ``J``
(within entrywise tolerances ``T``) against the mistakes that turn up in training data: zeros
written for missing partials, a flipped sign, a constant factor (degrees against radians), a
transpose, exchanged columns (inputs) or rows (outputs). NaN entries of ``D`` are missing
partials and never compared. The tests run on the whole batch at once; only the search for
the order of exchanged columns or rows walks the candidates one by one. :func:`diagnose` is
the same for one sample.

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

__all__ = ["Diagnosis", "diagnose", "diagnose_many", "factor_hint"]

#: entries of the (samples, rows, columns, columns) comparison of all column pairs per chunk
_PAIR_CHUNK = 2**22


@dataclass(frozen=True)
class Diagnosis:
    """``kind``: ``"zeros"``, ``"sign"``, ``"scaled"``, ``"transposed"``,
    ``"swapped_columns"``, ``"swapped_rows"`` or ``"mismatch"``; ``detail``: one readable line;
    ``factor``: the constant of ``"scaled"``; ``order``: for swapped columns / rows, the index
    list that puts them back (``dydx[..., order]`` / ``dydx[..., order, :]``)."""

    kind: str
    detail: str
    factor: float | None = None
    order: tuple[int, ...] | None = None


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


def _pairs(D: torch.Tensor, J: torch.Tensor, T: torch.Tensor,
           known: torch.Tensor) -> list[list[list[bool]]]:
    """``[b][c][j]``: column ``c`` of ``D[b]`` matches column ``j`` of ``J[b]``."""
    B, m, n = J.shape
    step = max(1, _PAIR_CHUNK // max(m * n * n, 1))
    out: list[list[list[bool]]] = []
    for s in range(0, B, step):
        d, r, t, k = (a[s:s + step] for a in (D, J, T, known))
        ok = ((d[:, :, :, None] - r[:, :, None, :]).abs() <= t[:, :, None, :]) | \
            ~k[:, :, :, None]
        out.extend(ok.all(1).tolist())
    return out


def _order(match: list[list[bool]]) -> tuple[int, ...] | None:
    """``order`` with ``D[:, order] ≈ J`` where the columns that disagree are those of ``J`` in
    another order (found greedily), else ``None``."""
    n = len(match)
    wrong = [c for c in range(n) if not match[c][c]]
    if len(wrong) < 2:
        return None
    order, used = list(range(n)), set()
    for j in wrong:  # the column of D that holds J's column j
        hit = next((c for c in wrong if c != j and c not in used and match[c][j]), None)
        if hit is None:
            return None
        used.add(hit)
        order[j] = hit
    return tuple(order)


def diagnose_many(D: torch.Tensor, J: torch.Tensor, T: torch.Tensor,
                  known: torch.Tensor | None = None) -> list[Diagnosis]:
    """The likeliest explanation of ``D[b] ≠ J[b]`` for each sample (``(B, m, n)`` each)."""
    known = ~torch.isnan(D) if known is None else known
    B, m, n = J.shape
    Dk, Jk = torch.where(known, D, 0), torch.where(known, J, 0)

    def close(R: torch.Tensor, TR: torch.Tensor) -> list[bool]:
        return (((Dk - R).abs() <= TR) | ~known).flatten(1).all(1).tolist()

    zeros = ((Dk == 0) | ~known).flatten(1).all(1).tolist()
    sign = close(-J, T)
    jj = (Jk * Jk).sum((1, 2))
    c = ((Dk * Jk).sum((1, 2)) / torch.where(jj > 0, jj, 1)).nan_to_num(0, 0, 0)
    cb = c[:, None, None]
    scaled = ((jj > 0) & (c != 0)).tolist()
    scaled = [a and b for a, b in zip(scaled, close(cb * J, cb.abs() * T), strict=True)]
    transposed = close(J.mT, T.mT) if m == n else [False] * B
    rest = [b for b in range(B) if not (zeros[b] or sign[b] or scaled[b] or transposed[b])]
    idx = torch.tensor(rest, dtype=torch.long, device=J.device)
    cols = _pairs(Dk[idx], J[idx], T[idx], known[idx]) if rest else []
    rows = _pairs(Dk[idx].mT, J[idx].mT, T[idx].mT, known[idx].mT) if rest else []
    gap = torch.where(known, (D - J).abs(), 0).nan_to_num(nan=math.inf).flatten(1)
    worst = gap.argmax(1)[:, None]
    d_w = D.flatten(1).gather(1, worst)[:, 0].tolist()
    j_w = J.flatten(1).gather(1, worst)[:, 0].tolist()
    worst_l, c_l = worst[:, 0].tolist(), c.tolist()
    out: list[Diagnosis] = []
    k = 0
    for b in range(B):
        if zeros[b]:
            out.append(Diagnosis("zeros", "dydx is zero where ∂f/∂x is not (missing partials "
                                          "filled with 0?)"))
        elif sign[b]:
            out.append(Diagnosis("sign", "dydx ≈ −∂f/∂x (sign flipped)", factor=-1.0))
        elif scaled[b]:
            out.append(Diagnosis("scaled", f"dydx ≈ {c_l[b]:.6g} × ∂f/∂x{factor_hint(c_l[b])}",
                                 factor=c_l[b]))
        elif transposed[b]:
            out.append(Diagnosis("transposed", "dydx ≈ (∂f/∂x)ᵀ (rows and columns exchanged)"))
        else:
            out.append(_permuted(cols[k], rows[k], worst_l[b], d_w[b], j_w[b], n))
            k += 1
    return out


def _permuted(cols: list[list[bool]], rows: list[list[bool]], worst: int, d: float, j: float,
              n: int) -> Diagnosis:
    order = _order(cols)
    if order is not None:
        moved = [c for c in range(len(order)) if order[c] != c]
        return Diagnosis("swapped_columns", f"columns (inputs) {moved} of dydx are out of order",
                         order=order)
    order = _order(rows)
    if order is not None:
        moved = [r for r in range(len(order)) if order[r] != r]
        return Diagnosis("swapped_rows", f"rows (outputs) {moved} of dydx are out of order",
                         order=order)
    r, c = divmod(worst, n)
    return Diagnosis("mismatch", f"worst entry [{r}, {c}]: dydx = {d:.6g}, ∂f/∂x = {j:.6g}")


def diagnose(D: torch.Tensor, J: torch.Tensor, T: torch.Tensor,
             known: torch.Tensor | None = None) -> Diagnosis:
    """:func:`diagnose_many` for one sample (``(m, n)`` each)."""
    return diagnose_many(D[None], J[None], T[None], None if known is None else known[None])[0]
