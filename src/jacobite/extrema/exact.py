"""Critical points of an expression, exactly: solve ∇f = 0 with SymPy, classify by the Hessian.

SymPy's ``solve`` is complete for polynomial gradients with finitely many real solutions. For
other functions it may return only some critical points (e.g. one period of a periodic
function); every returned solution is checked by substitution. Solutions that leave a variable
free (a line of critical points, as for ``(x - y)**2``) are reported as non-isolated and
inconclusive — the Hessian is singular along such a family.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ExpressionError, UnsupportedOperationError, require
from ..symbolic import parse, resolve_variables
from .classify import _exact_inertia, kind_of
from .result import CriticalPoint

__all__ = ["exact_critical_points"]


def _is_real(sp: Any, v: Any) -> bool:
    if v.is_real is False:
        return False
    if v.free_symbols or v.is_real:
        return True
    re, im = v.evalf(50).as_real_imag()
    return abs(im) <= 1e-40 * max(1, abs(re))


def _vanishes(sp: Any, g: Any) -> bool:
    """``g == 0`` exactly, or to 40 digits where SymPy cannot simplify it (LambertW, ...)."""
    g = sp.simplify(g)
    if g == 0 or g.free_symbols:  # with free symbols: a family, solve's answer in the others
        return True
    return bool(abs(g.evalf(60)) < sp.Float("1e-40", 60))


def _solve(sp: Any, grad: list[Any], syms: tuple[Any, ...]) -> list[dict[Any, Any]]:
    if all(g == 0 for g in grad):  # f is constant: every point is critical
        return [{}]
    try:
        sols = sp.solve(grad, syms, dict=True)
    except (NotImplementedError, ValueError) as exc:
        raise UnsupportedOperationError(
            f"SymPy cannot solve grad f = 0 ({exc}); find critical points numerically with "
            "method='newton' and a starting point x0=... or a box=[(lo, hi), ...]") from exc
    return [s for s in sols if all(_is_real(sp, v) for v in s.values())]


def exact_critical_points(expr: Any, variables: Any = None) -> list[CriticalPoint]:
    """All critical points SymPy finds for a scalar expression, classified exactly.

    >>> pts = exact_critical_points("x**2 + 4*y**2 - 11*x + 8*y - 16")
    >>> pts
    [CriticalPoint(minimum at (x=11/2, y=-1), value=-201/4)]
    """
    sp = require("sympy", "symbolic")
    items = parse(expr)
    if len(items) != 1:
        raise ExpressionError(f"critical points need ONE scalar expression, got {len(items)} "
                              "components")
    (f,) = items
    syms = resolve_variables(items, variables)
    params = f.free_symbols - set(syms)
    if params:
        unknown = ", ".join(sorted(s.name for s in params))
        raise ExpressionError(f"f depends on {unknown}, which are not variables; substitute values "
                              "for them or list them in variables=...")
    names = [s.name for s in syms]
    grad = [sp.diff(f, s) for s in syms]
    H = sp.hessian(f, syms)
    out = []
    for sol in _solve(sp, grad, syms):
        vals = [sp.simplify(sol.get(s, s)) for s in syms]
        at = dict(zip(syms, vals, strict=True))
        if not all(_vanishes(sp, g.subs(at)) for g in grad):
            continue  # pragma: no cover - SymPy returned a spurious solution
        Hp = sp.simplify(H.subs(at)).as_immutable()
        value = sp.simplify(f.subs(at))
        point = dict(zip(names, vals, strict=True))
        if set().union(*(v.free_symbols for v in vals)):
            out.append(CriticalPoint(point, "inconclusive", value, Hp, None, None, True, False))
            continue
        kind = kind_of(*_exact_inertia(sp, Hp))
        Hf = np.array(Hp.evalf(30).tolist(), dtype=np.float64)
        eig = torch.from_numpy(np.linalg.eigvalsh(Hf))
        x = torch.tensor([float(v.evalf(30)) for v in vals], dtype=torch.float64)
        out.append(CriticalPoint(point, kind, value, Hp, eig, x, True, True))
    out.sort(key=lambda p: (not p.isolated, p.x.tolist() if p.x is not None else []))
    return out
