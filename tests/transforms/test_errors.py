"""Bad input to transforms and integrate raises typed errors whose message names the fix."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from jacobite.errors import (
    InvalidOptionError,
    JacobiteError,
    JacobiteWarning,
    NonFiniteInputError,
    NotSquareError,
    OutputTypeError,
    ShapeError,
)
from jacobite.transforms import Affine, Polar, Spherical, Transform, get_transform, integrate

DT = torch.float64


def gauss(p: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(p ** 2).sum())


def test_unknown_transform_name_suggests_and_lists_names():
    with pytest.raises(InvalidOptionError, match=r"did you mean 'polar'.*spherical"):
        integrate(gauss, "polr")
    with pytest.raises(InvalidOptionError, match=r"Affine\(A, b\)"):
        get_transform("affine")
    with pytest.raises(InvalidOptionError, match="Transform"):
        get_transform(lambda u: u)
    with pytest.raises(InvalidOptionError):
        get_transform(3)


def test_region_with_wrong_number_of_bounds():
    with pytest.raises(ShapeError, match=r"1 bound\(s\) for 2 variable\(s\).*one \(low, high\)"):
        integrate(gauss, "polar", [(0, 1)])
    with pytest.raises(ShapeError, match="3 bound"):
        integrate(gauss, "polar", [(0, 1), (0, 1), (0, 1)])
    with pytest.raises(ShapeError, match="pair"):
        integrate(gauss, "polar", [(0, 1, 2), (0, 1)])
    with pytest.raises(ShapeError):
        integrate(gauss, "polar", "r < 1")


def test_lower_above_upper_names_the_swap():
    with pytest.raises(InvalidOptionError, match="swap them"):
        integrate(gauss, "polar", [(1, 0), (0, 1)])
    with pytest.raises(InvalidOptionError, match="swap"):
        Polar(region={"theta": (3, 1)})


def test_bad_bound_values_and_unknown_names():
    with pytest.raises(InvalidOptionError, match="NaN"):
        integrate(gauss, "polar", {"r": (0, math.nan)})
    with pytest.raises(InvalidOptionError, match="real number"):
        integrate(gauss, "polar", {"r": (0, "1")})
    with pytest.raises(InvalidOptionError, match=r"unknown variable.*\('r', 'theta'\)"):
        integrate(gauss, "polar", {"rho": (0, 1)})
    with pytest.raises(InvalidOptionError, match="finite end"):
        integrate(gauss, "polar", {"r": (math.inf, math.inf)})


@pytest.mark.parametrize("method", ["nquad", "cubature"])
def test_non_finite_integrand_is_refused_with_the_point(method):
    def log_x(p):  # NaN where x < 0
        return torch.log(p[0])

    with pytest.raises(NonFiniteInputError, match=r"not finite at r=.*theta=.*\(x=.*shrinking"):
        integrate(log_x, "polar", {"r": (0, 1)}, method=method)


def test_non_finite_transform_is_refused():
    T = Transform(lambda u: 1.0 / u, 1)
    with pytest.raises(NonFiniteInputError, match="transform"):
        integrate(lambda p: p[0] * 0, T, [(-1.0, 1.0)], method="cubature")


def test_integrand_must_be_a_scalar_torch_function():
    with pytest.raises(ShapeError, match="scalar"):
        integrate(lambda p: p, "polar", {"r": (0, 1)}, method="nquad")
    with pytest.raises(ShapeError, match="scalar"):
        integrate(lambda p: p, "polar", {"r": (0, 1)}, method="cubature")
    with pytest.raises(OutputTypeError):
        integrate([1, 2], "polar")
    with pytest.raises(OutputTypeError, match="complex"):
        integrate(lambda p: torch.complex(p[0], p[1]), "polar", {"r": (0, 1)}, method="nquad")


def test_bad_string_integrands():
    pytest.importorskip("sympy")
    pytest.importorskip("jacobite.symbolic")
    from jacobite.errors import JacobiteError

    with pytest.raises(ShapeError, match="ONE scalar expression in x, y"):
        integrate("x, y", "polar", {"r": (0, 1)})
    with pytest.raises(JacobiteError, match="not variables"):  # r is not an original coordinate
        integrate("exp(-r**2)", "polar")
    with pytest.raises(JacobiteError):  # refused by the parser's whitelist, never executed
        integrate("__import__('os').getcwd()", "polar")


def test_bad_options():
    with pytest.raises(InvalidOptionError, match="method"):
        integrate(gauss, "polar", method="simpson")
    with pytest.raises(InvalidOptionError, match="epsabs"):
        integrate(gauss, "polar", epsabs=-1)
    with pytest.raises(InvalidOptionError, match="epsrel"):
        integrate(gauss, "polar", epsabs=0, epsrel=0)
    with pytest.raises(InvalidOptionError, match="limit"):
        integrate(gauss, "polar", limit=0)


def test_transform_construction_errors():
    with pytest.raises(NotSquareError):
        Affine(torch.ones(2, 3))
    with pytest.raises(ShapeError, match=r"shape \(2,\)"):
        Affine(torch.eye(2), b=torch.ones(3))
    with pytest.raises(ShapeError):
        Affine(torch.ones(3))
    with pytest.raises(InvalidOptionError, match="finite"):
        Affine(torch.tensor([[1.0, math.inf], [0.0, 1.0]]))
    with pytest.raises(NotSquareError, match="one coordinate per variable"):
        Transform(lambda u: u, ("a", "b"), coordinates=("x",))
    with pytest.raises(ShapeError, match="distinct"):
        Transform(lambda u: u, ("a", "a"))
    with pytest.raises(OutputTypeError):
        Transform("not callable", 2)
    with pytest.raises(ShapeError):
        Transform(lambda u: u, 0)


def test_transform_evaluation_errors():
    with pytest.raises(ShapeError, match="last dimension 3"):
        Spherical().forward(torch.ones(4, 2, dtype=DT))
    wide = Transform(lambda u: torch.stack([u[0], u[1], u[0] * u[1]]), 2)
    with pytest.raises(NotSquareError, match="R\\^2 to R\\^2"):
        wide.forward(torch.ones(2, dtype=DT))
    with pytest.raises(NotSquareError):
        wide.forward(torch.ones(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match="one point"):
        Polar().value_and_det(torch.ones(3, 2, dtype=DT))
    with pytest.raises(ShapeError, match="compose"):
        _ = Polar() @ Spherical()


def test_missed_tolerance_warns_and_flags_the_result():
    def spiky(p):  # an integrable singularity at the origin with too few subintervals
        return (p ** 2).sum().sqrt() ** -0.9

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = integrate(spiky, Affine(torch.eye(1, dtype=DT)), [(0.0, 1.0)], limit=1,
                        epsabs=1e-14, epsrel=1e-14)
    assert not res.converged
    assert any(issubclass(w.category, JacobiteWarning) and "tolerance" in str(w.message)
               for w in caught)
    assert isinstance(NonFiniteInputError("x"), JacobiteError)
