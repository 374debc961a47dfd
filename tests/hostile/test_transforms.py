"""Hostile values for jacobite.transforms: Jacobians and determinants of the named transforms at
extreme points, odd dtypes and shapes, and integrals that are singular, divergent or empty."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.integrate
import torch
from torch.func import jacfwd

from jacobite.errors import (
    ConvergenceError,
    DtypeError,
    InvalidOptionError,
    JacobiteWarning,
    NonFiniteInputError,
    NotSquareError,
    ShapeError,
    UnsafeExpressionError,
)
from jacobite.transforms import Affine, Cylindrical, Polar, Spherical, Transform, integrate

from ._probe import assert_close, refuses, within

F64 = torch.float64
NAMED = {"polar": (Polar, 2), "cylindrical": (Cylindrical, 3), "spherical": (Spherical, 3)}


def _point(n: int, r: float) -> torch.Tensor:
    return torch.tensor([r, 0.7, -0.4][:n], dtype=F64)


# ---- Jacobians and determinants at extreme points -----------------------------------------------

@pytest.mark.parametrize("r", [0.0, 1e300, 1e-300, 5e-324, -2.0], ids=["origin", "huge", "tiny",
                                                                      "subnormal", "negative-r"])
@pytest.mark.parametrize("name", sorted(NAMED))
def test_jacobian_at_extreme_radii_matches_jacfwd(name, r):
    cls, n = NAMED[name]
    T, u = cls(), _point(n, r)
    with within():
        J = T.jacobian(u)
    assert_close(J, jacfwd(T.forward)(u), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize(("name", "det"), [
    ("polar", lambda u: u[0]), ("cylindrical", lambda u: u[0]),
    ("spherical", lambda u: u[0] ** 2 * torch.sin(u[1])),
])
@pytest.mark.parametrize("r", [0.0, 1e100, 1e-100, 3.0])
def test_determinants_match_the_analytic_volume_factor(name, det, r):
    cls, n = NAMED[name]
    u = _point(n, r)
    with within():
        got = cls().det_jacobian(u)
    assert_close(got, det(u), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", sorted(NAMED))
def test_nonfinite_points_are_refused_naming_the_fix(name, bad):
    cls, n = NAMED[name]
    u = _point(n, 1.0)
    u[-1] = bad
    with refuses(NonFiniteInputError, "nan_to_num"):
        cls().det_jacobian(u)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 1e-2), (torch.bfloat16, 3e-2),
                                            (torch.float32, 1e-6)])
@pytest.mark.parametrize("name", sorted(NAMED))
def test_low_precision_points_keep_their_dtype(name, dtype, tol):
    cls, n = NAMED[name]
    u = _point(n, 2.0)
    with within():
        d = cls().det_jacobian(u.to(dtype))
    assert d.dtype == dtype
    assert_close(d, cls().det_jacobian(u), rtol=tol, atol=tol)


def test_complex_points_are_refused_naming_view_as_real():
    with refuses(DtypeError, "view_as_real"):
        Polar().det_jacobian(torch.ones(2, dtype=torch.complex64))


@pytest.mark.parametrize("shape", [(), (3,), (2, 5), (0, 3)])
def test_points_of_the_wrong_width_are_refused_naming_the_layout(shape):
    with refuses(ShapeError, "stack the coordinates along the last axis"):
        Polar().det_jacobian(torch.ones(shape, dtype=F64))


def test_an_empty_batch_gives_an_empty_determinant():
    with within():
        d = Polar().det_jacobian(torch.zeros(0, 2, dtype=F64))
        J = Polar().jacobian(torch.zeros(0, 2, dtype=F64))
    assert d.shape == (0,) and J.shape == (0, 2, 2)


@pytest.mark.parametrize("make", [
    lambda u: u.t().contiguous().t(),
    lambda u: torch.stack([u[:, 0], u[:, 1]], 1)[::1],
    lambda u: u.repeat_interleave(2, 0)[::2],
], ids=["transposed-storage", "stacked", "strided"])
def test_batched_non_contiguous_points_match_the_loop(make):
    u = torch.tensor([[1.0, 0.2], [2.0, -1.0], [0.5, 3.0]], dtype=F64)
    with within():
        d = Polar().det_jacobian(make(u))
    assert_close(d, u[:, 0])


def test_meta_points_give_a_meta_determinant():
    with within():
        d = Polar().det_jacobian(torch.ones(2, device="meta"))
    assert d.is_meta and d.shape == ()


def test_requires_grad_points_give_a_differentiable_determinant():
    u = torch.tensor([2.0, 1.0, 0.3], dtype=F64, requires_grad=True)
    with within():
        d = Spherical().det_jacobian(u)
        (g,) = torch.autograd.grad(d, u)
    want = torch.tensor([2 * 2.0 * math.sin(1.0), 4.0 * math.cos(1.0), 0.0], dtype=F64)
    assert_close(g, want, rtol=1e-12)


@pytest.mark.parametrize(("A", "det"), [
    (torch.zeros(2, 2, dtype=F64), 0.0),
    (torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=F64), 0.0),
    (torch.tensor([[1e150, 0.0], [0.0, 1e-150]], dtype=F64), 1.0),
    (torch.tensor([[1e200, 0.0], [0.0, 1e200]], dtype=F64), math.inf),
    (torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64), -1.0),
], ids=["zero", "rank-1", "badly-scaled", "overflowing", "reflection"])
def test_affine_determinants_of_singular_and_extreme_matrices(A, det):
    with within():
        got = Affine(A).det_jacobian(torch.ones(2, dtype=F64))
    assert_close(got, det, rtol=1e-12)


@pytest.mark.parametrize("A", [torch.ones(2, 3, dtype=F64), torch.ones(0, 0, dtype=F64)],
                         ids=["2x3", "0x0"])
def test_affine_of_a_non_square_matrix_is_refused(A):
    with refuses(NotSquareError, "square"):
        Affine(A)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_affine_with_nonfinite_entries_is_refused(bad):
    with refuses(InvalidOptionError, "finite"):
        Affine(torch.tensor([[1.0, bad], [0.0, 1.0]], dtype=F64))


def test_a_user_transform_that_ignores_its_input_has_determinant_zero():
    T = Transform(lambda u: torch.zeros(2, dtype=F64), 2)
    with within():
        d = T.det_jacobian(torch.ones(2, dtype=F64))
    assert float(d) == 0.0


def test_a_user_transform_that_drops_a_coordinate_is_refused():
    with refuses(NotSquareError, "torch.stack"):
        Transform(lambda u: u[:1], 2).det_jacobian(torch.ones(2, dtype=F64))


# ---- integrals ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("f", "region", "want"), [
    (1, [(0, 1), (0, 2 * math.pi)], math.pi),
    (1, [(1, 1), (0, 1)], 0.0),
    (1, [(0, 1), (0, 0)], 0.0),
    (lambda p: torch.tensor(1), [(0, 1), (0, 1)], 0.5),
    (lambda p: torch.zeros((), dtype=F64), [(0, 1), (0, 1)], 0.0),
    ("x**2 + y**2", [(0, 1), (0, 2 * math.pi)], math.pi / 2),
    (lambda p: 1e300 * torch.ones((), dtype=F64), [(0, 1), (0, 1)], 0.5e300),
    (lambda p: 1e-300 * torch.ones((), dtype=F64), [(0, 1), (0, 1)], 0.5e-300),
    (lambda p: torch.exp(-(p ** 2).sum()), None, math.pi),
], ids=["disc-area", "empty-r", "empty-theta", "int-tensor", "zero", "string", "huge", "tiny",
        "gaussian-whole-plane"])
def test_integrals_match_the_analytic_value(f, region, want):
    with within():
        res = integrate(f, "polar", region=region, epsrel=1e-10, epsabs=0.0)
    assert res.converged
    assert_close(res.value, want, rtol=1e-8, atol=1e-10 if want < 1e-200 else 1e-310)


def test_integrate_one_dimensional_affine_matches_scipy_quad():
    f = lambda x: torch.exp(-x[0] ** 2) * torch.cos(3 * x[0])  # noqa: E731
    with within():
        res = integrate(f, Affine(torch.tensor([[2.0]], dtype=F64)), region=[(-3, 3)],
                        epsabs=1e-12, epsrel=1e-12)
    want, _ = scipy.integrate.quad(lambda u: 2 * np.exp(-(2 * u) ** 2) * np.cos(6 * u), -3, 3,
                                   epsabs=1e-13, epsrel=1e-13)
    assert res.converged
    assert_close(res.value, want, rtol=1e-10)


@pytest.mark.parametrize("f", [lambda p: torch.tensor(float("nan")),
                               lambda p: torch.tensor(float("inf")),
                               lambda p: 1 / (p[0] - p[0])],
                         ids=["nan", "inf", "zero-division"])
def test_nonfinite_integrands_are_refused_naming_the_region(f):
    with refuses(NonFiniteInputError, "shrinking the region"):
        integrate(f, "polar", region=[(0, 1), (0, 1)])


def test_a_budget_too_small_for_the_tolerance_is_reported_honestly():
    f = lambda p: torch.exp(-(p ** 2).sum())  # noqa: E731
    with within(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = integrate(f, "polar", limit=3, epsabs=1e-14, epsrel=1e-14)
    assert not res.converged
    assert any(issubclass(w.category, JacobiteWarning) for w in caught)


@pytest.mark.parametrize("region", [[(1, 0), (0, 1)], [(0, 1), (3, 2)]])
def test_a_reversed_region_is_refused_naming_the_swap(region):
    with refuses(InvalidOptionError, "swap them"):
        integrate(1, "polar", region=region)


@pytest.mark.parametrize("side", [0, 1])
def test_a_nan_bound_is_refused_naming_inf_as_the_alternative(side):
    bounds = [0.0, 1.0]
    bounds[side] = float("nan")
    with refuses(InvalidOptionError, "is NaN", "math.inf"):
        integrate(1, "polar", region=[tuple(bounds), (0, 1)])


def test_a_vector_integrand_is_refused_naming_a_reduction():
    with refuses(ShapeError, ".sum()"):
        integrate(lambda p: p, "polar", region=[(0, 1), (0, 1)])


@pytest.mark.parametrize("expr", ["__import__('os')", "x.real", "lambda: 1"])
def test_an_unsafe_string_integrand_is_refused(expr):
    with refuses(UnsafeExpressionError, "only arithmetic"):
        integrate(expr, "polar", region=[(0, 1), (0, 1)])


def test_an_integrand_that_raises_propagates_its_error():
    with pytest.raises(ZeroDivisionError):
        integrate(lambda p: 1 / 0, "polar", region=[(0, 1), (0, 1)])


def test_a_divergent_integral_over_the_plane_is_refused_naming_a_bounded_region():
    with refuses(ConvergenceError, "diverges", "bounded region", seconds=5.0):
        integrate(1, "polar")


def test_a_singular_integrand_that_spends_its_budget_is_refused_naming_the_budget():
    # ∫∫ 1/r² r dr dθ over the unit disc diverges logarithmically at the origin
    with refuses(ConvergenceError, "raise max_evaluations", seconds=5.0):
        integrate(lambda p: 1 / (p ** 2).sum(), "polar", region=[(0, 1), (0, 2 * math.pi)],
                  max_evaluations=20_000)
