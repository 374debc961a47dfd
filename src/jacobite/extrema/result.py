"""``CriticalPoint``: one point where the gradient vanishes, with its classification."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ExpressionError

__all__ = ["CriticalPoint"]


@dataclass(frozen=True, eq=False)
class CriticalPoint:
    """A critical point of a scalar function and its second-derivative test.

    Attributes:
        point: variable name -> coordinate: exact SymPy numbers on the symbolic path (e.g.
            ``Rational(11, 2)``), floats on the Newton path. For a non-isolated family of
            critical points (``isolated=False``) some coordinates are expressions in the others.
        kind: ``"minimum"``, ``"maximum"``, ``"saddle"`` or ``"inconclusive"`` (a zero eigenvalue
            without eigenvalues of both signs: the test cannot decide).
        value: ``f`` at the point (exact or float).
        hessian: the Hessian at the point: an exact SymPy matrix or a float64 tensor.
        eigenvalues: its eigenvalues, ascending, float64 (``None`` for a family).
        x: the coordinates as a float64 tensor in variable order (``None`` for a family).
        exact: found symbolically (``True``) or by Newton's method (``False``).
        isolated: ``False`` when the point lies on a curve/surface of critical points.
    """

    point: dict[str, Any]
    kind: str
    value: Any
    hessian: Any
    eigenvalues: torch.Tensor | None
    x: torch.Tensor | None
    exact: bool
    isolated: bool = True

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names, in order."""
        return tuple(self.point)

    def as_floats(self) -> dict[str, float]:
        """``point`` with float coordinates (isolated points only)."""
        if self.x is None:
            raise ExpressionError("this critical point is a family (isolated=False); its "
                                  "coordinates depend on each other, see .point")
        return {k: float(v) for k, v in zip(self.point, self.x.tolist(), strict=True)}

    def __repr__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.point.items())
        fam = "" if self.isolated else " (non-isolated)"
        return f"CriticalPoint({self.kind} at ({where}){fam}, value={self.value})"
