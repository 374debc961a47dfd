"""Hostile values on the command line: every bad value is one line on stderr starting with
``jacobite: error:``, naming the fix, with exit status 2 and no traceback; extreme but valid
values give JSON equal to an independent oracle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ..cli import run as _run
from ._probe import assert_close, within

BAD = [
    (["jacobian", "x**2", "--at", "x=nan"], "give a number"),
    (["jacobian", "x**2", "--at", "x=inf"], "give a number"),
    (["jacobian", "x**2", "--at", "x=1e309"], "use a smaller number"),
    (["jacobian", "x**2", "--at", "x="], "--at x=1,y=2"),
    (["jacobian", "x**2", "--at", "=1"], "--at x=1,y=2"),
    (["jacobian", "x**2", "--at", "x=abc"], "give a number"),
    (["jacobian", "x**2", "--at", "x=1,x=2"], "give each variable once"),
    (["jacobian", "sqrt(x)", "--at", "x=-1"], "real domain"),
    (["jacobian", "log(x)", "--at", "x=0"], "choose another point"),
    (["jacobian", "exp(x)", "--at", "x=1000"], "choose another point"),
    (["jacobian", "log(x)", "--at", "x=0", "--json"], "choose another point"),
    (["jacobian", ""], "remove it"),
    (["jacobian", "x,,y"], "remove it"),
    (["jacobian", "5"], "--vars"),
    (["jacobian", "x" * 20000], "smaller pieces"),
    (["jacobian", "9**9**9**9"], "too large"),
    (["jacobian", "x**2", "--vars", "x,x"], "list each once"),
    (["jacobian", "x**2", "--vars", "1x"], "valid variable name"),
    (["jacobian", "x**2", "--time-limit", "0"], "positive number of seconds"),
    (["jacobian", "x**2", "--time-limit", "-1"], "positive number of seconds"),
    (["jacobian", "x**2", "--time-limit", "nan"], "positive number of seconds"),
    (["jacobian", "x**2", "--memory-limit", "0"], "positive size"),
    (["jacobian", "x**2", "--memory-limit", "lots"], "positive size"),
    (["jacobian", "x**2", "--memory-limit", "1 B"], "at least 64MiB"),
    (["softmax", "1e309"], "finite values"),
    (["softmax", "inf", "1"], "finite values"),
    (["softmax", "-inf", "1"], "finite values"),
    (["softmax", "1", "2", "--target", "-1"], "use 0 to 1"),
    (["softmax", "1", "2", "--target", "1.5"], "invalid int value"),
    (["softmax", "abc"], "invalid float value"),
    (["extrema", "5"], "--vars"),
    (["extrema", "Abs(x)"], "--method newton"),
    (["extrema", "x**2", "--method", "newton", "--x0", "nan"], "finite points"),
    (["extrema", "x**2", "--method", "newton", "--box", "1:0"], "LO < HI"),
    (["integrate", "nan"], "--vars"),
    (["integrate", "1", "--region", "r=1:0"], "swap them"),
    (["integrate", "1", "--region", "r=0:nan"], "give a number"),
    (["integrate", "1", "--region", "r=0:inf"], "diverges"),
    (["integrate", "1", "--region", "q=0:1"], "use only the variables"),
    (["integrate", "1/x", "--region", "r=0:1", "--max-evaluations", "20000"],
     "raise --max-evaluations"),
    (["inspect", "nonexistent.py:make", "--input-shape", "3"], "no such file"),
    (["inspect", "/etc/passwd", "--input-shape", "3"], "FILE.py:FACTORY"),
    (["inspect", "tests/nets.py:nonexistent", "--input-shape", "3"], "mlp"),
    (["inspect", "tests/nets.py:mlp", "--input-shape", "0"], "positive integers"),
    (["inspect", "tests/nets.py:mlp", "--input-shape", "abc"], "positive integers"),
]


@pytest.mark.parametrize(("argv", "fix"), BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_values_are_one_line_exit_2_naming_the_fix(capsys, argv, fix):
    with within(10.0):
        code, out, err = _run(capsys, *argv)
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jacobite: error:")
    assert fix.lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize(("at", "want"), [("1e300", 2e300), ("5e-324", 1e-323),
                                          ("-1e-300", -2e-300), ("1/3", 2 / 3),
                                          ("pi/4", math.pi / 2)])
def test_jacobian_at_extreme_points_gives_the_analytic_value(capsys, at, want):
    with within(10.0):
        code, out, err = _run(capsys, "jacobian", "x**2", "--at", f"x={at}", "--json")
    assert code == 0, err
    assert_close(json.loads(out)["value"], [[want]], rtol=1e-15, atol=0)


@pytest.mark.parametrize("logits", [["1e300", "-1e300", "1e308"], ["-745", "0", "745"]])
def test_softmax_at_extreme_logits_matches_numpy(capsys, logits):
    with within(10.0):
        code, out, err = _run(capsys, "softmax", *logits, "--json")
    assert code == 0, err
    data = json.loads(out)
    z = np.array([float(v) for v in logits])
    s = np.exp(z - z.max())
    s /= s.sum()
    assert_close(data["sigma"], s, rtol=1e-12, atol=1e-300)
    assert_close(data["jacobian"], np.diag(s) - np.outer(s, s), rtol=1e-12, atol=1e-300)


def test_extrema_from_a_huge_start_finds_the_minimum(capsys):
    with within(10.0):
        code, out, err = _run(capsys, "extrema", "x**2", "--method", "newton", "--x0", "1e300")
    assert code == 0, err
    assert "minimum" in out and "x = 0.0" in out


def test_extrema_without_critical_points_says_so(capsys):
    with within(10.0):
        code, out, err = _run(capsys, "extrema", "x + y")
    assert code == 0, err
    assert "0 critical point(s)" in out


def test_integrate_the_gaussian_over_the_whole_plane_is_pi(capsys):
    with within(10.0):
        code, out, err = _run(capsys, "integrate", "exp(-(x**2+y**2))", "--json")
    assert code == 0, err
    assert_close(json.loads(out)["value"], math.pi, rtol=1e-9)
