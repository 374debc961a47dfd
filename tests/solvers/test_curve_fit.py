"""jacobite.curve_fit against scipy.optimize.curve_fit: popt and pcov with no sigma, 1-D sigma,
absolute_sigma, 2-D (covariance) sigma, bounds, p0 from the signature, a user Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from jacobite.errors import InvalidOptionError, JacobiteWarning, NonFiniteInputError, ShapeError
from jacobite.solvers import LeastSquaresResult, curve_fit

RNG = np.random.default_rng(7)
X = np.linspace(0.0, 3.0, 25)
Y = 3.0 * np.exp(-0.8 * X) + 0.5 + 0.02 * RNG.standard_normal(X.size)
SIG = 0.01 + 0.03 * RNG.random(X.size)
TIGHT = dict(ftol=1e-15, xtol=1e-15, gtol=1e-15)


def model_t(x, a, k, c):
    return a * torch.exp(-k * x) + c


def model_np(x, a, k, c):
    return a * np.exp(-k * x) + c


def _scipy(**kw):
    return scipy.optimize.curve_fit(model_np, X, Y, p0=[1.0, 1.0, 0.0], **TIGHT, **kw)


@pytest.mark.parametrize("absolute_sigma", [False, True])
@pytest.mark.parametrize("sigma_kind", ["none", "1d", "2d"])
def test_matches_scipy(sigma_kind, absolute_sigma):
    sigma = {"none": None, "1d": SIG,
             "2d": np.diag(SIG ** 2) + 1e-5 * np.exp(-np.subtract.outer(X, X) ** 2)}[sigma_kind]
    popt, pcov = curve_fit(model_t, X, Y, p0=[1.0, 1.0, 0.0], sigma=sigma,
                           absolute_sigma=absolute_sigma)
    sp_popt, sp_pcov = _scipy(sigma=sigma, absolute_sigma=absolute_sigma, method="trf")
    assert isinstance(popt, np.ndarray) and isinstance(pcov, np.ndarray)
    np.testing.assert_allclose(popt, sp_popt, rtol=1e-8)
    np.testing.assert_allclose(pcov, sp_pcov, rtol=1e-6)


def test_bounds_p0_from_signature_and_full_output():
    popt, pcov, info, mesg, ier = curve_fit(model_t, torch.as_tensor(X), Y,
                                            bounds=([0, 0, 0], [10, 0.7, 1]), full_output=True)
    sp_popt, sp_pcov = scipy.optimize.curve_fit(model_np, X, Y, bounds=([0, 0, 0], [10, 0.7, 1]),
                                                **TIGHT)
    np.testing.assert_allclose(popt, sp_popt, rtol=1e-7)
    assert popt[1] == pytest.approx(0.7)  # the bound is active
    assert isinstance(info["result"], LeastSquaresResult) and info["result"].method == "trf"
    assert ier > 0 and isinstance(mesg, str) and info["fvec"].shape == (X.size,)
    np.testing.assert_allclose(pcov, sp_pcov, rtol=1e-5)


def test_user_jacobian():
    def jac(x, a, k, c):
        e = torch.exp(-k * x)
        return torch.stack([e, -a * x * e, torch.ones_like(x)], dim=1)

    popt, pcov = curve_fit(model_t, X, Y, p0=[1.0, 1.0, 0.0], jac=jac, sigma=SIG)
    sp_popt, sp_pcov = _scipy(sigma=SIG, method="trf")
    np.testing.assert_allclose(popt, sp_popt, rtol=1e-8)
    np.testing.assert_allclose(pcov, sp_pcov, rtol=1e-6)


def test_pcov_is_inf_when_it_cannot_be_estimated():
    with pytest.warns(JacobiteWarning, match="covariance"):
        popt, pcov = curve_fit(lambda x, a, b: a * x + b, [0.0, 1.0], [1.0, 3.0], p0=[0, 0])
    np.testing.assert_allclose(popt, [2.0, 1.0], rtol=1e-12)
    assert np.isinf(pcov).all()


def test_bad_input():
    with pytest.raises(NonFiniteInputError):
        curve_fit(model_t, X, np.where(X > 1, np.nan, Y), p0=[1, 1, 0])
    with pytest.raises(ShapeError, match="sigma"):
        curve_fit(model_t, X, Y, p0=[1, 1, 0], sigma=np.ones(3))
    with pytest.raises(InvalidOptionError, match="positive"):
        curve_fit(model_t, X, Y, p0=[1, 1, 0], sigma=-SIG)
    with pytest.raises(InvalidOptionError, match="positive definite"):
        curve_fit(model_t, X, Y, p0=[1, 1, 0], sigma=-np.eye(X.size))
    with pytest.raises(InvalidOptionError, match="p0"):
        curve_fit(lambda x, *p: p[0] * x, X, Y)
    with pytest.raises(ShapeError, match="observations"):
        curve_fit(lambda x, a: a * x[:3], X, Y, p0=[1.0])
