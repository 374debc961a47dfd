"""``jacobite jacobian "x**2 + y, x*y" --at x=1,y=2``: a symbolic Jacobian, its value and more."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ...errors import ExpressionError, NonFiniteInputError, NotSquareError
from .. import _budget
from .._app import console, emit_json, esc, matrix_table, split_list
from .._points import check_list_text, parse_point

HELP = "symbolic Jacobian of comma-separated expressions, its value at a point, determinant"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expressions", help='components, e.g. "x**2 + y, x*y"')
    p.add_argument("--vars", default=None,
                   help="variable order, e.g. x,y (default: names sorted alphabetically)")
    p.add_argument("--at", default=None, help="a point, e.g. x=1,y=2 (fractions like 1/2 work)")
    p.add_argument("--determinant", action="store_true",
                   help="require the determinant (an error for a non-square Jacobian)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="save a heatmap of the Jacobian at the point (needs --at)")
    p.add_argument("--grid", metavar="FILE.png", default=None,
                   help="for a map of 2 variables to 2 functions: save the image of a grid "
                        "coloured by det J")
    p.add_argument("--range", default="-2:2", metavar="LOW:HIGH",
                   help="the square the --grid covers (default -2:2)")


def compute(expressions: str, vars: str | None = None, at: str | None = None,
            want_det: bool = False) -> dict[str, Any]:
    """The JSON object of the command (also used by the tour and tests)."""
    from ... import symbolic

    check_list_text(expressions, "the expressions")
    if vars is not None:
        vars = ",".join(split_list(vars, "--vars", "x,y"))
    J = symbolic.jacobian(expressions, vars)
    _check_vars_cover(J, vars)
    point = parse_point(at)
    exact = _budget.preflight(J, point)
    m, n = J.shape
    out: dict[str, Any] = {
        "variables": list(J.names),
        "functions": [str(e) for e in J.function] if J.function is not None else None,
        "jacobian": J.strings(),
        "shape": [m, n],
    }
    square = m == n
    if want_det and not square:
        raise NotSquareError(f"the Jacobian is {m}×{n}, not square; a determinant needs as many "
                             "functions as variables — drop --determinant or add/remove "
                             "components")
    if square:
        _budget.check_determinant(J.matrix.tolist(), J.variables)
        det = J.determinant()
        if exact is not None:
            _budget.check_magnitude([det], exact, f"at {at}")
        out["determinant"] = str(det)
        out["determinant_factored"] = str(J.determinant(factor=True))
    if point is not None:
        value = J.at(point)
        out["point"] = point
        out["value"] = value.tolist()
        where = ", ".join(f"{k}={v}" for k, v in point.items())
        if not bool(value.isfinite().all()):
            raise NonFiniteInputError(f"the Jacobian is not finite at {where} (an entry is NaN "
                                      "or infinite: the point is a singularity of the "
                                      "expressions); choose another point with --at")
        if square:
            from ...analysis import properties

            det_value = float(symbolic_det_at(J, point))
            if not math.isfinite(det_value):
                raise NonFiniteInputError(f"the determinant is not finite at {where}; choose "
                                          "another point with --at")
            out["determinant_value"] = det_value
            out["properties"] = properties(value).to_dict()
    return out


def _check_vars_cover(J: Any, vars: str | None) -> None:
    """``--vars`` must name every free symbol: a symbol left out would silently be a constant."""
    missing = [s.name for s in J.parameters]
    if vars is not None and missing:
        raise ExpressionError(f"--vars {vars} leaves out {', '.join(missing)}, which the "
                              f"expressions use; list every variable, e.g. --vars "
                              f"{','.join([*J.names, *missing])}")


def symbolic_det_at(J: Any, point: dict[str, str]) -> Any:
    """The exact determinant at the point, as a float."""
    import sympy

    from ... import symbolic

    subs = symbolic.resolve_point(point, J.variables, {s.name: s for s in J.parameters})
    return sympy.N(J.determinant().subs(subs), 17)


def run(args: argparse.Namespace) -> int:
    data = compute(args.expressions, args.vars, args.at, args.determinant)
    if args.plot:
        if "value" not in data:
            from ...errors import ExpressionError

            raise ExpressionError("--plot draws the Jacobian at a point; add --at, e.g. "
                                  "--at x=1,y=2")
        from ... import viz

        fig = viz.heatmap(data["value"], title=f"Jacobian at {args.at}",
                          labels=(data["functions"], data["variables"]))
        viz.save_figure(fig, args.plot)
        data["plot"] = args.plot
    if args.grid:
        _grid(args, data)
    if args.json:
        emit_json(data)
        return 0
    c = console()
    c.print(f"[bold]F({esc(', '.join(data['variables']))})[/] = "
            f"{esc('[' + ', '.join(data['functions']) + ']')}")
    c.print(matrix_table("Jacobian J", data["jacobian"]))
    if "determinant" in data:
        c.print(f"det J = {esc(data['determinant'])}  "
                f"(factored: {esc(data['determinant_factored'])})")
    if "value" in data:
        where = ", ".join(f"{k}={v}" for k, v in data["point"].items())
        c.print(matrix_table(f"J at ({esc(where)})", data["value"]))
        if "determinant_value" in data:
            c.print(f"det J at the point = {data['determinant_value']:.12g}")
            props = data["properties"]
            flags = [k for k in ("symmetric", "psd") if props.get(k)]
            c.print(f"rank {props.get('rank')}, condition number "
                    f"{props.get('condition_number')}" + (f", {', '.join(flags)}" if flags else ""))
    if data.get("plot"):
        c.print(f"heatmap saved to {data['plot']}")
    if data.get("grid"):
        c.print(f"deformed grid saved to {data['grid']}")
    return 0


def _grid(args: argparse.Namespace, data: dict[str, Any]) -> None:
    from ... import symbolic, viz
    from ...errors import InvalidOptionError, NotSquareError

    if data["shape"] != [2, 2]:
        raise NotSquareError(f"--grid draws maps of 2 variables to 2 functions; this one is "
                             f"{data['shape'][0]}×{data['shape'][1]}")
    lo, sep, hi = args.range.partition(":")
    try:
        lim = (float(lo), float(hi))
    except ValueError:
        raise InvalidOptionError(f"cannot read --range {args.range!r}; write LOW:HIGH, "
                                 "e.g. -2:2") from None
    if not sep or not lim[0] < lim[1]:
        raise InvalidOptionError(f"--range {args.range!r} must be LOW:HIGH with LOW < HIGH")
    f = symbolic.to_torch(args.expressions, args.vars)
    fig = viz.deformed_grid(f, lim, lim, title="image of the grid under F, coloured by det J")
    viz.save_figure(fig, args.grid)
    data["grid"] = args.grid
