"""curve_fit(batch=True) against a loop of single curve_fit calls and SciPy's curve_fit per
data set: parameters, covariances, weights, bounds and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch

import jacobite
from jacobite.errors import InvalidOptionError, JacobiteWarning, NonFiniteInputError, ShapeError

DT = torch.float64
X = torch.linspace(0, 3, 25, dtype=DT)


def model(x, a, k, c):
    return a * torch.exp(-k * x) + c


def np_model(x, a, k, c):
    return a * np.exp(-k * x) + c


def data(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = 1 + torch.rand(B, 1, dtype=DT, generator=g)
    k = 0.5 + torch.rand(B, 1, dtype=DT, generator=g)
    return model(X, a, k, 0.3) + 0.02 * torch.randn(B, X.numel(), dtype=DT, generator=g)


def test_fits_match_scipy_per_data_set():
    y = data(6)
    popt, pcov = jacobite.curve_fit(model, X, y, p0=[1.0, 1.0, 0.0], batch=True)
    assert popt.shape == (6, 3) and pcov.shape == (6, 3, 3)
    for b in range(6):
        ref, ref_cov = scipy.optimize.curve_fit(np_model, X.numpy(), y[b].numpy(),
                                                p0=[1.0, 1.0, 0.0], ftol=1e-14, xtol=1e-14,
                                                gtol=1e-14)
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)
        np.testing.assert_allclose(pcov[b], ref_cov, rtol=1e-4)


def test_per_fit_abscissae_sigma_and_starts():
    B = 4
    g = torch.Generator().manual_seed(1)
    x = torch.sort(3 * torch.rand(B, 20, dtype=DT, generator=g), 1).values
    y = model(x, 2.0, 1.0, 0.5) + 0.01 * torch.randn(B, 20, dtype=DT, generator=g)
    sigma = 0.01 + 0.05 * torch.rand(B, 20, dtype=DT, generator=g)
    p0 = torch.tensor([[1.0, 1.0, 0.0]] * B, dtype=DT) + 0.1 * torch.arange(B, dtype=DT)[:, None]
    popt, pcov = jacobite.curve_fit(model, x, y, p0=p0, sigma=sigma, absolute_sigma=True,
                                    batch=True)
    for b in range(B):
        one, one_cov = jacobite.curve_fit(model, x[b], y[b], p0=p0[b], sigma=sigma[b],
                                          absolute_sigma=True)
        np.testing.assert_allclose(popt[b], one, rtol=1e-8)
        np.testing.assert_allclose(pcov[b], one_cov, rtol=1e-6)
        ref, ref_cov = scipy.optimize.curve_fit(np_model, x[b].numpy(), y[b].numpy(),
                                                p0=p0[b].numpy(), sigma=sigma[b].numpy(),
                                                absolute_sigma=True, ftol=1e-14, xtol=1e-14,
                                                gtol=1e-14)
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)
        np.testing.assert_allclose(pcov[b], ref_cov, rtol=1e-4)


def test_covariance_sigma_per_fit():
    B, k = 3, X.numel()
    y = data(B, seed=2)
    A = torch.randn(B, k, k, dtype=DT, generator=torch.Generator().manual_seed(3))
    cov = 1e-4 * (A @ A.mT + k * torch.eye(k, dtype=DT))
    popt, _ = jacobite.curve_fit(model, X, y, p0=[1.0, 1.0, 0.0], sigma=cov, batch=True)
    for b in range(B):
        ref, _ = scipy.optimize.curve_fit(np_model, X.numpy(), y[b].numpy(), p0=[1.0, 1.0, 0.0],
                                          sigma=cov[b].numpy(), ftol=1e-14, xtol=1e-14)
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)


def test_full_output_and_default_start():
    y = data(2)
    popt, pcov, info, mesg, ier = jacobite.curve_fit(model, X, y, batch=True, full_output=True)
    assert popt.shape == (2, 3)
    assert info["fvec"].shape == (2, X.numel()) and len(mesg) == 2 and ier.shape == (2,)
    assert (ier > 0).all() and np.isfinite(pcov).all()
    for b in range(2):  # SciPy's default start is ones too
        ref, _ = scipy.optimize.curve_fit(np_model, X.numpy(), y[b].numpy(), ftol=1e-14,
                                          xtol=1e-14, gtol=1e-14)
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)
        np.testing.assert_allclose(info["fvec"][b], np_model(X.numpy(), *ref) - y[b].numpy(),
                                   atol=1e-8)


def test_non_converged_fits_warn():
    y = data(3)
    with pytest.warns(JacobiteWarning, match="did not converge for 3 of 3"):
        jacobite.curve_fit(model, X, y, p0=[1.0, 1.0, 0.0], batch=True, maxfev=3)


def test_too_few_points_give_an_infinite_pcov():
    y = data(2)[:, :3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        _, pcov = jacobite.curve_fit(model, X[:3], y, p0=[1.0, 1.0, 0.0], batch=True,
                                     method="trf")
    assert np.isinf(pcov).all()


def test_bad_input():
    y = data(2)
    with pytest.raises(ShapeError, match=r"\(B, k\)"):
        jacobite.curve_fit(model, X, y[0], p0=[1.0, 1.0, 0.0], batch=True)
    with pytest.raises(ShapeError, match=r"\(B, p\)"):
        jacobite.curve_fit(model, X, y, p0=torch.ones(3, 3), batch=True)
    with pytest.raises(ShapeError, match="sigma"):
        jacobite.curve_fit(model, X, y, p0=[1.0, 1.0, 0.0], sigma=torch.ones(5), batch=True)
    with pytest.raises(ShapeError, match="\\(B, 1\\) column"):
        jacobite.curve_fit(lambda x, a, k, c: a.sum() * x, X, y, p0=[1.0, 1.0, 0.0],
                           batch=True)
    bad = y.clone()
    bad[1, 4] = float("nan")
    with pytest.raises(NonFiniteInputError, match="fit 1"):
        jacobite.curve_fit(model, X, bad, p0=[1.0, 1.0, 0.0], batch=True)
    with pytest.raises(InvalidOptionError, match="nan_policy"):
        jacobite.curve_fit(model, X, bad, p0=[1.0, 1.0, 0.0], batch=True, nan_policy="omit")


@pytest.mark.parametrize("option", [dict(diag=[1.0, 1.0, 1.0]), dict(epsfcn=1e-8),
                                    dict(diff_step=1e-6), dict(callback=print)])
def test_options_without_a_batched_form_are_refused(option):
    with pytest.raises(InvalidOptionError, match="does not take"):
        jacobite.curve_fit(model, X, data(2), p0=[1.0, 1.0, 0.0], batch=True, **option)


def test_options_passed_on():
    y = data(2)
    popt, _ = jacobite.curve_fit(model, X, y, p0=[1.0, 1.0, 0.0], batch=True, loss="soft_l1",
                                 f_scale=0.1, ftol=1e-12, maxfev=500)
    assert popt.shape == (2, 3)
    for b in range(2):
        ref, _ = scipy.optimize.curve_fit(np_model, X.numpy(), y[b].numpy(), p0=[1.0, 1.0, 0.0],
                                          method="trf", loss="soft_l1", f_scale=0.1, ftol=1e-12,
                                          xtol=1e-14, gtol=1e-14, max_nfev=500)
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)


def test_default_start_lies_inside_bounds_that_exclude_ones():
    # no p0: SciPy's start inside the bounds (midpoints here), as a single fit takes it
    t = np.linspace(0.0, 4.0, 30)
    rng = np.random.default_rng(0)
    Y = np.stack([3.5 * np.exp(-0.7 * t) + 0.4 + 0.01 * rng.standard_normal(30)
                  for _ in range(3)])
    bounds = ([2.5, 0.0, 0.0], [5.0, 2.0, 1.0])
    popt, _ = jacobite.curve_fit(lambda x, a, k, c: a * torch.exp(-k * x) + c, torch.tensor(t),
                                 torch.tensor(Y), bounds=bounds, batch=True)
    for b, y in enumerate(Y):
        ref = scipy.optimize.curve_fit(lambda x, a, k, c: a * np.exp(-k * x) + c, t, y,
                                       bounds=bounds)[0]
        np.testing.assert_allclose(popt[b], ref, rtol=1e-6)
