"""Symbolic Jacobians, determinants, gradients, Hessians, linear approximations — against the
reference texts, SymPy computed independently, and jacobite's AD."""

from __future__ import annotations

import json

import pytest
import torch

sp = pytest.importorskip("sympy")

import jacobite  # noqa: E402
from jacobite.errors import NonFiniteInputError, NotSquareError, ShapeError  # noqa: E402
from jacobite.symbolic import (  # noqa: E402
    ExpressionError,
    SymbolicMatrix,
    determinant,
    gradient,
    hessian,
    jacobian,
    latex,
    linear_approximation,
    parse,
)
from tests.battery import f_polar, f_ref_square, f_ref_xy, f_ref_xyz  # noqa: E402

DT = torch.float64
x, y, z, r, theta = sp.symbols("x y z r theta", real=True)


def same(a, b) -> bool:
    return sp.simplify(sp.Matrix(a) - sp.Matrix(b)) == sp.zeros(*sp.Matrix(a).shape)


def ad(f, point) -> torch.Tensor:
    return jacobite.jacobian(f, torch.tensor(point, dtype=DT))


# ----------------------------------------------------------------------------- reference 002


def test_reference_xy_jacobian_and_values():
    J = jacobian("x**2 + y, x*y")
    assert J.variables == (x, y)
    assert same(J.matrix, [[2 * x, 1], [y, x]])
    for point, expected in (((1.0, 2.0), [[2, 1], [2, 1]]), ((0.0, 1.0), [[0, 1], [1, 0]])):
        got = J.at(point)
        assert got.dtype == DT
        assert got.tolist() == expected
        torch.testing.assert_close(got, ad(f_ref_xy, point))
        exact = J.subs(dict(zip("xy", map(int, point), strict=True)))
        assert exact == sp.Matrix(expected)


def test_reference_xyz_jacobian():
    J = jacobian("x**2 + y*z, sin(x*y), exp(x + z)")
    expected = [[2 * x, z, y], [y * sp.cos(x * y), x * sp.cos(x * y), 0],
                [sp.exp(x + z), 0, sp.exp(x + z)]]
    assert same(J.matrix, expected)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        p = torch.randn(3, generator=g, dtype=DT)
        torch.testing.assert_close(J.at(p), jacobite.jacobian(f_ref_xyz, p))


def test_square_map_determinant():
    J = jacobian("x**2 - y**2, 2*x*y")
    det = J.determinant()
    assert sp.simplify(det - 4 * (x**2 + y**2)) == 0
    factored = sp.factor(4 * x**2 + 4 * y**2)
    assert str(factored) == "4*(x**2 + y**2)"
    assert J.determinant(factor=True) == factored
    assert determinant("x**2 - y**2, 2*x*y", factor=True) == factored
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        p = torch.randn(2, generator=g, dtype=DT)
        num = torch.linalg.det(jacobite.jacobian(f_ref_square, p))
        assert float(det.subs({x: float(p[0]), y: float(p[1])})) == pytest.approx(float(num))


def test_polar_determinant_is_r():
    J = jacobian("r*cos(theta), r*sin(theta)")
    assert J.names == ("r", "theta")  # sorted by name
    assert same(J.matrix, [[sp.cos(theta), -r * sp.sin(theta)], [sp.sin(theta), r * sp.cos(theta)]])
    assert J.determinant() == r
    p = torch.tensor([1.7, 0.4], dtype=DT)
    torch.testing.assert_close(J.at(p), jacobite.jacobian(f_polar, p))


def test_linear_map_jacobian_is_the_matrix():
    A = sp.Matrix([[2, -1, 3], [0, 5, 1], [4, 1, -2]])
    xs = sp.symbols("x1:4", real=True)
    F = list(A * sp.Matrix(xs))
    J = jacobian(F, xs)
    assert J.matrix == A
    assert J.determinant() == A.det()
    J2 = jacobian(F[:2], xs)  # rectangular: 2 x 3
    assert J2.matrix == A[:2, :]
    torch.testing.assert_close(J.at([0.3, -1, 2]), torch.tensor(A.tolist(), dtype=DT))


