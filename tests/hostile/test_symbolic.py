"""Hostile values for jacobite.symbolic: unsafe or oversized strings, points that are NaN,
infinite, complex or overflowing, and the torch bridge fed odd tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch
from torch.func import jacrev

import jacobite
from jacobite import symbolic as S
from jacobite.errors import (
    ExpressionError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsafeExpressionError,
)

from ._probe import assert_close, refuses, within

F64 = torch.float64
x, y = sympy.symbols("x y", real=True)


# ---- parsing: nothing but arithmetic gets through ----------------------------------------------

@pytest.mark.parametrize("text", [
    "__import__('os')", "x.__class__", "(lambda: 1)()", "x; import os", "x\x00", "x²",
    "__class__", "foo(x)", "'a'", "[x]", "x if y else 1", "x[0]", "x @ y", "{x}", "x := 1",
    "getattr(x, 'a')", "9**9**9**9", "(" * 500 + "x" + ")" * 500, "+".join(["x"] * 20000),
    "9" * 5000,
], ids=["import", "dunder-attr", "lambda", "statement", "nul", "superscript", "dunder-name",
        "unknown-function", "string", "list", "conditional", "subscript", "matmul", "set",
        "walrus", "getattr", "power-tower", "deep-nesting", "too-long",
        "huge-literal"])
def test_unsafe_or_oversized_text_is_refused_before_sympy_sees_it(text):
    with refuses(UnsafeExpressionError, "only arithmetic", seconds=2.0):
        S.parse(text)


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_refused_with_an_example(text):
    with refuses(ExpressionError, "x**2 + y"):
        S.jacobian(text)


@pytest.mark.parametrize("text", ["(x", "((x + y)"])
def test_unbalanced_parentheses_are_refused_naming_the_missing_one(text):
    with refuses(ExpressionError, "add the matching ')'"):
        S.jacobian(text)


@pytest.mark.parametrize("text", [",", "x +", "x y"])
def test_malformed_text_is_refused_listing_what_is_allowed(text):
    with refuses(ExpressionError, "cannot parse", "only arithmetic"):
        S.jacobian(text)


def test_a_float_literal_that_overflows_is_refused():
    with refuses(ExpressionError, "smaller number"):
        S.parse("1e999")


@pytest.mark.parametrize("text", ["5", "0", "3 + 0*x", "x - x"])
def test_expressions_without_variables_are_refused_naming_variables(text):
    with refuses(ExpressionError, "variables="):
        S.jacobian(text)


@pytest.mark.parametrize("variables", ["x, x", "x, 1y"])
def test_bad_variable_lists_are_refused(variables):
    with refuses(ExpressionError, "x"):
        S.jacobian("x*y", variables=variables)


# ---- exact derivatives and evaluation ------------------------------------------------------------

@pytest.mark.parametrize(("text", "exprs"), [
    ("x**2 + y, x*y", [x ** 2 + y, x * y]),
    ("x^3 - y^2", [x ** 3 - y ** 2]),
    ("sin(sin(sin(sin(sin(sin(x*y))))))", [sympy.sin(sympy.sin(sympy.sin(sympy.sin(sympy.sin(
        sympy.sin(x * y))))))]),
    ("x**99999999999", [x ** 99999999999]),
    ("exp(x)*1e300 - 1e-300*y", [sympy.exp(x) * sympy.Float(1e300) - sympy.Float(1e-300) * y]),
], ids=["plain", "caret-power", "deeply-nested", "huge-exponent", "extreme-coefficients"])
def test_symbolic_jacobians_equal_sympy(text, exprs):
    with within():
        J = S.jacobian(text, variables="x, y")
    want = sympy.Matrix(exprs).jacobian([x, y])
    diff = (J.matrix.subs({sympy.Symbol("x"): x, sympy.Symbol("y"): y}) - want)
    assert sympy.simplify(diff) == sympy.zeros(*want.shape)


@pytest.mark.parametrize(("point", "want"), [
    ({"x": 1e150, "y": 1e-150}, [[2e150, 1.0], [1e-150, 1e150]]),
    ({"x": 5e-324, "y": 0.0}, [[1e-323, 1.0], [0.0, 5e-324]]),
    ([1.0, 2.0], [[2.0, 1.0], [2.0, 1.0]]),
    (np.array([1.0, 2.0]), [[2.0, 1.0], [2.0, 1.0]]),
    ({"x": torch.tensor(1.0), "y": torch.tensor(2.0)}, [[2.0, 1.0], [2.0, 1.0]]),
    ({"x": 1, "y": 2}, [[2.0, 1.0], [2.0, 1.0]]),
], ids=["huge-and-tiny", "subnormal", "list", "numpy", "0-d-tensors", "ints"])
def test_evaluation_at_odd_points_matches_the_analytic_jacobian(point, want):
    with within():
        got = S.jacobian("x**2 + y, x*y").at(point)
    assert_close(got, want, rtol=1e-15, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("call", [
    lambda p: S.jacobian("x**2 + y").at(p),
    lambda p: S.hessian("x**3*y").at(p),
    lambda p: S.gradient("x*y").at(p),
    lambda p: S.linear_approximation("exp(x) + y", p),
], ids=["jacobian", "hessian", "gradient", "linear_approximation"])
def test_nonfinite_points_are_refused_naming_a_finite_number(call, bad):
    with refuses(NonFiniteInputError, "finite number"):
        call({"x": bad, "y": 1.0})


def test_a_boolean_coordinate_is_refused():
    with refuses(ExpressionError, "give a number"):
        S.jacobian("x**2").at({"x": True})


@pytest.mark.parametrize(("point", "fix"), [
    ({"x": 1.0}, "give one value per variable"),
    ({"x": 1.0, "y": 2.0, "z": 3.0}, "use only the variables"),
], ids=["missing", "extra"])
def test_points_that_do_not_fit_the_variables_are_refused(point, fix):
    with refuses(ExpressionError, fix):
        S.jacobian("x**2 + y").at(point)


def test_a_point_of_the_wrong_length_is_refused():
    with refuses(ShapeError, "one value per variable"):
        S.jacobian("x**2, x*y").at([1.0])


@pytest.mark.parametrize("text", ["sqrt(x)", "log(x)**2", "asin(x)"])
def test_a_point_outside_the_real_domain_is_refused(text):
    with refuses(ExpressionError, "real domain"):
        S.jacobian(text).at({"x": -2.0})


def test_a_pole_evaluates_to_nan_never_a_finite_number():
    # d/dx log(x) = 1/x is complex infinity (zoo) at 0 in SymPy: NaN, not a number
    assert sympy.diff(sympy.log(x), x).subs(x, 0) is sympy.zoo
    with within():
        got = S.jacobian("log(x)").at({"x": 0})
    assert bool(torch.isnan(got).all())


@pytest.mark.parametrize(("text", "at"), [("exp(x)", 1000), ("exp(exp(exp(x)))", 10)])
def test_a_derivative_beyond_float64_evaluates_to_inf(text, at):
    # both derivatives exceed exp(at) > exp(709.8) ≈ the largest float64
    assert at > math.log(np.finfo(np.float64).max) or text.count("exp") == 3
    with within(5.0):
        got = S.jacobian(text).at({"x": at})
    assert float(got) == math.inf


def test_a_non_square_determinant_is_refused_naming_the_alternative():
    with refuses(NotSquareError, "det(J^T J)"):
        S.determinant("x, y, x*y")


def test_the_hessian_of_a_vector_is_refused_naming_jacobian():
    with refuses(ShapeError, "jacobian("):
        S.hessian("x, y")


# ---- the torch bridge ---------------------------------------------------------------------------

TF = S.to_torch("x**2 + y, sin(x)*y")


def _tf_oracle(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([v[..., 0] ** 2 + v[..., 1], torch.sin(v[..., 0]) * v[..., 1]], -1)


@pytest.mark.parametrize(("u", "rtol"), [
    (torch.tensor([1.0, 2.0], dtype=F64), 1e-15),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), 1e-15),
    (torch.tensor([1.0, 2.0], dtype=torch.float16), 1e-3),
    (torch.tensor([1.0, 2.0], dtype=torch.bfloat16), 1e-2),
    (torch.tensor([1e150, -1e150], dtype=F64), 1e-15),
    (torch.arange(6, dtype=F64).reshape(2, 3).t()[:, :2], 1e-15),
], ids=["point", "batch", "float16", "bfloat16", "huge", "transposed-view"])
def test_to_torch_values_match_torch(u, rtol):
    with within():
        got = TF(u)
    assert got.dtype == u.dtype
    assert_close(got, _tf_oracle(u.double()), rtol=rtol, atol=rtol)


def test_to_torch_of_an_empty_batch_is_empty():
    with within():
        got = TF(torch.zeros(0, 2, dtype=F64))
    assert got.shape == (0, 2)


def test_to_torch_of_a_meta_tensor_is_a_meta_tensor():
    with within():
        got = TF(torch.ones(2, device="meta"))
    assert got.is_meta and got.shape == (2,)


@pytest.mark.parametrize("u", [torch.ones(3, dtype=F64), torch.ones(1, dtype=F64)])
def test_to_torch_with_the_wrong_number_of_variables_is_refused(u):
    with refuses(ShapeError, "2 variables"):
        TF(u)


def test_to_torch_of_a_list_is_refused_naming_torch_tensor():
    with refuses(ShapeError, "torch.tensor"):
        TF([1.0, 2.0])


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_to_torch_is_differentiable_by_jacobite_as_by_jacrev(mode):
    u = torch.tensor([0.3, -1.2], dtype=F64)
    with within():
        J = jacobite.jacobian(TF, u, mode=mode)
    assert_close(J, jacrev(_tf_oracle)(u))
    assert_close(J, S.jacobian("x**2 + y, sin(x)*y").at([0.3, -1.2]))
