"""``jacobite extrema "x**2 + 4*y**2 - 11*x + 8*y - 16"``: critical points and their kind."""

from __future__ import annotations

import argparse
from typing import Any

from ...errors import InvalidOptionError
from .. import _budget
from .._app import console, emit_json, esc, plain, split_list

HELP = "critical points of a scalar expression, classified by the Hessian"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expression", help='a scalar expression, e.g. "x**2 + 4*y**2 - 11*x"')
    p.add_argument("--vars", default=None,
                   help="variable order, e.g. x,y (default: sorted); must name every variable")
    p.add_argument("--method", choices=("auto", "symbolic", "newton"), default="auto",
                   help="symbolic: exact points by SymPy; newton: Newton's method on the "
                        "gradient from --x0 or --box; auto (default): symbolic, then Newton "
                        "when SymPy cannot solve and --x0 or --box is given")
    p.add_argument("--x0", action="append", default=None, metavar="X,Y,...",
                   help="a starting point for Newton, in --vars order; repeatable")
    p.add_argument("--box", default=None, metavar="LO:HI,...",
                   help="instead of --x0: a box to search with Newton, one LO:HI per variable")


def _numbers(text: str, flag: str, example: str) -> list[float]:
    items = split_list(text, flag, example)
    try:
        return [float(v) for v in items]
    except ValueError:
        raise InvalidOptionError(f"cannot read {flag} {text!r}; write numbers separated by "
                                 f"commas, e.g. {flag} {example}") from None


def _box(text: str) -> list[tuple[float, float]]:
    out = []
    for part in split_list(text, "--box", "-2:2,-2:2"):
        lo, sep, hi = part.partition(":")
        pair = _numbers(f"{lo},{hi}", "--box", "-2:2,-2:2") if sep else []
        if len(pair) != 2 or not pair[0] < pair[1]:
            raise InvalidOptionError(f"cannot read {part!r} in --box; write LO:HI with LO < HI "
                                     "for each variable, e.g. --box -2:2,-2:2")
        out.append((pair[0], pair[1]))
    return out


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _too_large_for_sympy(expression: str, vars: str | None, method: str, have_start: bool) -> bool:
    """The pre-flight checks before SymPy's solve: True where the exact system is too large and
    ``--method auto`` has a start for Newton; refused where it has none."""
    from ... import symbolic
    from ...errors import JacobiteError

    items = symbolic.parse(expression)
    _budget.check_tower(items)
    _budget.check_magnitude(items, {}, "as written")
    try:
        syms = symbolic.resolve_variables(items, vars)
        (f,) = items
    except (JacobiteError, ValueError):
        return False  # critical_points says what is wrong
    try:
        _budget.check_extrema(f, syms)
    except JacobiteError:
        if method == "auto" and have_start:
            return True
        raise
    return False


def compute(expression: str, vars: str | None = None, method: str = "auto",
            x0: list[str] | None = None, box: str | None = None) -> dict[str, Any]:
    from ...extrema import critical_points

    if vars is not None:
        vars = ",".join(split_list(vars, "--vars", "x,y"))
    if x0 is not None and box is not None:
        raise InvalidOptionError("give either --x0 or --box, not both")
    starts = None if x0 is None else [_numbers(t, "--x0", "1,2") for t in x0]
    if starts is not None and len({len(s) for s in starts}) > 1:
        raise InvalidOptionError("every --x0 needs one number per variable")
    have_start = starts is not None or box is not None
    if method in ("auto", "symbolic") and _too_large_for_sympy(expression, vars, method,
                                                               have_start):
        method = "newton"  # auto with a start: straight to Newton
    points = critical_points(expression, vars, method=method,  # type: ignore[arg-type]
                             x0=starts, box=None if box is None else _box(box))
    rows = []
    for cp in points:
        rows.append({
            "point": {k: _num(v) for k, v in cp.point.items()},
            "point_exact": {k: str(v) for k, v in cp.point.items()},
            "kind": cp.kind,
            "value": _num(cp.value),
            "value_exact": str(cp.value),
            "hessian": [[_num(v) for v in row] for row in cp.hessian.tolist()],
            "eigenvalues": plain(cp.eigenvalues) if cp.eigenvalues is not None else None,
            "isolated": cp.isolated,
        })
    return {"function": expression, "critical_points": rows}


def run(args: argparse.Namespace) -> int:
    data = compute(args.expression, args.vars, args.method, args.x0, args.box)
    if args.json:
        emit_json(data)
        return 0
    c = console()
    pts = data["critical_points"]
    c.print(f"f = {esc(data['function'])}: {len(pts)} critical point(s)")
    for cp in pts:
        where = ", ".join(f"{k} = {v}" for k, v in cp["point_exact"].items())
        c.print(f"  ({esc(where)}): [bold]{cp['kind']}[/], f = {esc(cp['value_exact'])}, "
                f"Hessian {esc(cp['hessian'])}, eigenvalues {esc(cp['eigenvalues'])}")
    return 0
