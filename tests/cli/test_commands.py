"""The jacobite command line: JSON keys and values against independent oracles, one-line
errors with exit status 2 (never a traceback)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy

from . import run


def run_json(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)  # the JSON object alone on stdout


def test_jacobian_json_matches_sympy(capsys):
    data = run_json(capsys, "jacobian", "x**2 + y, x*y", "--at", "x=1,y=2")
    x, y = sympy.symbols("x y", real=True)
    J = sympy.Matrix([x**2 + y, x * y]).jacobian([x, y])
    assert [[sympy.simplify(sympy.sympify(s, locals={"x": x, "y": y}) - J[i, j]) == 0
             for j, s in enumerate(row)] for i, row in enumerate(data["jacobian"])] == \
        [[True, True], [True, True]]
    assert data["value"] == [[2.0, 1.0], [2.0, 1.0]]
    det = sympy.sympify(data["determinant"], locals={"x": x, "y": y})
    assert sympy.simplify(det - J.det()) == 0
    assert data["determinant_value"] == pytest.approx(float(J.det().subs({x: 1, y: 2})))
    assert data["properties"]["rank"] == 1


def test_jacobian_at_second_point_and_human_output(capsys):
    data = run_json(capsys, "jacobian", "x**2 + y, x*y", "--at", "x=0,y=1")
    assert data["value"] == [[0.0, 1.0], [1.0, 0.0]]
    code, out, _ = run(capsys, "jacobian", "x**2 - y**2, 2*x*y")
    assert code == 0 and "det J" in out and "4" in out


def test_softmax_json_reference_000(capsys):
    data = run_json(capsys, "softmax", "2.5", "1.0", "3.0", "--target", "0")
    z = np.array([2.5, 1.0, 3.0])
    s = np.exp(z - z.max())
    s /= s.sum()
    J = np.diag(s) - np.outer(s, s)
    y = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(data["sigma"], s, rtol=1e-12)
    np.testing.assert_allclose(data["jacobian"], J, atol=1e-14)
    np.testing.assert_allclose(sorted(data["eigenvalues"]), np.linalg.eigvalsh(J), atol=1e-12)
    np.testing.assert_allclose(data["ce_gradient"], s - y, atol=1e-14)
    np.testing.assert_allclose(data["jacobian_times_error"], J @ (s - y), atol=1e-14)
    np.testing.assert_allclose(data["jacobian_times_error"], [-0.264797, -0.002406, 0.267203],
                               atol=5e-7)
    code, out, _ = run(capsys, "softmax", "2.5", "1.0", "3.0")
    assert code == 0 and "cross-entropy" in out


def test_extrema_json(capsys):
    data = run_json(capsys, "extrema", "x**2 + 4*y**2 - 11*x + 8*y - 16")
    (cp,) = data["critical_points"]
    assert cp["point"] == {"x": 5.5, "y": -1.0}
    assert cp["kind"] == "minimum"
    assert cp["value"] == -201 / 4 and cp["value_exact"] == "-201/4"
    assert cp["hessian"] == [[2.0, 0.0], [0.0, 8.0]]
    data = run_json(capsys, "extrema", "x**2 - y**2")
    assert [c["kind"] for c in data["critical_points"]] == ["saddle"]


def test_integrate_gaussian(capsys):
    data = run_json(capsys, "integrate", "exp(-(x**2 + y**2))", "--transform", "polar")
    assert abs(data["value"] - math.pi) < 1e-10
    data = run_json(capsys, "integrate", "1", "--transform", "polar", "--region", "r=0:1")
    assert abs(data["value"] - math.pi) < 1e-10


@pytest.mark.parametrize("argv, phrase", [
    ([], "no command"),
    (["jacobian"], "expressions"),
    (["jacobian", "__import__('os').system('true')"], "not allowed"),
    (["jacobian", "().__class__.__bases__"], "not allowed"),
    (["jacobian", "x**2 + y, x*y", "--at", "x=1"], "y"),
    (["jacobian", "x**2 + y, x*y", "--at", "x=1,q=2"], "q"),
    (["jacobian", "x + y, x*y, y", "--determinant"], "square"),
    (["jacobian", "x +* y"], ""),
    (["softmax"], "logits"),
    (["softmax", "1", "2", "--target", "5"], "target"),
    (["softmax", "1", "nan"], "NaN"),
    (["integrate", "exp(-x)", "--transform", "bogus"], "bogus"),
    (["integrate", "1", "--region", "r=1"], "region"),
    (["extrema", "lambda: 1"], "not allowed"),
    (["nonexistent-command"], "invalid choice"),
])
def test_bad_input_one_line_exit_2(capsys, argv, phrase):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jacobite: error:")
    assert "Traceback" not in err
    assert phrase.lower() in lines[0].lower()


def test_console_script_subprocess_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "jacobite.cli", "jacobian", "x, y",
                           "--determinant", "--at", "x=1"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_tour_passes_json(capsys):
    data = run_json(capsys, "tour")
    assert data["passed"] == data["total"] >= 45
    refs = {e["reference"] for e in data["examples"]}
    assert refs == {"000", "001", "002", "003", "004"}
    wrong = [e for e in data["examples"] if not e["text_correct"]]
    assert all(e["agrees_with_text"] is False and e["note"] for e in wrong)
    # the known errata are all there
    notes = " ".join(e["note"] for e in wrong)
    for phrase in ("three classes", "0.0019", "bound ¼ is wrong", "swaps"):
        assert phrase in notes
    # each disagreement states the claim and the correct value; each example names its page
    assert all(e["disagreement"].startswith("the source text claims ")
               and "; the correct value is " in e["disagreement"] for e in wrong)
    assert all(e["disagreement"] is None for e in data["examples"] if e["text_correct"])
    assert all(e["page"].startswith("docs/worked-examples/") for e in data["examples"])
