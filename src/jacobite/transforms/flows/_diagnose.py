"""Name the bug behind claimed log-dets that disagree with the exact ones.

Given per-sample ``claimed`` and ``exact`` values and a per-sample tolerance, the first pattern
that explains every sample wins: ``"sign flipped"`` (claimed ≈ −exact), ``"constant offset"``
(claimed − exact ≈ c ≠ 0), ``"scale"`` (claimed ≈ s·exact, s ≠ 1), ``"wrong in some samples"``
(most agree, fewer than half do not), else ``"wrong"``.

>>> import torch
>>> e = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64)
>>> diagnose(-e, e, torch.full_like(e, 1e-9))[0]
'sign flipped'
>>> diagnose(e + 0.5, e, torch.full_like(e, 1e-9))
('constant offset', 0.5)
"""

from __future__ import annotations

import torch

__all__ = ["FIXES", "diagnose"]

#: what each diagnosis most often means, and its fix
FIXES = {
    "sign flipped": "the transform returns log|det| of the inverse map (or negates it): return "
                    "+log|det J| of the forward map, or check the inverse/forward direction",
    "constant offset": "a term that does not depend on x is dropped or added (a D·log σ, a "
                       "log 2, a normalising constant): add the missing constant to the log-det",
    "scale": "the log-det is a multiple of the exact one (a sum taken twice, log det² instead "
             "of log|det|, a missing 1/2): divide the log-det by the factor",
    "wrong in some samples": "only these samples disagree: look for a reduction that mixes "
                             "samples, a clamp or a branch those inputs take, or saturation",
    "wrong": "the log-det has no simple relation to log|det J|: compute it from the same "
             "quantities the forward map uses, layer by layer",
}


def _fits(residual: torch.Tensor, tol: torch.Tensor) -> bool:
    return bool((residual.abs() <= tol).all())


def diagnose(claimed: torch.Tensor, exact: torch.Tensor,
             tol: torch.Tensor) -> tuple[str, float | None]:
    """``(diagnosis, parameter)``: the offset c or the factor s where the pattern has one."""
    bad = (claimed - exact).abs() > tol
    if not bool(bad.any()):
        return "ok", None
    n = claimed.numel()
    if bool((exact.abs() > tol).any()) and _fits(claimed + exact, tol):
        return "sign flipped", None
    if n >= 2:
        d = claimed - exact
        c = float(d.median())
        if _fits(d - c, tol) and abs(c) > float(tol.min()):
            return "constant offset", c
        ee = float((exact * exact).sum())
        spread = float(exact.max() - exact.min())
        if ee > 0 and spread > float(tol.max()):
            s = float((claimed * exact).sum()) / ee
            if _fits(claimed - s * exact, tol):
                return "scale", s
    if n >= 3 and 2 * int(bad.sum()) < n:
        return "wrong in some samples", None
    return "wrong", None