def test_variable_order_and_parameters():
    J = jacobian("x**2 + y, x*y", "y, x")
    assert same(J.matrix, [[1, 2 * x], [x, y]])
    assert jacobian("x10 + x2*x1").names == ("x1", "x2", "x10")
    P = jacobian("a*x**2", "x")
    assert P.parameters == (sp.Symbol("a", real=True),)
    assert P.strings() == [["2*a*x"]]
    assert P.at({"x": 1.5, "a": 2}).tolist() == [[6.0]]
    with pytest.raises(ExpressionError, match="still depends on a"):
        P.at({"x": 1})
    # a variable the function does not depend on: a zero column
    assert same(jacobian("x**2", "x, w").matrix, [[2 * x, 0]])


# ----------------------------------------------------------------------------- appendix A


def test_gradient_and_hessian_of_appendix_a():
    f = "x**2 + 4*y**2 - 11*x + 8*y - 16"
    g = gradient(f)
    assert g.kind == "gradient" and g.shape == (2,)
    assert g.strings() == ["2*x - 11", "8*y + 8"]
    assert g.at([1, 2]).tolist() == [-9.0, 24.0]
    H = hessian(f)
    assert H.matrix == sp.Matrix([[2, 0], [0, 8]])
    assert H.determinant() == 16
    fn = lambda v: v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16  # noqa: E731
    p = torch.tensor([0.3, -2.0], dtype=DT)
    torch.testing.assert_close(H.at(p), jacobite.hessian(fn, p))
    torch.testing.assert_close(g.at(p), torch.func.grad(fn)(p))


def test_hessian_matches_ad_on_a_nonquadratic():
    H = hessian("sin(x*y) + exp(x)*z**3")
    fn = lambda v: torch.sin(v[0] * v[1]) + torch.exp(v[0]) * v[2] ** 3  # noqa: E731
    p = torch.tensor([0.4, -1.1, 0.7], dtype=DT)
    torch.testing.assert_close(H.at(p), jacobite.hessian(fn, p))
    assert H.matrix == H.matrix.T


# ----------------------------------------------------------------------------- linear approx.


def test_linear_approximation_reference():
    expected = (2 * x + y - 1, 2 * x + y - 2)
    assert linear_approximation("x**2 + y, x*y", {"x": 1, "y": 2}) == expected
    assert linear_approximation("x**3", {"x": 2}) == 12 * x - 16
    assert linear_approximation("x**2", {"x": "1/3"}) == sp.Rational(2, 3) * x - sp.Rational(1, 9)


def test_linear_approximation_is_first_order_exact():
    F = "x**2 + y*z, sin(x*y), exp(x + z)"
    a = {"x": 0.3, "y": -0.7, "z": 0.2}
    L = linear_approximation(F, a)
    J = jacobian(F)
    # L(a) = F(a) and J_L = J_F(a)
    Fa = [e.subs({x: 0.3, y: -0.7, z: 0.2}) for e in parse(F)]
    La = [e.subs({x: 0.3, y: -0.7, z: 0.2}) for e in L]
    assert [float(u) for u in Fa] == pytest.approx([float(v) for v in La], abs=1e-14)
    torch.testing.assert_close(jacobian(list(L), "x, y, z").at([0, 0, 0]), J.at(a))
    # the error is O(h^2)
    d = torch.tensor([0.3, -0.5, 0.8], dtype=DT)
    errs = []
    for h in (1e-2, 1e-3):
        pt = {s: a[s.name] + h * float(di) for s, di in zip((x, y, z), d, strict=True)}
        errs.append(max(abs(float(f.subs(pt) - g.subs(pt)))
                        for f, g in zip(parse(F), L, strict=True)))
    assert 60 < errs[0] / errs[1] < 140


# ----------------------------------------------------------------------------- printing


