"""Hostile values for jacobite.extrema: degenerate, unsolvable and extreme critical-point
problems, and Hessians that are empty, complex, non-symmetric, huge or tiny."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import sympy
import torch

from jacobite.errors import (
    DtypeError,
    ExpressionError,
    InvalidOptionError,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsupportedOperationError,
)
from jacobite.extrema import classify_hessian, critical_points, inertia

from ._probe import assert_close, refuses, within

F64 = torch.float64


# ---- classification ----------------------------------------------------------------------------

@pytest.mark.parametrize(("H", "kind"), [
    ([[1e300, 0.0], [0.0, 1e300]], "minimum"),
    ([[1e300, 0.0], [0.0, -1e300]], "saddle"),
    ([[1e300, 0.0], [0.0, 1e-300]], "inconclusive"),
    ([[-1e-300, 0.0], [0.0, -1e-300]], "inconclusive"),
    ([[5e-324]], "inconclusive"),
    ([[1.0, 5.0], [0.0, 1.0]], "saddle"),
    ([[2.0, 1.0], [1.0, 2.0]], "minimum"),
    ([[0.0, 0.0], [0.0, 0.0]], "inconclusive"),
    ([[-3.0]], "maximum"),
], ids=["huge-min", "huge-saddle", "huge-and-tiny", "tiny-max", "subnormal", "non-symmetric",
        "coupled-min", "zero", "one-by-one"])
@pytest.mark.parametrize("wrap", [
    lambda H: torch.tensor(H, dtype=F64), lambda H: np.array(H), lambda H: H,
    lambda H: torch.tensor(H, dtype=F64).t().contiguous().t(),
], ids=["tensor", "numpy", "list", "transposed-view"])
def test_classification_matches_the_eigenvalues_of_the_symmetric_part(H, kind, wrap):
    A = np.array(H)
    ev = np.linalg.eigvalsh((A + A.T) / 2)  # the oracle: numpy's eigenvalues, same cut-off rule
    cut = 1e-8 * max(1.0, np.abs(ev).max())
    assert (int((ev > cut).sum()), int((ev < -cut).sum())) == inertia(wrap(H))[:2]
    with within():
        assert classify_hessian(wrap(H)) == kind


@pytest.mark.parametrize("H", [sympy.Matrix([[1, 0], [0, 0]]), sympy.Matrix([[2, 1], [1, 2]]),
                               sympy.Matrix([[sympy.Rational(1, 10**300), 0], [0, 1]])],
                         ids=["singular", "coupled", "tiny-but-exact"])
def test_sympy_hessians_are_classified_exactly(H):
    ev = [complex(e).real for e in H.eigenvals(multiple=True)]
    want = ("saddle" if min(ev) < 0 < max(ev) else "inconclusive" if 0 in ev
            else "minimum" if min(ev) > 0 else "maximum")
    with within():
        assert classify_hessian(H) == want


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_hessians_are_classified(dtype):
    with within():
        assert classify_hessian(torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=dtype)) == "saddle"


def test_a_hermitian_complex_hessian_keeps_its_imaginary_parts():
    H = torch.tensor([[1, 1j], [-1j, 1]], dtype=torch.complex128)
    assert_close(np.linalg.eigvalsh(H.numpy()), [0.0, 2.0], atol=1e-12)
    with within():
        assert classify_hessian(H) == "inconclusive"


@pytest.mark.parametrize("H", [torch.zeros(0, 0), np.zeros((0, 0)), sympy.zeros(0, 0)],
                         ids=["tensor", "numpy", "sympy"])
def test_an_empty_hessian_is_refused(H):
    with refuses(ShapeError, "n >= 1"):
        classify_hessian(H)


@pytest.mark.parametrize("H", [torch.ones(2, 3), torch.tensor(1.0), torch.ones(3),
                               torch.ones(2, 2, 2)], ids=["2x3", "0-d", "vector", "3-d"])
def test_a_non_square_hessian_is_refused(H):
    with refuses(NotSquareError, "(n, n)"):
        classify_hessian(H)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nonfinite_hessian_is_refused(bad):
    with refuses(NonFiniteInputError, "twice differentiable"):
        classify_hessian(torch.tensor([[bad, 0.0], [0.0, 1.0]], dtype=F64))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_an_integer_hessian_tensor_is_refused_naming_the_conversion(dtype):
    with refuses(DtypeError, "H.to(torch.float64)"):
        classify_hessian(torch.eye(2, dtype=dtype))


# ---- symbolic critical points ------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "want"), [
    ("x + y", []),
    ("exp(x)", []),
    ("x**2 + y**2", [((0, 0), "minimum")]),
    ("x**4 + y**4", [((0, 0), "inconclusive")]),
    ("x**4/4 + x**2/2", [((0,), "minimum")]),
    ("-(x**2) - 1e300*y**2", [((0, 0), "maximum")]),
    ("x**3 - 3*x + y**2", [((-1, 0), "saddle"), ((1, 0), "minimum")]),
], ids=["linear", "exp", "bowl", "flat-bottom", "complex-roots-dropped", "huge-coefficient",
        "two-points"])
def test_symbolic_critical_points_match_sympy_solve(expr, want):
    with within(15.0):
        pts = critical_points(expr)
    got = [(tuple(float(v) for v in p.point.values()), p.kind) for p in pts]
    assert got == [(tuple(float(c) for c in xy), k) for xy, k in want]


def test_non_isolated_critical_points_are_marked_inconclusive():
    with within(15.0):
        (p,) = critical_points("(x - y)**2")
    assert p.kind == "inconclusive" and "non-isolated" in repr(p)


@pytest.mark.parametrize("expr", ["5", "0", "1e300"])
def test_an_expression_without_variables_is_refused_naming_variables(expr):
    with refuses(ExpressionError, "variables="):
        critical_points(expr)


@pytest.mark.parametrize("expr", ["x*exp(x) - cos(x)", "Abs(x)"])
def test_an_unsolvable_gradient_is_refused_naming_newton(expr):
    with refuses(UnsupportedOperationError, "method='newton'", "x0=", seconds=15.0):
        critical_points(expr)


def test_an_unsolvable_gradient_with_a_start_falls_back_to_newton_matching_scipy():
    with within(15.0):
        (p,) = critical_points("x*exp(x) - cos(x)", x0=[0.0])
    root = scipy.optimize.brentq(lambda x: x * np.exp(x) + np.exp(x) + np.sin(x), -1, 0)
    assert p.kind == "minimum"
    assert_close(p.as_floats()["x"], root, rtol=1e-10)


# ---- Newton critical points --------------------------------------------------------------------

@pytest.mark.parametrize("x0", [[1e300, 1.0], [1e-300, -1e-300], [5e-324, 0.0], [3.0, -7.0]],
                         ids=["huge", "tiny", "subnormal", "plain"])
def test_newton_finds_the_minimum_of_a_bowl_from_extreme_starts(x0):
    with within():
        (p,) = critical_points(lambda v: (v ** 2).sum(), x0=x0)
    assert p.kind == "minimum"
    assert_close(p.x, [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("x0", [torch.tensor([1, 2]), torch.tensor([1.0, 2.0]),
                                np.array([1.0, 2.0]), (1.0, 2.0)],
                         ids=["int-tensor", "float32", "numpy", "tuple"])
def test_newton_takes_any_numeric_start(x0):
    with within():
        (p,) = critical_points(lambda v: ((v - 0.5) ** 2).sum(), x0=x0)
    assert_close(p.x, [0.5, 0.5], atol=1e-10)


def test_newton_without_critical_points_reports_none():
    with within():
        assert critical_points(lambda v: v.sum(), x0=[1.0, 2.0]) == []


def test_newton_on_a_kink_reports_none():
    with within():
        assert critical_points(lambda v: v.abs().sum(), x0=[1.0]) == []


def test_newton_on_a_constant_function_calls_the_start_inconclusive():
    with within():
        (p,) = critical_points(lambda v: torch.tensor(1.0, dtype=F64), x0=[1.0, 2.0])
    assert p.kind == "inconclusive"


def test_newton_over_a_box_finds_the_critical_points_of_cos():
    with within():
        pts = critical_points(lambda v: torch.cos(v).sum(), box=[(-4, 4)], n_starts=4)
    xs = sorted(round(p.as_floats()["x0"], 9) for p in pts)
    assert xs == [round(-np.pi, 9), 0.0, round(np.pi, 9)]
    assert [p.kind for p in sorted(pts, key=lambda p: p.as_floats()["x0"])] == \
        ["minimum", "maximum", "minimum"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_nonfinite_start_is_refused(bad):
    with refuses(NonFiniteInputError, "finite points"):
        critical_points(lambda v: (v ** 2).sum(), x0=[bad, 1.0])


@pytest.mark.parametrize("box", [[(1, 1)], [(2, 1)], [(0, float("inf"))]],
                         ids=["empty", "reversed", "infinite"])
def test_a_degenerate_box_is_refused(box):
    with refuses(InvalidOptionError, "finite low < high"):
        critical_points(lambda v: (v ** 2).sum(), box=box)


def test_a_vector_valued_function_is_refused_naming_the_scalar():
    with refuses(ShapeError, "scalar"):
        critical_points(lambda v: v ** 2, x0=[1.0, 2.0])


def test_a_function_that_raises_propagates_its_error():
    with pytest.raises(ZeroDivisionError):
        critical_points(lambda v: 1 / 0, x0=[1.0])
