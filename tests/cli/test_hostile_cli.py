"""Hostile input for the command line: each case runs under a small --time-limit and
--memory-limit and must end in exit status 2 with ONE line on stderr and no traceback — or,
where the input is fine, in the right answer (checked against NumPy, SymPy or a closed form)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jacobite.cli import main

LIMITS = ["--time-limit", "10", "--memory-limit", "1GiB"]
SHORT = ["--time-limit", "3", "--memory-limit", "1GiB"]


def run(capsys: Any, argv: list[str], limits: list[str] | None = LIMITS) -> tuple[int, str, str]:
    if any(a in argv for a in ("--time-limit", "--memory-limit")):
        limits = None  # the case is about the limits themselves
    start = time.monotonic()
    try:
        code = main(argv + (limits or []))
    except SystemExit as exc:
        code = int(exc.code or 0)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    seconds = float((limits or ["", "10"])[1])
    assert elapsed < seconds + 10, f"{argv} took {elapsed:.1f} s"
    return code, out, err


def refused(capsys: Any, argv: list[str], match: str | None = None,
            limits: list[str] | None = LIMITS) -> str:
    code, out, err = run(capsys, argv, limits)
    assert code == 2, (argv, code, out, err)
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacobite: error: "), err
    if match is not None:
        assert match in lines[0], lines[0]
    return lines[0]


REFUSED: list[tuple[list[str], str | None]] = [
    # softmax
    (["softmax", "inf", "1"], "finite"),
    (["softmax", "nan", "1"], "finite"),
    (["softmax", "1", "2", "--target", "5"], "--target"),
    (["softmax", "1", "2", "--labels", "a,"], "empty item"),
    (["softmax", "1", "2", "--labels", "a,b,c"], "--labels"),
    (["softmax"], None),
    (["softmax", "abc"], None),
    # jacobian: lists, variables, points
    (["jacobian", "x*y", "--vars", "x"], "leaves out y"),
    (["jacobian", "x, y,"], "empty item"),
    (["jacobian", ",x"], "empty item"),
    (["jacobian", "x,,y"], "empty item"),
    (["jacobian", "x, y", "--vars", "x,y,"], "empty item"),
    (["jacobian", "x, y", "--at", "x=1,y=2,"], "empty item"),
    (["jacobian", "x", "--at", "x="], "--at"),
    (["jacobian", "x", "--at", "y=1"], None),
    (["jacobian", "1/x, x", "--at", "x=0"], "not finite"),
    (["jacobian", "log(x)", "--at", "x=0"], "not finite"),
    (["jacobian", "__import__('os').system('true')"], None),
    (["jacobian", "x."], None),
    (["jacobian", ""], None),
    (["jacobian", "x", "--time-limit", "0"], "--time-limit"),
    (["jacobian", "x", "--memory-limit", "lots"], "--memory-limit"),
    (["jacobian", "x**99999999999", "--at", "x=2", "--memory-limit", "256MiB",
      "--time-limit", "30"], "3.01e+10 digits"),
    (["jacobian", "10**5000*x", "--at", "x=1"], "digits"),
    (["jacobian", "sin(x*10**399)", "--at", "x=1"], None),
    # extrema
    (["extrema", "x*y", "--vars", "x"], "--vars"),
    (["extrema", "sin(x)*y", "--method", "newton"], "--x0"),
    (["extrema", "x**2", "--box", "1:0"], "--box"),
    (["extrema", "x**2", "--x0", "1,"], "empty item"),
    (["extrema", "x**2 + y**2", "--x0", "1,2", "--box", "-1:1,-1:1"], "not both"),
    # integrate
    (["integrate", "exp(-x**2)", "--region", "r=0:1", "--tol", "1e-300"], "--tol"),
    (["integrate", "1", "--region", "r=0:1,t=0:pi"], "theta"),
    (["integrate", "1", "--region", "r=0:1,"], "empty item"),
    (["integrate", "1", "--region", "r=1:0"], None),
    (["integrate", "1", "--transform", "polr"], "polar"),
    (["integrate", "1", "--transform", "affine"], "polar"),
    (["integrate", "x, y", "--region", "r=0:1"], None),
    (["integrate", "1", "--region", "r=0:1", "--max-evaluations", "0"], "--max-evaluations"),
    (["integrate", "exp(-x**2)", "--region", "r=0:1", "--tol", "1e-13",
      "--max-evaluations", "300"], "--max-evaluations 300"),
    # tour, inspect, the parser
    (["tour", "--ref", "abc"], "--ref abc"),
    (["inspect", "no_such_file.py:make", "--input-shape", "3"], "no such file"),
    (["frobnicate"], None),
]


@pytest.mark.parametrize(("argv", "match"), REFUSED, ids=[" ".join(a)[:40] for a, _ in REFUSED])
def test_refused_in_one_line(capsys, argv, match):
    line = refused(capsys, argv, match)
    for python_name in ("variables=", "method=", "x0=", "epsabs", "properties()"):
        assert python_name not in line  # the command line speaks in its own flags


# work that would run for minutes or take gigabytes: stopped by the limits, in one line
HEAVY = [
    ["jacobian", "x**99999999999", "--at", "x=2"],
    ["jacobian", "x**x**x**x**x**x", "--at", "x=2"],
    ["jacobian", "E**E**E**100*x", "--at", "x=1"],
    ["jacobian", "(sqrt(2) + sqrt(3))**10000*x", "--at", "x=1"],
    ["jacobian", "(x + y)**10000, x*y**10000", "--determinant", "--at", "x=2,y=3"],
    ["extrema", "x**4 + y**4 + z**4 + u**4 + v**4 - x*y*z*u*v + x*y - z*u + v"],
    ["integrate", "1", "--max-evaluations", "2000"],
]


@pytest.mark.parametrize("argv", HEAVY, ids=[" ".join(a)[:40] for a in HEAVY])
def test_heavy_work_ends_within_the_limits(capsys, argv):
    refused(capsys, argv, limits=SHORT)


def test_no_command(capsys):
    refused(capsys, [], limits=None)


def test_inspect_refuses_an_input_over_the_memory_budget(capsys, tmp_path: Path):
    model = tmp_path / "tiny.py"
    model.write_text("import torch\n\ndef make():\n    return torch.nn.Linear(4, 2)\n")
    refused(capsys, ["inspect", f"{model}:make", "--input-shape", "100000,100000,100000"],
            "memory budget")
    refused(capsys, ["inspect", f"{model}:make", "--input-shape", "4,"], "--input-shape")


def answer(capsys: Any, argv: list[str]) -> dict[str, Any]:
    code, out, err = run(capsys, [*argv, "--json"])
    assert code == 0, err
    return json.loads(out)


def softmax(z: list[float]) -> np.ndarray:
    e = np.exp(np.array(z) - max(z))
    return e / e.sum()


CORRECT: list[tuple[list[str], Callable[[dict[str, Any]], bool]]] = [
    (["softmax", "1", "-2e3", "3"],
     lambda d: np.allclose(d["sigma"], softmax([1, -2000, 3]), atol=1e-15)),
    (["softmax", "-1", "-.5", "-2"],
     lambda d: np.allclose(d["sigma"], softmax([-1, -0.5, -2]), atol=1e-15)),
    (["jacobian", "-x*y, y", "--at", "x=2,y=3"],
     lambda d: d["value"] == [[-3.0, -2.0], [0.0, 1.0]]),
    (["jacobian", "x**2 + y, x*y", "--vars", "y,x", "--at", "x=1,y=2"],
     lambda d: d["value"] == [[1.0, 2.0], [1.0, 2.0]]),
    (["extrema", "x**2 + y**2", "--x0", "1,2", "--method", "newton"],
     lambda d: d["critical_points"][0]["kind"] == "minimum"
     and np.allclose(list(d["critical_points"][0]["point"].values()), 0.0, atol=1e-12)),
    (["integrate", "1", "--region", "r=0:1"], lambda d: abs(d["value"] - math.pi) < 1e-11),
    (["integrate", "exp(-(x**2 + y**2))"], lambda d: abs(d["value"] - math.pi) < 1e-11),
]


@pytest.mark.parametrize(("argv", "check"), CORRECT, ids=[" ".join(a)[:40] for a, _ in CORRECT])
def test_fine_input_gets_the_right_answer(capsys, argv, check):
    assert check(answer(capsys, argv))


def test_a_closed_output_pipe_ends_quietly(capsys, monkeypatch):
    import io
    import os

    r, w = os.pipe()
    os.close(r)  # the reader (`| head`) is gone before the output comes
    stdout = io.TextIOWrapper(io.FileIO(w, "w"), encoding="utf-8")
    monkeypatch.setattr("sys.stdout", stdout)
    try:
        code = main(["softmax", "1", "2", "3", "--json", *LIMITS])
    finally:
        monkeypatch.undo()
    assert code == 0
    assert capsys.readouterr().err == ""


def test_a_memory_limit_below_the_interpreters_needs_is_refused(capsys):
    refused(capsys, ["softmax", "1", "2", "--memory-limit", "1MiB"], "64MiB", limits=None)


@pytest.mark.parametrize(("command", "phrases"), [
    ("inspect", ["imported", "top-level code"]),
    ("integrate", ["polar (r, theta)", "spherical (r, theta, phi)", "default polar",
                   "r=0:inf,theta=0:2pi", "whole plane"]),
    ("jacobian", ["--time-limit", "--memory-limit"]),
])
def test_help_states_what_the_command_does(capsys, command, phrases):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in phrases:
        assert phrase in text


# symbolic work that would run to the time or memory limit: refused by the pre-flight checks
# before SymPy starts, in one line, within seconds of starting the process
CYCLIC_8 = ", ".join([*(" + ".join("*".join("abcdefgh"[(i + j) % 8] for j in range(k))
                                    for i in range(8)) for k in range(1, 8)),
                      "a*b*c*d*e*f*g*h - 1"]).replace(" ", "")
TOO_LARGE = [
    (["jacobian", "x**x**x**x**x**x", "--at", "x=2"], "tower of 5 powers"),
    (["jacobian", "E**E**E**100*x", "--at", "x=1"], "exp(exp(100))"),
    (["jacobian", "E**E**E**100*x"], "far beyond float64"),
    (["jacobian", "(x + y)**10000, x*y**10000", "--determinant", "--at", "x=2,y=3"],
     "digits"),
    (["jacobian", "(x + y)**10000, x*y**10000", "--determinant"], "exponent 9999 on (x + y)"),
    (["jacobian", "(sqrt(2) + sqrt(3))**10000*x", "--at", "x=1"], "exponent 10000"),
    (["jacobian", "x**y", "--at", "x=2,y=9**9"], "1.17e+08 digits"),
    (["jacobian", CYCLIC_8], "8x8 determinant"),
    (["jacobian", "x**99999999999", "--at", "x=2"], "3.01e+10 digits"),
    (["extrema", "x**4 + y**4 + z**4 + u**4 + v**4 - x*y*z*u*v + x*y - z*u + v"],
     "--method newton with --x0"),
    (["extrema", "(x + y)**100 + x"], "Bezout"),
    (["integrate", "E**E**E**100", "--region", "r=0:1"], "the constant exp(exp(100))"),
    (["integrate", "exp(-x**2)", "--region", "r=0:1", "--tol", "1e-300"], "--tol"),
]


@pytest.mark.parametrize(("argv", "match"), TOO_LARGE,
                         ids=[" ".join(a)[:40] for a, _ in TOO_LARGE])
def test_too_large_symbolic_work_is_refused_at_once(argv, match):
    import subprocess
    import sys

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jacobite.cli", *argv], capture_output=True,
                          text=True, timeout=60, check=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jacobite: error: "), proc.stderr
    assert match in lines[0], lines[0]
    assert elapsed < 15, f"{argv} was refused only after {elapsed:.1f} s"


def test_auto_extrema_too_large_for_sympy_goes_to_newton_from_x0(capsys):
    import sympy

    expr = "x**4 + y**4 + z**4 + u**4 + v**4 - x*y*z*u*v + x*y - z*u + v"
    data = answer(capsys, ["extrema", expr, "--x0", "1,1,1,1,1"])
    f = sympy.sympify(expr)
    for cp in data["critical_points"]:
        at = {sympy.Symbol(k): v for k, v in cp["point"].items()}
        grad = [float(f.diff(s).subs(at)) for s in sorted(f.free_symbols, key=str)]
        assert max(map(abs, grad)) < 1e-8  # the oracle: SymPy's gradient vanishes there
    assert data["critical_points"]


def test_towers_and_powers_within_the_limits_still_get_exact_values(capsys):
    import sympy

    x = sympy.Symbol("x")
    data = answer(capsys, ["jacobian", "x**x**x**x", "--at", "x=2"])
    want = float(sympy.diff(x**x**x**x, x).subs(x, 2))
    assert math.isclose(data["value"][0][0], want, rel_tol=1e-12)
    data = answer(capsys, ["jacobian", "(x + y)**64, x*y**64", "--at", "x=1,y=1"])
    assert data["value"] == [[64 * 2.0**63, 64 * 2.0**63], [1.0, 64.0]]
