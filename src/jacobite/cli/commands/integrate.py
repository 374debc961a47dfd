"""``jacobite integrate "exp(-(x**2 + y**2))" --transform polar``: change of variables."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any

from ...errors import ConvergenceError, InvalidOptionError, JacobiteError
from .._app import console, emit_json, esc, split_list

HELP = "integrate an expression in x, y (, z) through a change of variables with |det J|"

#: The smallest --tol: it is both the absolute and the relative tolerance, and double
#: precision cannot meet a relative one below this.
MIN_TOL = 5e-14

_CONSTS = {"inf": math.inf, "-inf": -math.inf, "pi": math.pi, "2pi": 2 * math.pi,
           "-pi": -math.pi}


def _region(text: str | None) -> dict[str, tuple[float, float]] | None:
    """``"r=0:1,theta=0:pi"`` -> ``{"r": (0, 1), "theta": (0, π)}``; ``inf``/``pi`` allowed.

    >>> _region("r=0:1, theta=0:pi")["theta"][1] == math.pi
    True
    """
    if text is None:
        return None
    out: dict[str, tuple[float, float]] = {}
    for part in split_list(text, "--region", "r=0:1,theta=0:pi"):
        name, sep, rng = part.partition("=")
        lo, sep2, hi = rng.partition(":")
        name = name.strip()
        if not (sep and sep2 and name):
            raise InvalidOptionError(f"cannot read {part!r} in --region; write name=low:high "
                                     "pairs, e.g. --region r=0:1,theta=0:pi")
        if name in out:
            raise InvalidOptionError(f"--region gives {name!r} twice; give each variable once")
        vals = []
        for v in (lo.strip(), hi.strip()):
            try:
                vals.append(_CONSTS[v] if v in _CONSTS else float(v))
            except ValueError:
                raise InvalidOptionError(f"cannot read the bound {v!r} in --region; use numbers, "
                                         "inf, -inf or pi") from None
        out[name] = (vals[0], vals[1])
    return out


def _named_transforms() -> dict[str, tuple[str, ...]]:
    """The transforms the command line can name, with their variables."""
    from ...transforms import TRANSFORMS, get_transform

    out = {}
    for name in sorted(TRANSFORMS):
        try:
            out[name] = get_transform(name).variables
        except JacobiteError:  # a transform that needs arguments (affine) has no name form
            continue
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("integrand", help='an expression in the ORIGINAL coordinates x, y (, z), '
                   'e.g. "exp(-(x**2 + y**2))"')
    named = _named_transforms()
    p.add_argument("--transform", default="polar", choices=sorted(named),
                   help="the change of variables, with the names of its variables: "
                        + ", ".join(f"{n} ({', '.join(v)})" for n, v in named.items())
                        + " (default polar)")
    p.add_argument("--region", default=None, metavar="NAME=LOW:HIGH,...",
                   help="bounds in the new variables, e.g. r=0:1; a variable not named keeps "
                        "its default. Default: the whole space — for polar r=0:inf,theta=0:2pi, "
                        "i.e. the whole plane (a divergent integral there is refused)")
    p.add_argument("--tol", type=float, default=1e-12,
                   help=f"absolute and relative tolerance (default 1e-12, at least {MIN_TOL:g})")
    p.add_argument("--max-evaluations", type=int, default=None, metavar="N",
                   help="the most evaluations of the integrand (default 1000000)")


def _cli_message(text: str) -> str:
    """integrate's advice in this command's flags."""
    text = re.sub(r"epsabs=([^,]+), epsrel=[^);]+", r"--tol \1", text)
    text = re.sub(r"\bmax_evaluations=", "--max-evaluations ", text)
    text = text.replace("max_evaluations", "--max-evaluations").replace("raise limit, ", "")
    text = re.sub(r"region=\{'(\w+)': \(([^,]+), ([^)]+)\)\}", r"--region \1=\2:\3", text)
    return text


def _check_constants(integrand: str) -> None:
    """Refuse a constant too large to evaluate (``E**E**E**100``) before the integrand is
    built; an integrand that cannot be read is left to ``integrate`` to name."""
    from ... import symbolic
    from .._budget import check_magnitude

    try:
        items = symbolic.parse(integrand)
    except JacobiteError:
        return
    check_magnitude(items, {}, "as written")


def compute(integrand: str, transform: str = "polar", region: str | None = None,
            tol: float = 1e-12, max_evaluations: int | None = None) -> dict[str, Any]:
    import warnings

    from ...transforms import integrate

    if not (math.isfinite(tol) and tol >= MIN_TOL):
        raise InvalidOptionError(f"--tol {tol:g} is out of reach: it is also the relative "
                                 f"tolerance, and double precision cannot do better than "
                                 f"{MIN_TOL:g}; give e.g. --tol 1e-12")
    _check_constants(integrand)
    try:
        with warnings.catch_warnings():  # an unconverged result is refused below, in one line
            warnings.simplefilter("ignore")
            res = integrate(integrand, transform, _region(region), epsabs=tol, epsrel=tol,
                            max_evaluations=max_evaluations)
    except JacobiteError as exc:
        raise type(exc)(_cli_message(str(exc))) from None
    if not res.converged:
        raise ConvergenceError(_cli_message(f"{res.message}; the estimate was {res.value:.6g} "
                                            f"± {res.error:.1e}"))
    return {"integrand": integrand, "transform": res.transform, "variables": list(res.variables),
            "region": [list(b) for b in res.region], "value": res.value, "error": res.error,
            "evaluations": res.neval, "converged": res.converged}


def run(args: argparse.Namespace) -> int:
    data = compute(args.integrand, args.transform, args.region, args.tol, args.max_evaluations)
    if args.json:
        emit_json(data)
        return 0
    c = console()
    bounds = ", ".join(f"{v} ∈ [{lo:g}, {hi:g}]" for v, (lo, hi) in
                       zip(data["variables"], data["region"], strict=True))
    c.print(f"∫ {esc(data['integrand'])} over {esc(bounds)} ({data['transform']}, with |det J|)")
    c.print(f"  = {data['value']:.15g}  (± {data['error']:.1e}, {data['evaluations']} evaluations)")
    if abs(data["value"] - math.pi) < 1e-9:
        c.print(f"  which is π; its square root {math.sqrt(data['value']):.15g} = √π is the "
                "Gaussian integral ∫ e^(−x²) dx")
    return 0