def test_latex_and_strings_round_trip():
    J = jacobian("x**2 + y, x*y")
    assert J.latex() == sp.latex(sp.Matrix([[2 * x, 1], [y, x]]))
    assert latex(J) == J.latex()
    assert latex("x**2 + y, x*y") == sp.latex(sp.Matrix([x**2 + y, x * y]))
    assert latex("sqrt(x)") == r"\sqrt{x}"
    assert J._repr_latex_().startswith("$$")
    K = jacobian("x**2 + y*z, sin(x*y), exp(x + z), atan2(y, x), abs(x)*pi")
    strings = K.strings()
    json.dumps(strings)
    back = parse([s for row in strings for s in row])
    assert same(sp.Matrix(back).reshape(*K.matrix.shape), K.matrix)
    assert "jacobian of" in repr(K) and isinstance(K, SymbolicMatrix)


def test_simplify_returns_a_copy():
    J = jacobian("sin(x)**2 + cos(x)**2 + y")
    assert J.simplify().matrix == sp.Matrix([[0, 1]])


# ----------------------------------------------------------------------------- errors


def test_point_errors_name_the_fix():
    J = jacobian("x**2 + y, x*y")
    with pytest.raises(ExpressionError, match=r"unknown variable 'w'.*x, y"):
        J.at({"x": 1, "y": 2, "w": 3})
    with pytest.raises(ExpressionError, match="no value for y"):
        J.at({"x": 1})
    with pytest.raises(ShapeError, match="3 value"):
        J.at([1, 2, 3])
    with pytest.raises(ExpressionError, match="mapping"):
        J.at("1, 2")
    with pytest.raises(NonFiniteInputError):
        J.at([float("nan"), 1])
    with pytest.raises(ExpressionError, match="not a constant"):
        J.at({"x": "y", "y": 1})
    with pytest.raises(ExpressionError, match="bool"):
        J.at([True, 1])
    with pytest.raises(ExpressionError, match="not real"):
        jacobian("sqrt(x)").at([-1.0])


def test_point_value_types_and_huge_values():
    from fractions import Fraction

    import numpy as np

    J = jacobian("x**2 + y, x*y")
    expected = sp.Matrix([[1, 1], [sp.Rational(1, 3), sp.Rational(1, 2)]])
    assert J.subs({"x": Fraction(1, 2), "y": "1/3"}) == expected
    assert J.subs({x: sp.Rational(1, 2), y: sp.Rational(1, 3)}) == expected
    assert J.at(np.array([1.0, 2.0])).tolist() == [[2.0, 1.0], [2.0, 1.0]]
    assert J.at(torch.tensor([1.0, 2.0])).tolist() == [[2.0, 1.0], [2.0, 1.0]]
    assert J.at({"x": "pi", "y": 0})[0, 0].item() == pytest.approx(2 * np.pi)
    assert jacobian("exp(exp(exp(10)))*x").at([1.0]).item() == float("inf")
    with pytest.raises(ExpressionError, match="too large"):
        jacobian("-exp(exp(exp(exp(10))))*x").at([1.0])


def test_determinant_of_rectangular_jacobian():
    with pytest.raises(NotSquareError, match=r"2x3.*as many functions as variables"):
        jacobian("x + y + z, x*y*z").determinant()
    with pytest.raises(NotSquareError):
        gradient("x*y").determinant()


@pytest.mark.parametrize("bad", ["", "   ", [], ","])
def test_empty_input(bad):
    with pytest.raises(ExpressionError):
        jacobian(bad)


def test_variable_errors():
    with pytest.raises(ExpressionError, match="no variables"):
        jacobian("2 + pi")
    assert jacobian("2 + pi", "x").matrix == sp.Matrix([[0]])
    with pytest.raises(ExpressionError, match="twice"):
        jacobian("x*y", "x, x")
    with pytest.raises(ExpressionError, match="function or constant"):
        jacobian("x", "sin")
    with pytest.raises(ExpressionError, match="not a valid variable name"):
        jacobian("x", "__class__")
    with pytest.raises(ExpressionError, match="empty"):
        jacobian("x", "")
    with pytest.raises(ExpressionError, match="two different symbols"):
        jacobian([sp.Symbol("x") + sp.Symbol("x", real=True)])
    with pytest.raises(ShapeError, match="ONE scalar"):
        gradient("x, y")
    with pytest.raises(ShapeError, match="ONE scalar"):
        hessian("x, y")
