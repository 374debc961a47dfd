"""The JENN benchmark's test functions, samples, scores and scaling: analytic Jacobians against
central differences, the functions against jenn's own, R² against scikit-learn's, the
standardised partials against the Jacobian of the standardised function."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import _jenn_cases as jc
from benchmarks import _jenn_torch

PROBLEMS = [jc.SINUSOID, jc.RASTRIGIN_2D, jc.ROSENBROCK_2D, jc.ROSENBROCK_10D,
            jc.ridge_map(n=12, rank=3)]


def _central(f: object, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(N, m, n) central differences of ``f`` at the rows of ``x``."""
    cols = []
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))  # type: ignore[operator]
    return np.stack(cols, axis=2)


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p.name)
def test_analytic_jacobian_matches_central_differences(p: jc.Problem) -> None:
    d = jc.sample_uniform(p, 7, seed=3)
    assert d.x.shape == (7, p.n) and d.dydx.shape == (7, d.y.shape[1], p.n)
    assert np.all((d.x >= p.lb) & (d.x <= p.ub))
    scale = np.abs(d.dydx).max()
    np.testing.assert_allclose(d.dydx, _central(p.f, d.x), rtol=1e-6, atol=1e-6 * scale)


def test_functions_match_jenns_synthetic_data() -> None:
    jenn = pytest.importorskip("jenn")
    sd = jenn.synthetic_data
    for p, mod in ((jc.SINUSOID, sd.sinusoid), (jc.RASTRIGIN_2D, sd.rastrigin),
                   (jc.ROSENBROCK_2D, sd.rosenbrock)):
        d = jc.sample_uniform(p, 9, seed=1)
        np.testing.assert_allclose(d.y, mod.compute(d.x.T.copy()).T, rtol=1e-13)
        np.testing.assert_allclose(d.dydx, mod.compute_partials(d.x.T.copy()).transpose(2, 0, 1),
                                   rtol=1e-13, atol=1e-12)


def test_r2_is_scikit_learns_variance_weighted_score() -> None:
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    true = rng.standard_normal((40, 3)) * [1.0, 5.0, 0.2]
    pred = true + 0.3 * rng.standard_normal((40, 3))
    assert jc.r2(pred, true) == pytest.approx(
        r2_score(true, pred, multioutput="variance_weighted"), rel=1e-12)
    jac_true, jac_pred = true.reshape(40, 3, 1), pred.reshape(40, 3, 1)
    assert jc.r2(jac_pred, jac_true) == pytest.approx(jc.r2(pred, true), rel=1e-14)


def test_grid_and_hypercube_samples() -> None:
    g = jc.sample_grid(jc.RASTRIGIN_2D, 10)
    assert g.x.shape == (100, 2)
    assert sorted(set(g.x[:, 0].round(12))) == list(np.linspace(-1.0, 1.5, 10).round(12))
    h = jc.sample_lhs(jc.ROSENBROCK_10D, 50, seed=0)
    # a Latin hypercube puts one point in each of the 50 strata of every input
    strata = np.floor((h.x - jc.ROSENBROCK_10D.lb) / 2.0 * 50).astype(int)
    assert all(sorted(strata[:, j]) == list(range(50)) for j in range(10))


def test_standardised_partials_are_the_standardised_functions_jacobian() -> None:
    p = jc.ridge_map(n=5, rank=2)
    d = jc.sample_uniform(p, 30, seed=2)
    x, y, dydx = _jenn_torch.standardise(d)
    mx, sx, my, sy = d.x.mean(0), d.x.std(0), d.y.mean(0), d.y.std(0)

    def g(u: np.ndarray) -> np.ndarray:  # the function in standardised units
        return (p.f(u * sx + mx) - my) / sy

    np.testing.assert_allclose(y.numpy(), g(x.numpy()), atol=1e-12)
    np.testing.assert_allclose(dydx.numpy(), _central(g, x.numpy()), rtol=1e-6, atol=1e-7)


def test_jenn_layout_round_trip() -> None:
    pytest.importorskip("jenn")
    d = jc.sample_uniform(jc.RASTRIGIN_2D, 20, seed=0)
    model, secs = jc.jenn_fit(d, [2, 4, 1], max_iter=3, random_state=0)
    assert secs >= 0 and jc.jenn_iterations(model) == 3
    r2v, r2p = jc.jenn_scores(model, d)
    y = model.predict(d.x.T.copy()).T
    dydx = model.predict_partials(d.x.T.copy()).transpose(2, 0, 1)
    assert r2v == pytest.approx(jc.r2(y, d.y)) and r2p == pytest.approx(jc.r2(dydx, d.dydx))
