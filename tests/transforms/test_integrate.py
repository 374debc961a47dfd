"""integrate(): change-of-variables integrals against closed forms AND direct Cartesian SciPy
quadrature of the same integrand (an independent oracle with no Jacobian in it)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import torch

from jacobite.transforms import (
    Affine,
    Cylindrical,
    IntegrationResult,
    Polar,
    Spherical,
    Transform,
    integrate,
)

DT = torch.float64
INF = math.inf


def gauss(p: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(p ** 2).sum())


# ---------------------------------------------------------------------- the Gaussian integral
def test_gaussian_integral_via_polar_is_pi_to_1e10():
    res = integrate(gauss, "polar", epsabs=1e-12, epsrel=1e-12)
    assert isinstance(res, IntegrationResult)
    assert abs(res.value - math.pi) < 1e-10
    assert abs(math.sqrt(res.value) - math.sqrt(math.pi)) < 1e-10  # ∫ e^{-x²} dx = √π
    assert res.converged and 0 <= res.error < 1e-10 and res.neval > 0
    assert res.region == ((0, INF), (0, 2 * math.pi)) and res.variables == ("r", "theta")
    assert res.transform == "polar" and res.method == "cubature"


def test_gaussian_integral_matches_direct_cartesian_scipy():
    cart, _ = si.dblquad(lambda y, x: math.exp(-(x * x + y * y)), -INF, INF, -INF, INF,
                         epsabs=1e-12, epsrel=1e-12)
    one_d, _ = si.quad(lambda x: math.exp(-x * x), -INF, INF, epsabs=1e-13, epsrel=1e-13)
    res = integrate(gauss, Polar(), epsabs=1e-12, epsrel=1e-12)
    assert abs(res.value - cart) < 1e-10
    assert abs(res.value - one_d ** 2) < 1e-10


def test_string_integrand_is_parsed_by_jacobite_symbolic():
    pytest.importorskip("sympy")
    pytest.importorskip("jacobite.symbolic")
    res = integrate("exp(-(x**2 + y**2))", "polar", epsabs=1e-11, epsrel=1e-11)
    assert abs(res.value - math.pi) < 1e-10


# ---------------------------------------------------------------------- nquad and cubature
@pytest.mark.parametrize("method", ["nquad", "cubature"])
def test_gaussian_over_the_unit_disk_with_both_scipy_methods(method):
    want = math.pi * (1 - math.exp(-1.0))  # ∫_0^{2π} ∫_0^1 e^{-r²} r dr dθ
    res = integrate(gauss, "polar", {"r": (0, 1)}, epsabs=1e-11, epsrel=1e-11, method=method)
    assert res.method == method
    assert abs(res.value - want) < 1e-10
    cart, _ = si.dblquad(lambda y, x: math.exp(-(x * x + y * y)), -1, 1,
                         lambda x: -math.sqrt(1 - x * x), lambda x: math.sqrt(1 - x * x),
                         epsabs=1e-12, epsrel=1e-12)
    assert abs(res.value - cart) < 1e-9


@pytest.mark.parametrize("method", ["nquad", "cubature"])
def test_neval_counts_every_evaluation(method):
    calls = []

    def f(p):
        calls.append(1)
        return gauss(p)

    A = torch.tensor([[1.0, 0.5], [0.0, 2.0]], dtype=DT)  # constant Jacobian: one AD call
    res = integrate(f, Affine(A), [(0, 1), (0, 1)], method=method, epsabs=1e-10, epsrel=1e-10)
    if method == "nquad":
        assert res.neval == len(calls) >= 21 * 21
    else:  # vmap calls f once per batch
        assert res.neval >= 21 * 21 and len(calls) < res.neval
    direct, _ = si.dblquad(lambda v, u: math.exp(-((u + 0.5 * v) ** 2 + (2 * v) ** 2)) * 2.0,
                           0, 1, 0, 1, epsabs=1e-12, epsrel=1e-12)
    assert abs(res.value - direct) < 1e-9


# ---------------------------------------------------------------------- volumes and areas
def test_volume_of_the_unit_ball_via_spherical():
    res = integrate(1.0, "spherical", {"r": (0, 1)}, epsrel=1e-10)
    assert abs(res.value - 4 * math.pi / 3) < 1e-9
    cart, _ = si.tplquad(lambda z, y, x: 1.0, -1, 1,
                         lambda x: -math.sqrt(1 - x * x), lambda x: math.sqrt(1 - x * x),
                         lambda x, y: -math.sqrt(max(1 - x * x - y * y, 0.0)),
                         lambda x, y: math.sqrt(max(1 - x * x - y * y, 0.0)))
    assert abs(res.value - cart) < 1e-7


def test_area_of_an_ellipse_via_an_affine_map():
    a, b = 3.0, 0.5
    ellipse = Affine(torch.diag(torch.tensor([a, b], dtype=DT))) @ Polar(region={"r": (0, 1)})
    res = integrate(1, ellipse, epsrel=1e-10)
    assert abs(res.value - math.pi * a * b) < 1e-9
    cart, _ = si.dblquad(lambda y, x: 1.0, -a, a, lambda x: -b * math.sqrt(1 - (x / a) ** 2),
                         lambda x: b * math.sqrt(1 - (x / a) ** 2))
    assert abs(res.value - cart) < 1e-7


def test_affine_map_of_the_unit_square_has_area_det_A():
    A = torch.tensor([[2.0, 1.0], [0.5, 3.0]], dtype=DT)
    T = Affine(A, b=torch.tensor([4.0, -1.0]))
    for method in ("nquad", "cubature"):
        res = integrate(1, T, [(0, 1), (0, 1)], method=method)
        assert abs(res.value - abs(torch.linalg.det(A).item())) < 1e-12


def test_gaussian_in_3d_via_spherical_is_pi_to_the_3_2():
    res = integrate(gauss, "spherical", epsabs=1e-8, epsrel=1e-8)
    assert res.method == "cubature"
    assert abs(res.value - math.pi ** 1.5) < 1e-9
    cart, _ = si.tplquad(lambda z, y, x: math.exp(-(x * x + y * y + z * z)), -INF, INF,
                         -INF, INF, -INF, INF)
    assert abs(res.value - cart) < 1e-7
    one_d, _ = si.quad(lambda x: math.exp(-x * x), -INF, INF, epsabs=1e-13, epsrel=1e-13)
    assert abs(res.value - one_d ** 3) < 1e-9


def test_3d_affine_map_and_cylindrical_integrand():
    # x = A u + b maps the unit cube onto a parallelepiped of volume |det A|
    A = torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 1.5]], dtype=DT)
    aff = integrate(1, Affine(A, b=torch.tensor([0.2, -0.1, 0.3])), [(0, 1)] * 3)
    assert abs(aff.value - abs(torch.linalg.det(A).item())) < 1e-12
    # ∫ z (x² + y²) over the cylinder r <= 1, 0 <= z <= 1  =  ∫ r² z r dr dθ dz  =  π / 4
    res = integrate(lambda p: p[2] * (p[0] ** 2 + p[1] ** 2), "cylindrical",
                    {"r": (0, 1), "z": (0, 1)}, epsrel=1e-10)
    assert abs(res.value - math.pi / 4) < 1e-10
    cart, _ = si.tplquad(lambda z, y, x: z * (x * x + y * y), -1, 1,
                         lambda x: -math.sqrt(1 - x * x), lambda x: math.sqrt(1 - x * x), 0, 1)
    assert abs(res.value - cart) < 1e-7


def test_cylinder_volume_and_sphere_section():
    R, h = 2.0, 3.0
    res = integrate(1, Cylindrical(), {"r": (0, R), "z": (0, h)})
    assert abs(res.value - math.pi * R * R * h) < 1e-8
    cap = integrate(1, Spherical(region={"r": (0, 1), "theta": (0, math.pi / 2)}))
    assert abs(cap.value - 2 * math.pi / 3) < 1e-8  # the upper half-ball


# ---------------------------------------------------------------------- user maps
def test_one_dimensional_user_map_tan():
    # x = tan(u) maps (-π/2, π/2) onto R; |dx/du| = sec² u
    T = Transform(torch.tan, variables=("u",), region=[(-math.pi / 2, math.pi / 2)])
    res = integrate(gauss, T, epsabs=1e-12, epsrel=1e-12)
    assert res.method == "nquad"
    assert abs(res.value - math.sqrt(math.pi)) < 1e-10
    direct, _ = si.quad(lambda x: math.exp(-x * x), -INF, INF)
    assert abs(res.value - direct) < 1e-9


def test_two_dimensional_user_map_with_non_constant_jacobian():
    # (s, t) -> (s, t + s²), det J = 1: the integral of e^{-|x|²} over R² stays π
    T = Transform(lambda u: torch.stack([u[0], u[1] + u[0] ** 2]), ("s", "t"))
    res = integrate(gauss, T, epsabs=1e-10, epsrel=1e-10)
    assert abs(res.value - math.pi) < 1e-9


def test_integrand_with_data_dependent_branches_falls_back_from_vmap():
    def ramp(p):  # Python control flow on values: vmap cannot trace it
        return p[0] if float(p[0]) > 0 else p[0] * 0

    res = integrate(ramp, "polar", [(0, 1), (-math.pi / 2, math.pi / 2)], epsrel=1e-9)
    assert abs(res.value - 2 / 3) < 1e-9  # ∫ x over the right half disk = 2/3


def test_region_as_sequence_and_float_conversion():
    res = integrate(np.float64(2.0), "polar", [(0, 1), (0, math.pi)])
    assert abs(res.value - math.pi) < 1e-9  # twice the area of the half disk
    assert float(res) == res.value


def test_a_divergent_integral_is_refused_never_reported_converged() -> None:
    from jacobite.errors import ConvergenceError

    with pytest.raises(ConvergenceError, match="diverges"):
        integrate("1", "polar")  # the area of the whole plane


@pytest.mark.parametrize("method", ["cubature", "nquad"])
def test_an_integrand_closing_over_a_tensor_that_requires_grad(method: str) -> None:
    # ∫∫_{[0,1]²} s·(x + y) = s, with s a trained parameter: the value, not the graph, is summed
    s = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    res = integrate(lambda p: s * p.sum(), Affine(torch.eye(2, dtype=torch.float64)),
                    [(0, 1), (0, 1)], method=method)
    assert abs(res.value - 2.5) < 1e-10
