"""Critical points and the second-derivative test, symbolic and by Newton's method (AD)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given
from hypothesis import strategies as st

sp = pytest.importorskip("sympy")

import jacobite  # noqa: E402
from jacobite.errors import (  # noqa: E402
    ArgumentTypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.extrema import CriticalPoint, classify_hessian, critical_points, inertia  # noqa: E402
from jacobite.extrema.numeric import starting_points  # noqa: E402
from jacobite.symbolic import ExpressionError  # noqa: E402

DT = torch.float64
APPENDIX_A = "x**2 + 4*y**2 - 11*x + 8*y - 16"


def appendix_a(v):
    return v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16


def kinds(points):
    return [p.kind for p in points]


# ----------------------------------------------------------------------------- appendix A


def test_appendix_a_exact():
    (p,) = critical_points(APPENDIX_A)
    assert isinstance(p, CriticalPoint) and p.exact and p.isolated
    assert p.point == {"x": sp.Rational(11, 2), "y": -1}
    assert isinstance(p.point["x"], sp.Rational)
    assert p.hessian == sp.Matrix([[2, 0], [0, 8]])
    assert p.hessian.det() == 16
    assert p.kind == "minimum"
    assert p.value == sp.Rational(-201, 4)
    # the exact value, recomputed from the formula by hand (reference eq. 75-79)
    xs, ys = sp.Rational(11, 2), sp.Integer(-1)
    assert p.value == xs**2 + 4 * ys**2 - 11 * xs + 8 * ys - 16
    assert p.eigenvalues.tolist() == [2.0, 8.0]
    assert p.x.tolist() == [5.5, -1.0]
    assert p.as_floats() == {"x": 5.5, "y": -1.0}
    assert "minimum" in repr(p)


def test_appendix_a_numeric_via_ad():
    (p,) = critical_points(appendix_a, x0=[0.0, 0.0], variables="x, y")
    assert not p.exact
    torch.testing.assert_close(p.x, torch.tensor([5.5, -1.0], dtype=DT))
    assert p.kind == "minimum"
    assert p.value == pytest.approx(-201 / 4, abs=1e-12)
    torch.testing.assert_close(p.hessian, jacobite.hessian(appendix_a, p.x))
    torch.testing.assert_close(p.hessian, torch.tensor([[2.0, 0.0], [0.0, 8.0]], dtype=DT))
    assert p.point == pytest.approx({"x": 5.5, "y": -1.0})
    # the same string through Newton's method
    (q,) = critical_points(APPENDIX_A, method="newton", box=[(-10, 10), (-10, 10)])
    assert q.point == pytest.approx({"x": 5.5, "y": -1.0}) and q.kind == "minimum"


# ----------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(("f", "expected"), [
    ("x**2 - y**2", [({"x": 0, "y": 0}, "saddle", 0)]),
    ("1 - x**2 - y**2 + 2*x", [({"x": 1, "y": 0}, "maximum", 2)]),
    ("x**4 + y**4", [({"x": 0, "y": 0}, "inconclusive", 0)]),
    ("x**2 + y**4", [({"x": 0, "y": 0}, "inconclusive", 0)]),
    ("x**2 - y**2 + z**4", [({"x": 0, "y": 0, "z": 0}, "saddle", 0)]),  # singular, mixed signs
    ("x**3 - 3*x + y**2", [({"x": -1, "y": 0}, "saddle", 2), ({"x": 1, "y": 0}, "minimum", -2)]),
    ("x*y", [({"x": 0, "y": 0}, "saddle", 0)]),
    ("x + y", []),
    ("x**3 + x", []),  # no real critical points
])
def test_symbolic_kinds(f, expected):
    got = critical_points(f)
    assert [(p.point, p.kind, p.value) for p in got] == expected
    for p in got:  # the exact Hessian agrees with AD at the float point
        fn = jacobite.symbolic.to_torch(f)
        torch.testing.assert_close(p.hessian.evalf() and torch.tensor(
            [[float(v) for v in row] for row in p.hessian.tolist()], dtype=DT),
            jacobite.hessian(fn, p.x))


def test_irrational_critical_points():
    pts = critical_points("x**2 + y**2 + z**4 - z**2")
    assert kinds(pts) == ["minimum", "saddle", "minimum"]
    assert pts[0].point["z"] == -sp.sqrt(2) / 2
    assert pts[0].value == sp.Rational(-1, 4)


def test_non_isolated_family():
    (p,) = critical_points("(x - y)**2")
    assert not p.isolated and p.kind == "inconclusive" and p.x is None and p.eigenvalues is None
    assert p.point == {"x": sp.Symbol("y", real=True), "y": sp.Symbol("y", real=True)}
    assert p.value == 0
    assert "non-isolated" in repr(p)
    with pytest.raises(ExpressionError, match="family"):
        p.as_floats()


@pytest.mark.parametrize(("f", "fn"), [
    ("x**3 - 3*x + y**2", lambda v: v[0] ** 3 - 3 * v[0] + v[1] ** 2),
    ("x**2 - y**2", lambda v: v[0] ** 2 - v[1] ** 2),
    ("x**4 + y**4", lambda v: v[0] ** 4 + v[1] ** 4),
    ("1 - x**2 - y**2 + 2*x", lambda v: 1 - v[0] ** 2 - v[1] ** 2 + 2 * v[0]),
    ("x**2 + y**2 + z**4 - z**2", lambda v: v[0] ** 2 + v[1] ** 2 + v[2] ** 4 - v[2] ** 2),
])
def test_newton_agrees_with_symbolic(f, fn):
    exact = critical_points(f)
    n = len(exact[0].point)
    numeric = critical_points(fn, box=[(-2.0, 2.0)] * n, n_starts=16)
    assert kinds(numeric) == kinds(exact)
    for a, b in zip(numeric, exact, strict=True):
        torch.testing.assert_close(a.x, b.x, atol=1e-6, rtol=0)
        assert a.value == pytest.approx(float(b.value), abs=1e-10)
        torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-5, rtol=1e-8)


def test_newton_fallback_for_transcendental_gradient():
    f = "cosh(x) - x**3"  # f' = sinh(x) - 3x^2: SymPy cannot solve it
    with pytest.raises(UnsupportedOperationError, match=r"x0=.*box="):
        critical_points(f)
    with pytest.raises(UnsupportedOperationError, match=r"x0=.*box="):
        critical_points(f, method="symbolic", box=[(-1.0, 6.0)])
    pts = critical_points(f, box=[(-1.0, 6.0)], n_starts=24)  # auto: falls back to Newton
    roots = [scipy.optimize.brentq(lambda t: np.sinh(t) - 3 * t**2, a, b)
             for a, b in ((-0.2, 0.2), (0.2, 1.0), (2.0, 6.0))]
    assert [p.point["x"] for p in pts] == pytest.approx(roots, abs=1e-10)
    assert kinds(pts) == ["minimum", "maximum", "minimum"]  # f'' = cosh(x) - 6x
    for p in pts:
        assert p.eigenvalues.item() == pytest.approx(np.cosh(p.x.item()) - 6 * p.x.item())


def test_several_starts_and_names():
    fn = lambda v: v[0] ** 3 - 3 * v[0] + v[1] ** 2  # noqa: E731
    pts = critical_points(fn, x0=[[2.0, 1.0], [-2.0, 1.0], [1.1, 0.0]], variables=["a", "b"])
    assert [p.point for p in pts] == [pytest.approx({"a": -1.0, "b": 0.0}),
                                      pytest.approx({"a": 1.0, "b": 0.0})]
    assert starting_points(box=[(0, 1)], n_starts=8, seed=3).shape == (9, 1)


def test_functions_that_cannot_be_vmapped_fall_back_to_one_point_at_a_time():
    def f(v):
        scale = 1.0 if float(v[0].detach()) > -10 else 2.0  # a Python number: no vmap
        return scale * (v[0] - 1) ** 2 - v[1] ** 2

    with pytest.warns(JacobiteWarning, match="Python number"):
        (p,) = critical_points(f, x0=[[0.0, 1.0], [3.0, -2.0]])
    assert p.kind == "saddle" and p.point == pytest.approx({"x0": 1.0, "x1": 0.0})


# ----------------------------------------------------------------------------- classification


def test_classify_hessian_two_by_two_rule():
    assert classify_hessian(torch.tensor([[2.0, 0.0], [0.0, 8.0]])) == "minimum"
    assert classify_hessian(np.array([[-2.0, 1.0], [1.0, -3.0]])) == "maximum"
    assert classify_hessian([[1.0, 3.0], [3.0, 1.0]]) == "saddle"
    assert classify_hessian(torch.zeros(2, 2)) == "inconclusive"
    assert classify_hessian(sp.Matrix([[2, 1], [1, sp.Rational(1, 2)]])) == "inconclusive"
    assert classify_hessian(sp.Matrix([[sp.sqrt(2), 1], [1, sp.sqrt(2)]])) == "minimum"
    assert inertia(torch.diag(torch.tensor([1.0, -1.0, 0.0]))) == (1, 1, 1)


@given(st.integers(-5, 5), st.integers(-5, 5), st.integers(-5, 5))
def test_exact_classification_matches_the_reference_rule(a, b, c):
    H = sp.Matrix([[a, b], [b, c]])
    det = a * c - b * b
    if det < 0:
        expected = "saddle"
    elif det == 0:
        expected = "inconclusive"
    else:
        expected = "minimum" if a > 0 else "maximum"
    assert classify_hessian(H) == expected
    assert classify_hessian(torch.tensor([[a, b], [b, c]], dtype=DT)) == expected


@given(st.lists(st.integers(-4, 4), min_size=6, max_size=6))
def test_exact_inertia_matches_eigenvalues(entries):
    a, b, c, d, e, f = entries
    H = sp.Matrix([[a, b, c], [b, d, e], [c, e, f]])
    ev = np.linalg.eigvalsh(np.array(H.tolist(), dtype=float))
    tol = 1e-9 * max(1.0, np.abs(ev).max())
    expected = (int((ev > tol).sum()), int((ev < -tol).sum()), int((np.abs(ev) <= tol).sum()))
    assert inertia(H) == expected


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_fix():
    fn = lambda v: (v**2).sum()  # noqa: E731
    with pytest.raises(InvalidOptionError, match="method must be"):
        critical_points("x**2", method="bfgs")
    with pytest.raises(InvalidOptionError, match="method='newton'"):
        critical_points(fn, method="symbolic")
    with pytest.raises(InvalidOptionError, match="x0="):
        critical_points(fn)
    with pytest.raises(InvalidOptionError, match="exactly one"):
        critical_points(fn, x0=[1.0], box=[(0, 1)])
    with pytest.raises(ArgumentTypeError, match="torch function"):
        critical_points(3)
    for kw, error in (({"n_starts": 0}, InvalidOptionError), ({"seed": -1}, InvalidOptionError),
                      ({"tol": float("nan")}, InvalidOptionError),
                      ({"max_iter": 2.5}, ArgumentTypeError)):
        with pytest.raises(error, match="must be"):
            critical_points(fn, box=[(0, 1), (0, 1)], **kw)
    with pytest.raises(ArgumentTypeError, match="square matrix"):
        inertia("abc")
    with pytest.raises(NotSquareError, match="second derivatives"):
        classify_hessian(torch.ones(3))
    with pytest.raises(NonFiniteInputError):
        critical_points(fn, x0=[float("nan"), 1.0])
    with pytest.raises(ShapeError, match="box"):
        critical_points(fn, box=[0, 1])
    with pytest.raises(InvalidOptionError, match="low < high"):
        critical_points(fn, box=[(1, 0)])
    with pytest.raises(ShapeError, match="scalar"):
        critical_points(lambda v: v * 2, x0=[1.0, 2.0])
    with pytest.raises(ExpressionError, match="ONE scalar"):
        critical_points("x, y")
    with pytest.raises(ExpressionError, match="depends on a"):
        critical_points("a*x**2", "x")
    with pytest.raises(ExpressionError, match="not allowed"):
        critical_points("__import__('os')")
    with pytest.raises(NotSquareError):
        classify_hessian(torch.zeros(2, 3))
    with pytest.raises(NonFiniteInputError):
        classify_hessian(torch.tensor([[float("nan")]]))
    with pytest.raises(ShapeError, match="depends on"):
        classify_hessian(sp.Matrix([[sp.Symbol("a")]]))
    with pytest.raises(ShapeError, match="names"):
        critical_points(fn, x0=[1.0, 2.0], variables=["a"])


def test_box_starts_seed_none_follows_torch_manual_seed() -> None:
    from jacobite.extrema.numeric import starting_points

    box = [(0.0, 1.0), (-1.0, 1.0)]
    torch.manual_seed(1)
    a = starting_points(None, box, n_starts=4, seed=None)
    torch.manual_seed(1)
    assert torch.equal(a, starting_points(None, box, n_starts=4, seed=None))
    assert torch.equal(starting_points(None, box, n_starts=4, seed=3),
                       starting_points(None, box, n_starts=4, seed=3))
    assert bool(((a >= torch.tensor([0.0, -1.0])) & (a <= torch.tensor([1.0, 1.0]))).all())


@pytest.mark.parametrize("H", [torch.zeros(0, 0), np.zeros((0, 0)), sp.zeros(0, 0)],
                         ids=["tensor", "numpy", "sympy"])
def test_an_empty_hessian_has_no_classification(H):
    # a function of no variables: its inertia is (0, 0, 0) and calling that a maximum (or a
    # minimum) would be arbitrary
    assert inertia(H) == (0, 0, 0)
    with pytest.raises(ShapeError, match="n >= 1") as info:
        classify_hessian(H)
    assert type(info.value) is ShapeError


def test_a_complex_hessian_is_classified_as_hermitian_with_its_imaginary_parts():
    # [[1, i], [-i, 1]] has eigenvalues 0 and 2 (numpy's eigvalsh is the oracle); dropping the
    # imaginary parts would leave the identity, a minimum
    H = torch.tensor([[1, 1j], [-1j, 1]], dtype=torch.complex64)
    ev = np.linalg.eigvalsh(H.numpy().astype(np.complex128))
    np.testing.assert_allclose(ev, [0.0, 2.0], atol=1e-12)
    assert inertia(H) == (1, 0, 1)
    assert classify_hessian(H) == "inconclusive"
    assert classify_hessian(torch.tensor([[1, 2j], [-2j, 1]], dtype=torch.complex128)) == "saddle"
