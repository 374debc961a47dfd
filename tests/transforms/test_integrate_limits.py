"""integrate() bounds its work: max_evaluations, and divergence over unbounded regions refused
with the partial integrals as evidence (checked against closed forms and SciPy)."""

from __future__ import annotations

import math
import re
import warnings

import pytest
import scipy.integrate as si
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import ArgumentTypeError, ConvergenceError, InvalidOptionError
from jacobite.transforms import Polar, Spherical, integrate
from jacobite.transforms._budget import cut_at, divergence_evidence


def test_area_of_the_plane_diverges_with_disk_areas_as_evidence():
    with pytest.raises(ConvergenceError, match="diverges") as info:
        integrate("1", "polar")
    pairs = re.findall(r"R=([0-9.e+]+): ([0-9.e+]+)", str(info.value))
    assert len(pairs) == 4
    for R, v in pairs:  # the partial integrals are the areas πR² of the disks
        assert float(v) == pytest.approx(math.pi * float(R) ** 2, rel=1e-4)


def test_gaussian_in_one_variable_over_the_plane_diverges():
    with pytest.raises(ConvergenceError, match="diverges") as info:
        integrate("exp(-x**2)", "polar")
    pairs = re.findall(r"R=([0-9.e+]+): ([0-9.e+]+)", str(info.value))
    R, v = float(pairs[-1][0]), float(pairs[-1][1])
    # oracle: the same partial integral in Cartesian coordinates over the disk of radius R
    ref, _ = si.dblquad(lambda y, x: math.exp(-x * x), -R, R,
                        lambda x: -math.sqrt(R * R - x * x), lambda x: math.sqrt(R * R - x * x),
                        epsabs=1e-9, epsrel=1e-9)
    assert v == pytest.approx(ref, rel=2e-3)


def test_volume_of_space_diverges_in_spherical_coordinates():
    evidence = divergence_evidence(1.0, Spherical(), Spherical().region)
    assert evidence is not None
    for R, v in evidence[-3:]:
        assert v == pytest.approx(4 / 3 * math.pi * R**3, rel=1e-3)


@pytest.mark.parametrize("f", ["exp(-(x**2 + y**2))", "exp(-(x**2 + y**2) / 1e6)",
                               "1/(1 + x**2 + y**2)**1.05"])
def test_convergent_integrals_give_no_divergence_evidence(f):
    # the last converges slowly: its partial integrals grow by less each time R doubles
    assert divergence_evidence(f, Polar(), Polar().region) is None


def test_a_convergent_integral_over_the_plane_is_unchanged():
    res = integrate("exp(-(x**2 + y**2))", "polar", epsabs=1e-12, epsrel=1e-12)
    assert res.converged and res.message == ""
    assert res.value == pytest.approx(math.pi, abs=1e-11)


@pytest.mark.parametrize("method", ["cubature", "nquad"])
def test_max_evaluations_is_a_hard_bound(method):
    with pytest.raises(ConvergenceError, match="max_evaluations=300"):
        integrate("exp(-x**2)", "polar", {"r": (0, 1)}, epsabs=1e-300, epsrel=1e-300,
                  method=method, max_evaluations=300)


def test_an_unreachable_tolerance_ends_at_the_default_budget():
    with pytest.raises(ConvergenceError, match="max_evaluations"):
        integrate(lambda p: torch.sin(p[0]), "polar", {"r": (0, 1)}, epsabs=1e-300,
                  epsrel=1e-300, method="nquad", max_evaluations=2000)


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_neval_never_exceeds_max_evaluations(cap):
    try:
        res = integrate(1.0, "polar", {"r": (0, 1)}, max_evaluations=cap)
    except ConvergenceError:
        return
    assert res.neval <= cap and res.value == pytest.approx(math.pi, rel=1e-8)


def test_max_evaluations_is_validated():
    with pytest.raises(InvalidOptionError):
        integrate(1.0, "polar", {"r": (0, 1)}, max_evaluations=0)
    with pytest.raises(ArgumentTypeError):
        integrate(1.0, "polar", {"r": (0, 1)}, max_evaluations="10")  # type: ignore[arg-type]


def test_an_unconverged_result_carries_its_message():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = integrate(lambda p: torch.log(p.norm()), "polar", {"r": (0, 1)}, method="nquad",
                        limit=1)
    assert not res.converged and "missed the tolerance" in res.message


def test_cut_at_keeps_finite_ends():
    inf = math.inf
    assert cut_at(((0.0, inf), (-inf, 3.0), (2.0, inf)), 4.0) == ((0.0, 4.0), (-4.0, 3.0),
                                                                  (2.0, 6.0))


def test_a_divergent_line_integral_is_refused_though_quad_returns_a_finite_number():
    from jacobite.transforms import Affine

    line = [(-math.inf, math.inf)]
    with pytest.raises(ConvergenceError, match="diverges") as info:
        integrate(lambda p: 1 / (1 + p[0].abs()), Affine([[1.0]]), line)
    pairs = re.findall(r"R=([0-9.e+]+): ([0-9.e+]+)", str(info.value))
    for R, v in pairs:  # ∫_{-R}^{R} dx / (1 + |x|) = 2 log(1 + R)
        assert float(v) == pytest.approx(2 * math.log1p(float(R)), rel=1e-3)
    res = integrate(lambda p: 1 / (1 + p[0] ** 2), Affine([[1.0]]), line)
    assert res.converged and res.value == pytest.approx(math.pi, rel=1e-8)
