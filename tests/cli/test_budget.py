"""The pre-flight estimates of the command line against SymPy's own exact answers: the log10
size of a value at a point, the terms of an expanded determinant, the degrees behind the Bezout
bound."""

from __future__ import annotations

import math

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.cli import _budget

X, Y, Z = sympy.symbols("x y z", real=True)
SYMS = (X, Y, Z)

monomials = st.builds(lambda c, a, b, d: c * X**a * Y**b * Z**d,
                      st.integers(-9, 9).filter(bool), st.integers(0, 4), st.integers(0, 4),
                      st.integers(0, 4))
polynomials = st.lists(monomials, min_size=1, max_size=4).map(lambda ms: sympy.Add(*ms))
points = st.tuples(*[st.integers(1, 40).map(sympy.Integer)] * 3)


@settings(max_examples=60, deadline=None)
@given(polynomials, points, st.integers(1, 30))
def test_log10_size_matches_the_exact_value(p, point, n):
    values = dict(zip(SYMS, point, strict=True))
    for expr in (p, p**n, sympy.exp(p / 100), p * sympy.pi):
        exact = expr.subs(values)
        if exact == 0:
            continue
        want = float(sympy.log(abs(exact), 10).evalf(30))
        assert math.isclose(_budget.log10_size(expr, values), want, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(polynomials, min_size=2, max_size=2), st.integers(1, 6))
def test_det_terms_bounds_the_expanded_determinant(rows, power):
    F = sympy.Matrix([rows[0] ** power, rows[1] + (X + Y) ** power])
    J = F.jacobian(sympy.Matrix([X, Y]))
    det = sympy.expand(J.det())
    terms = len(sympy.Add.make_args(det)) if det != 0 else 0
    assert terms <= _budget.det_terms(J.tolist(), [X, Y])


@settings(max_examples=60, deadline=None)
@given(polynomials)
def test_bezout_bound_is_the_product_of_the_gradient_degrees(p):
    want = math.prod(max(sympy.Poly(p.diff(s), *SYMS).total_degree(), 1) if p.diff(s) != 0
                     else 1 for s in SYMS)
    assert _budget.bezout_bound(p, SYMS) >= want
    assert _budget.bezout_bound(sympy.sin(X) + p, SYMS) is None
