"""``jacobite extrema "x**2 + 4*y**2 - 11*x + 8*y - 16"``: critical points and their kind."""

from __future__ import annotations

import argparse
from typing import Any

from .._app import console, emit_json, esc, plain

HELP = "critical points of a scalar expression, classified by the Hessian"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expression", help='a scalar expression, e.g. "x**2 + 4*y**2 - 11*x"')
    p.add_argument("--vars", default=None, help="variable order, e.g. x,y (default: sorted)")


def _num(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def compute(expression: str, vars: str | None = None) -> dict[str, Any]:
    from ...extrema import critical_points

    points = critical_points(expression, vars, method="symbolic")
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
    data = compute(args.expression, args.vars)
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
