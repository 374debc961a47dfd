"""Robust losses: ρ, ρ', ρ'' against closed forms and finite differences, and robust fits
against scipy.optimize.least_squares on a line with gross outliers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given
from hypothesis import strategies as st

from jacobite.errors import InvalidOptionError
from jacobite.solvers import least_squares
from jacobite.solvers.lsq.losses import LOSSES, cost_of, robust_loss, scale_for_robust_loss
from tests.lsq_problems import BY_NAME, OUT_T, OUT_Y, line_with_outliers, oracle

CLOSED = {
    "soft_l1": lambda z: 2 * (np.sqrt(1 + z) - 1),
    "huber": lambda z: np.where(z <= 1, z, 2 * np.sqrt(z) - 1),
    "cauchy": np.log1p,
    "arctan": np.arctan,
}


@pytest.mark.parametrize("name", sorted(CLOSED))
@pytest.mark.parametrize("f_scale", [1.0, 0.3, 4.0])
def test_rho_and_derivatives(name, f_scale):
    f = np.array([-5.0, -1.2, -0.3, 0.0, 0.2, 0.9, 1.1, 7.0]) * f_scale
    rho = robust_loss(name, f_scale)(f)
    c2 = f_scale ** 2
    z = f * f
    np.testing.assert_allclose(rho[0], c2 * CLOSED[name](z / c2), rtol=1e-14, atol=1e-300)
    # ρ' and ρ'' are derivatives with respect to z = f² (central differences; away from the
    # Huber kink at z = c²)
    h = 1e-6 * np.maximum(z, 1e-2)
    up, dn = robust_loss(name, f_scale)(np.sqrt(z + h)), robust_loss(name, f_scale)(
        np.sqrt(np.maximum(z - h, 0.0)))
    ok = (np.abs(z / c2 - 1) > 1e-3) & (z > 0)
    np.testing.assert_allclose(((up[0] - dn[0]) / (2 * h))[ok], rho[1][ok], rtol=1e-5)
    np.testing.assert_allclose(((up[1] - dn[1]) / (2 * h))[ok], rho[2][ok], rtol=1e-4,
                               atol=1e-8)


def test_linear_loss_is_the_fast_path():
    assert robust_loss("linear") is None
    f = np.array([1.0, -2.0])
    assert cost_of(f, None) == 2.5


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=6), st.sampled_from(sorted(CLOSED)))
def test_scaled_jacobian_gives_the_true_gradient(fvals, name):
    f = np.asarray(fvals)
    J = np.arange(1.0, 2.0 * f.size + 1).reshape(f.size, 2)
    rho = robust_loss(name)(f)
    Jt, ft = scale_for_robust_loss(J, f, rho)
    np.testing.assert_allclose(Jt.T @ ft, J.T @ (rho[1] * f), rtol=1e-9, atol=1e-12)


def test_bad_loss_options():
    with pytest.raises(InvalidOptionError, match="loss must be one of"):
        robust_loss("l1")
    with pytest.raises(InvalidOptionError, match="f_scale"):
        robust_loss("huber", 0.0)
    assert set(LOSSES) == {"linear", "soft_l1", "huber", "cauchy", "arctan"}


@pytest.mark.parametrize("loss", ["soft_l1", "huber", "cauchy", "arctan"])
@pytest.mark.parametrize("method", ["trf", "lm", "gauss-newton"])
def test_robust_fit_matches_scipy(loss, method):
    p = BY_NAME["rosenbrock"].__class__("line", line_with_outliers, (0.0, 0.0))
    want = oracle(p, loss=loss, f_scale=0.5)
    res = least_squares(line_with_outliers, [0.0, 0.0], loss=loss, f_scale=0.5, method=method)
    assert res.success
    np.testing.assert_allclose(res.x.numpy(), want, rtol=1e-7)
    sc = scipy.optimize.least_squares(lambda b: b[0] + b[1] * OUT_T - OUT_Y, want, loss=loss,
                                      f_scale=0.5)
    assert res.cost == pytest.approx(sc.cost, rel=1e-9)  # SciPy's cost: ½ Σ ρ
    np.testing.assert_allclose(res.grad.numpy(), sc.grad, atol=1e-6)
    assert res.covariance is None  # not meaningful for a robust loss


def test_robust_loss_resists_outliers():
    lin = least_squares(line_with_outliers, [0.0, 0.0]).x.numpy()
    rob = least_squares(line_with_outliers, [0.0, 0.0], loss="cauchy", f_scale=0.1).x.numpy()
    truth = np.array([1.0, 0.5])
    assert np.abs(rob - truth).max() < 0.05 < np.abs(lin - truth).max()
    fit = least_squares(line_with_outliers, torch.zeros(2), loss="soft_l1").fun
    assert fit.shape == (OUT_T.size,)
