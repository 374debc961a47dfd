"""JENNRegressor: fits to analytic functions (values and partials against the formulas),
partials beating values alone on few samples, missing partials, several outputs, the
standardisation's round trip (against torch.func.jacrev and an affine change of units), a user
module, early stopping, NumPy/tensor in and out, seeding, scikit-learn conventions and refusals."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import jacrev, vmap

from jacobite.errors import (
    ArgumentTypeError,
    InvalidOptionError,
    NonFiniteInputError,
    NotFittedError,
    ShapeError,
)
from jacobite.nn import JENNRegressor

DT = torch.float64


def rosenbrock(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values (N,) and partials (N, 2) of (1 − a)² + 100 (b − a²)²."""
    a, b = x[:, 0], x[:, 1]
    y = (1 - a) ** 2 + 100 * (b - a**2) ** 2
    d = np.stack([-2 * (1 - a) - 400 * a * (b - a**2), 200 * (b - a**2)], axis=1)
    return y, d


def grid(levels: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    g = np.linspace(lo, hi, levels)
    return np.array([(a, b) for a in g for b in g])


def uniform(n: int, size: int, seed: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, (size, n))


def two_by_two(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) = (sin x0 + x1², x0·x1): values (N, 2), Jacobians (N, 2, 2)."""
    a, b = x[:, 0], x[:, 1]
    y = torch.stack([torch.sin(a) + b**2, a * b], 1)
    J = torch.stack([torch.stack([torch.cos(a), 2 * b], 1), torch.stack([b, a], 1)], 1)
    return y, J


@pytest.fixture(scope="module")
def rosen_fit() -> JENNRegressor:
    x = grid(5)
    y, d = rosenbrock(x)
    return JENNRegressor(seed=0, max_iter=400).fit(x, y, d)


# --- accuracy against the analytic functions -----------------------------------------------


def test_rosenbrock_25_points_values_and_partials(rosen_fit: JENNRegressor) -> None:
    xt = uniform(2, 500, seed=1)
    yt, dt = rosenbrock(xt)
    assert rosen_fit.score(xt, yt) >= 0.99
    assert rosen_fit.score_jacobian(xt, dt) >= 0.97
    pred, jac = rosen_fit.predict(xt), rosen_fit.predict_jacobian(xt)
    assert pred.shape == (500,) and jac.shape == (500, 2)
    # the worst error over the box stays a small fraction of the function's range
    assert np.abs(pred - yt).max() < 0.05 * np.ptp(yt)
    assert np.abs(jac - dt).max() < 0.1 * np.ptp(dt)
    # L-BFGS records each loss evaluation: the start, then one or more per iteration
    assert rosen_fit.n_iter_ < len(rosen_fit.loss_curve_) and rosen_fit.n_iter_ <= 400
    assert rosen_fit.loss_curve_[-1] < 1e-2 * rosen_fit.loss_curve_[0]


def test_x_sin_x_one_input() -> None:
    x = np.linspace(-np.pi, np.pi, 8)
    reg = JENNRegressor(hidden=(12,), seed=0).fit(x, x * np.sin(x), np.sin(x) + x * np.cos(x))
    xt = np.linspace(-3.0, 3.0, 101)
    assert np.abs(reg.predict(xt) - xt * np.sin(xt)).max() < 0.05
    assert np.abs(reg.predict_jacobian(xt) - (np.sin(xt) + xt * np.cos(xt))).max() < 0.2


def test_partials_beat_values_alone_on_few_samples() -> None:
    x = grid(3)  # 9 samples
    y, d = rosenbrock(x)
    xt = uniform(2, 400, seed=2)
    yt, _ = rosenbrock(xt)
    kw = dict(hidden=(16, 16), seed=3, max_iter=300)
    with_d = JENNRegressor(**kw).fit(x, y, d).score(xt, yt)
    without = JENNRegressor(**kw).fit(x, y).score(xt, yt)
    assert with_d > 0.9 and with_d > without + 0.1


def test_values_only_is_a_plain_mlp() -> None:
    x = uniform(1, 60, seed=0, lo=-1, hi=1)
    reg = JENNRegressor(hidden=(10,), seed=0, max_iter=200).fit(x, np.tanh(2 * x[:, 0]))
    assert reg.score(x, np.tanh(2 * x[:, 0])) > 0.999
    assert all(v == 0.0 for v in reg.jacobian_loss_curve_)


# --- missing partials, several outputs --------------------------------------------------------


def test_nan_partials_and_masked_partials_are_left_out_alike() -> None:
    x = grid(4)
    y, d = rosenbrock(x)
    unknown = np.zeros_like(d, dtype=bool)
    unknown[::2, 0] = True
    unknown[1::3, 1] = True
    with_nan = np.where(unknown, np.nan, d)
    garbage = np.where(unknown, 1e6, d)
    kw = dict(hidden=(10, 10), seed=1, max_iter=60)
    a = JENNRegressor(**kw).fit(x, y, with_nan)
    b = JENNRegressor(**kw).fit(x, y, garbage, mask=~unknown)
    xt = uniform(2, 50, seed=3)
    np.testing.assert_allclose(a.predict(xt), b.predict(xt), rtol=1e-10, atol=1e-10)
    assert np.isfinite(a.loss_curve_).all()
    # scoring against partial targets skips the unknown ones too
    assert a.score_jacobian(x, with_nan) == pytest.approx(
        a.score_jacobian(x, garbage, mask=~unknown), rel=1e-12)


def test_several_outputs() -> None:
    x = torch.rand(64, 2, dtype=DT, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y, J = two_by_two(x)
    reg = JENNRegressor(hidden=(16, 16), seed=0, max_iter=300).fit(x, y, J)
    xt = torch.rand(200, 2, dtype=DT, generator=torch.Generator().manual_seed(1)) * 2 - 1
    yt, Jt = two_by_two(xt)
    pred, jac = reg.predict(xt), reg.predict_jacobian(xt)
    assert pred.shape == (200, 2) and jac.shape == (200, 2, 2)
    assert (pred - yt).abs().max() < 0.05 and (jac - Jt).abs().max() < 0.3
    assert reg.score(xt, yt) > 0.999 and reg.score_jacobian(xt, Jt) > 0.98


def test_score_jacobian_is_sklearns_r2_per_partial() -> None:
    from sklearn.metrics import r2_score

    x = torch.rand(40, 2, dtype=DT, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y, J = two_by_two(x)
    reg = JENNRegressor(hidden=(4,), seed=0, max_iter=5).fit(x, y, J)
    xt = torch.rand(30, 2, dtype=DT, generator=torch.Generator().manual_seed(2)) * 2 - 1
    yt, Jt = two_by_two(xt)
    ref = r2_score(Jt.reshape(30, 4).numpy(), reg.predict_jacobian(xt).reshape(30, 4).numpy())
    assert reg.score_jacobian(xt, Jt) == pytest.approx(ref, rel=1e-12)
    assert reg.score(xt, yt) == pytest.approx(r2_score(yt.numpy(), reg.predict(xt).numpy()),
                                              rel=1e-12)


# --- standardisation --------------------------------------------------------------------------


def test_predict_jacobian_is_jacrev_of_the_model_in_data_units() -> None:
    x = torch.rand(30, 2, dtype=DT, generator=torch.Generator().manual_seed(0)) * 6 + 3
    y, J = two_by_two(x)
    y = 50 * y + 7
    reg = JENNRegressor(hidden=(8,), seed=0, max_iter=20).fit(x, y, 50 * J)
    xt = x[:7] + 0.1
    ref = vmap(jacrev(lambda v: reg.model_(v[None])[0]))(xt)
    torch.testing.assert_close(reg.predict_jacobian(xt), ref)
    # and composed by hand from the network in training units
    s = reg.scaling_

    def by_hand(v: torch.Tensor) -> torch.Tensor:
        return reg.module_(((v - s.x_mean) / s.x_std)[None])[0] * s.y_std + s.y_mean

    torch.testing.assert_close(reg.predict(xt), vmap(by_hand)(xt))
    torch.testing.assert_close(reg.predict_jacobian(xt), vmap(jacrev(by_hand))(xt))


def test_a_change_of_units_changes_nothing_but_the_units() -> None:
    """With normalize=True, fitting (a·x + b, c·y + e, c/a·dydx) trains on the same
    standardised data, so predictions are the first fit's mapped to the new units."""
    x = grid(4)
    y, d = rosenbrock(x)
    a, b, c, e = np.array([100.0, 0.01]), np.array([5.0, -3.0]), 1e-3, 42.0
    kw = dict(hidden=(8, 8), seed=4, max_iter=40)
    base = JENNRegressor(**kw).fit(x, y, d)
    moved = JENNRegressor(**kw).fit(a * x + b, c * y + e, c * d / a)
    xt = uniform(2, 20, seed=5)
    np.testing.assert_allclose(moved.predict(a * xt + b), c * base.predict(xt) + e, rtol=1e-6)
    np.testing.assert_allclose(moved.predict_jacobian(a * xt + b),
                               c * base.predict_jacobian(xt) / a, rtol=1e-6, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.floats(-3, 3), st.floats(-3, 3))
def test_scaling_round_trips(n: int, m: int, N: int, seed: int, log_sx: float,
                             log_sy: float) -> None:
    """Standardising and mapping back are inverse, for values and partials; the standardised
    columns have mean 0 and spread 1 (or are constant)."""
    from jacobite.nn.sobolev._scaling import Scaling

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, n, dtype=DT, generator=g) * 10**log_sx + 3
    y = torch.randn(N, m, dtype=DT, generator=g) * 10**log_sy - 1
    d = torch.randn(N, m, n, dtype=DT, generator=g)
    s = Scaling.fit(x, y)
    torch.testing.assert_close(s.y_out(s.y_in(y)), y)
    torch.testing.assert_close(s.dydx_out(s.dydx_in(d)), d)
    xn = s.x_in(x)
    torch.testing.assert_close(xn.mean(0), torch.zeros(n, dtype=DT), atol=1e-9, rtol=0)
    spread = xn.std(0, correction=0)
    assert bool((((spread - 1).abs() < 1e-9) | (spread < 1e-6)).all())


def test_without_normalize_the_network_sees_the_data_as_given() -> None:
    x = torch.linspace(-1, 1, 10, dtype=DT)[:, None]
    reg = JENNRegressor(hidden=(3,), normalize=False, seed=0, max_iter=5).fit(x, 3 * x)
    torch.testing.assert_close(reg.predict(x), reg.module_(x))


# --- user module, early stopping, optimizers ---------------------------------------------------


def test_user_module_is_trained_in_place_in_its_dtype() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
    before = copy.deepcopy(net.state_dict())
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y, J = two_by_two(x.double())
    reg = JENNRegressor(module=net, max_iter=150).fit(x, y.float(), J.float())
    assert reg.module_ is net
    assert not torch.equal(net[0].weight, before["0.weight"])
    assert next(net.parameters()).dtype == torch.float32
    assert reg.predict(x).dtype == torch.float32
    assert reg.score(x, y) > 0.99


def test_levenberg_marquardt_trains_a_float32_module_in_its_dtype() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.linspace(-2, 2, 6)[:, None]
    reg = JENNRegressor(module=net, optimizer="lm", max_iter=200).fit(x, torch.sin(x),
                                                                     torch.cos(x)[:, :, None])
    assert next(net.parameters()).dtype == torch.float32 and reg.n_iter_ >= 1
    assert reg.stop_reason_ in ("tol", "converged")
    assert reg.score(x, torch.sin(x)) > 0.99


def test_early_stopping_restores_the_best_parameters() -> None:
    from jacobite.nn import sobolev_loss

    g = np.random.default_rng(0)
    x = g.uniform(-2, 2, (40, 1))
    y = np.sin(2 * x[:, 0]) + 0.3 * g.standard_normal(40)  # noise: the validation loss turns
    kw = dict(hidden=(30, 30), alpha=0.0, early_stopping=True, validation_fraction=0.25,
              seed=1, n_iter_no_change=15)
    reg = JENNRegressor(**kw).fit(x, y)
    best = reg.best_iteration_
    assert reg.stop_reason_ == "early_stopping" and best is not None
    curve = reg.validation_loss_curve_
    assert curve is not None and len(curve) == len(reg.loss_curve_)
    assert curve[best - 1] == min(curve) < curve[-1]
    # the held-out samples (the first 10 of the seeded permutation): the restored network's
    # loss on them, by sobolev_loss, is the best validation loss recorded
    held = torch.randperm(40, generator=torch.Generator().manual_seed(1))[:10].numpy()
    s = reg.scaling_
    xv, yv = torch.as_tensor(x[held]), torch.as_tensor(y[held])[:, None]
    loss = sobolev_loss(reg.module_, s.x_in(xv), s.y_in(yv), None).total
    assert float(loss.detach()) == pytest.approx(min(curve), rel=1e-12)


def test_adam_with_mini_batches() -> None:
    x = uniform(1, 256, seed=0, lo=-np.pi, hi=np.pi)
    y, d = x[:, 0] * np.sin(x[:, 0]), np.sin(x) + x * np.cos(x)
    reg = JENNRegressor(hidden=(16, 16), optimizer="adam", lr=1e-2, batch_size=32,
                        max_iter=40, seed=0).fit(x, y, d)
    assert reg.n_iter_ <= 40 and reg.loss_curve_[-1] < 0.1 * reg.loss_curve_[0]
    assert reg.score(x, y) > 0.95


def test_per_entry_weight_zero_leaves_a_partial_out() -> None:
    """Weight 0 on ∂y/∂x₁ matches leaving it out (NaN) with λ = 1/2: the Jacobian term
    averages over all 2N entries in the first fit and over the N known ones in the second."""
    x = grid(4)
    y, d = rosenbrock(x)
    w = np.ones_like(d)
    w[:, 1] = 0.0
    kw = dict(hidden=(6,), seed=2, max_iter=30)
    a = JENNRegressor(**kw).fit(x, y, d, weight=w)
    b = JENNRegressor(weight=0.5, **kw).fit(x, y, np.where(w > 0, d, np.nan))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-8, atol=1e-8)


# --- types, seeding, conventions --------------------------------------------------------------


def test_numpy_in_numpy_out_tensor_in_tensor_out(rosen_fit: JENNRegressor) -> None:
    xt = uniform(2, 5, seed=0)
    assert isinstance(rosen_fit.predict(xt), np.ndarray)
    assert isinstance(rosen_fit.predict_jacobian(xt), np.ndarray)
    t = torch.as_tensor(xt, dtype=torch.float32).requires_grad_(True)
    p, j = rosen_fit.predict(t), rosen_fit.predict_jacobian(t)
    assert isinstance(p, torch.Tensor) and p.dtype == torch.float32 and not p.requires_grad
    assert isinstance(j, torch.Tensor) and j.shape == (5, 2) and not j.requires_grad
    np.testing.assert_allclose(p.numpy(), rosen_fit.predict(xt), rtol=1e-5)
    assert isinstance(rosen_fit.score(xt, rosenbrock(xt)[0]), float)


def test_the_same_seed_gives_the_same_fit() -> None:
    x = grid(3)
    y, d = rosenbrock(x)
    kw = dict(hidden=(5,), max_iter=15, early_stopping=True, validation_fraction=0.3)
    a = JENNRegressor(seed=7, **kw).fit(x, y, d)
    b = JENNRegressor(seed=7, **kw).fit(x, y, d)
    c = JENNRegressor(seed=8, **kw).fit(x, y, d)
    assert a.loss_curve_ == b.loss_curve_ and a.loss_curve_ != c.loss_curve_
    np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_get_params_set_params_and_repr() -> None:
    reg = JENNRegressor(hidden=(4,), seed=3)
    params = reg.get_params()
    assert params["hidden"] == (4,) and params["seed"] == 3 and params["optimizer"] == "auto"
    assert JENNRegressor(**params).get_params() == params
    assert reg.set_params(max_iter=7) is reg and reg.max_iter == 7
    assert repr(reg) == "JENNRegressor(hidden=(4,), max_iter=7, seed=3)"
    with pytest.raises(InvalidOptionError, match="hidden"):
        reg.set_params(hiden=(3,))


def test_scikit_learn_model_selection_takes_it() -> None:
    pytest.importorskip("sklearn")
    from sklearn.base import clone, is_regressor
    from sklearn.model_selection import cross_val_score

    reg = JENNRegressor(hidden=(8,), seed=0, max_iter=60)
    copy_ = clone(reg)
    assert copy_ is not reg and copy_.get_params() == reg.get_params() and is_regressor(reg)
    x = np.linspace(-1, 1, 30)[:, None]
    scores = cross_val_score(reg, x, np.sin(2 * x[:, 0]), cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_progress_bar_on_request_draws_and_closes() -> None:
    x = np.linspace(-1, 1, 5)
    reg = JENNRegressor(hidden=(3,), max_iter=3, progress=True, seed=0).fit(x, x)
    assert reg.n_iter_ <= 3


# --- refusals ---------------------------------------------------------------------------------


def test_predict_before_fit_names_fit() -> None:
    with pytest.raises(NotFittedError, match=r"fit\(") as info:
        JENNRegressor().predict(np.zeros((2, 2)))
    assert isinstance(info.value, AttributeError) and isinstance(info.value, ValueError)
    with pytest.raises(NotFittedError, match=r"fit\("):
        JENNRegressor().predict_jacobian(np.zeros((2, 2)))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"optimizer": "sgd"}, InvalidOptionError, "optimizer"),
    ({"activation": "swish"}, InvalidOptionError, "activation"),
    ({"hidden": "20"}, ArgumentTypeError, "hidden"),
    ({"hidden": (20, 0)}, InvalidOptionError, "hidden width"),
    ({"n_iter_no_change": 0}, InvalidOptionError, "n_iter_no_change"),
    ({"weight": -1.0}, InvalidOptionError, "weight"),
    ({"lr": 0.0}, InvalidOptionError, "lr"),
    ({"batch_size": 8}, InvalidOptionError, "adam"),
    ({"early_stopping": True, "validation_fraction": 1.5}, InvalidOptionError,
     "validation_fraction"),
    ({"module": "net"}, ArgumentTypeError, "nn.Module"),
    ({"dtype": torch.int64}, TypeError, "floating"),
    ({"jac_mode": "fast"}, InvalidOptionError, "jac_mode"),
])
def test_bad_hyper_parameters_are_refused_at_fit(kwargs: dict, error: type, match: str) -> None:
    x = np.linspace(-1, 1, 6)
    with pytest.raises(error, match=match):
        JENNRegressor(max_iter=2, **kwargs).fit(x, x, np.ones_like(x))


def test_bad_data_is_refused_with_the_expected_shape() -> None:
    x, y, d = np.zeros((5, 2)), np.zeros(5), np.zeros((5, 2))
    reg = JENNRegressor(max_iter=1)
    with pytest.raises(ShapeError, match="4"):
        reg.fit(x, y[:4])
    with pytest.raises(ShapeError, match=r"\(5, 1, 2\)"):
        reg.fit(x, y, np.zeros((5, 3)))
    with pytest.raises(NonFiniteInputError, match="y"):
        reg.fit(x, np.full(5, np.nan))
    with pytest.raises(NonFiniteInputError, match="NaN instead"):
        reg.fit(x, y, np.full((5, 2), np.inf))
    with pytest.raises(InvalidOptionError, match="dydx"):
        reg.fit(x, y, mask=np.ones((5, 2), dtype=bool))
    with pytest.raises(ArgumentTypeError, match="x"):
        reg.fit("x", y)
    reg.fit(x + np.arange(5)[:, None], y, d)
    with pytest.raises(ShapeError, match="fitted on 2"):
        reg.predict(np.zeros((3, 3)))


@pytest.mark.cuda
def test_cuda_fit_matches_the_cpu_fit() -> None:
    x = grid(4)
    y, d = rosenbrock(x)
    kw = dict(hidden=(8, 8), seed=0, max_iter=20)
    cpu = JENNRegressor(**kw).fit(x, y, d)
    gpu = JENNRegressor(device="cuda", **kw).fit(x, y, d)
    assert next(gpu.module_.parameters()).is_cuda
    xt = torch.as_tensor(uniform(2, 10, seed=1), device="cuda")
    out = gpu.predict(xt)
    assert out.is_cuda
    np.testing.assert_allclose(out.cpu().numpy(), cpu.predict(xt.cpu().numpy()), rtol=1e-6,
                               atol=1e-6)


# --- the optimisers ----------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["lm", "lbfgs"])
def test_recorded_loss_is_the_sobolev_loss_plus_the_penalty(optimizer: str) -> None:
    from jacobite.nn import sobolev_loss

    x = grid(3)
    y, d = rosenbrock(x)
    d[0, 1] = np.nan
    reg = JENNRegressor(hidden=(4,), seed=0, optimizer=optimizer, max_iter=5, alpha=0.01,
                        weight=0.3, tol=0.0).fit(x, y, d)
    s = reg.scaling_
    xt, yt, dt = (torch.as_tensor(a) for a in (x, y[:, None], d[:, None, :]))
    res = sobolev_loss(reg.module_, s.x_in(xt), s.y_in(yt), s.dydx_in(dt), weight=0.3)
    weights = [p.detach() for p in reg.module_.parameters() if p.ndim >= 2]
    penalty = 0.5 * 0.01 / 9 * sum(float((w * w).sum()) for w in weights)
    total, value, jac = (float(t.detach()) for t in (res.total, res.value, res.jacobian))
    assert reg.loss_curve_[-1] == pytest.approx(total + penalty, rel=1e-10)
    assert reg.value_loss_curve_[-1] == pytest.approx(value, rel=1e-10)
    assert reg.jacobian_loss_curve_[-1] == pytest.approx(jac, rel=1e-10)


def _ridge_with_partials(x: np.ndarray, y: np.ndarray, d: np.ndarray, lam: float,
                         alpha: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The minimiser (W, b) and minimum of MSE(x Wᵀ + b − y) + λ MSE(W − dydx) + α/(2N)‖W‖²
    for a linear model, by NumPy's least squares on the stacked equations."""
    N, m, n = d.shape
    rows, rhs = [], []
    for i in range(N):
        for j in range(m):
            r = np.zeros(m * n + m)
            r[j * n:(j + 1) * n], r[m * n + j] = x[i], 1.0
            rows.append(r / np.sqrt(N * m))
            rhs.append(y[i, j] / np.sqrt(N * m))
            for k in range(n):
                r = np.zeros(m * n + m)
                r[j * n + k] = np.sqrt(lam / (N * m * n))
                rows.append(r)
                rhs.append(np.sqrt(lam / (N * m * n)) * d[i, j, k])
    for jk in range(m * n):
        r = np.zeros(m * n + m)
        r[jk] = np.sqrt(alpha / (2 * N))
        rows.append(r)
        rhs.append(0.0)
    A, c = np.array(rows), np.array(rhs)
    theta = np.linalg.lstsq(A, c, rcond=None)[0]
    return theta[:m * n].reshape(m, n), theta[m * n:], float(np.sum((A @ theta - c) ** 2))


@pytest.mark.parametrize(("optimizer", "kw", "atol"), [
    ("lm", {}, 1e-9), ("lbfgs", {}, 1e-7), ("adam", {"lr": 1e-2, "max_iter": 3000}, 2e-3)])
def test_each_optimizer_reaches_the_least_squares_solution_of_a_linear_model(
        optimizer: str, kw: dict, atol: float) -> None:
    """A linear model (no hidden layer) makes the objective quadratic: its minimiser is a
    linear least-squares solution, computed here by NumPy from the stacked equations."""
    g = np.random.default_rng(4)
    x = g.uniform(-1, 1, (12, 3))
    y = np.stack([np.sin(x).sum(1), x[:, 0] * x[:, 1]], 1)
    d = g.standard_normal((12, 2, 3))
    W, b, best = _ridge_with_partials(x, y, d, lam=0.7, alpha=0.05)
    reg = JENNRegressor(hidden=(), optimizer=optimizer, normalize=False, weight=0.7, alpha=0.05,
                        tol=0.0, max_iter=kw.pop("max_iter", 300), seed=0, **kw).fit(x, y, d)
    lin = reg.module_[0]
    np.testing.assert_allclose(lin.weight.detach().numpy(), W, atol=atol, rtol=0)
    np.testing.assert_allclose(lin.bias.detach().numpy(), b, atol=atol, rtol=0)
    if optimizer != "adam":  # Adam's entries are its epochs' means, taken before each step
        assert reg.loss_curve_[-1] == pytest.approx(best, rel=1e-9)
        assert reg.stop_reason_ == "converged"


@pytest.mark.parametrize("optimizer", ["lm", "lbfgs", "adam"])
def test_max_iter_is_the_number_of_iterations_run(optimizer: str) -> None:
    x = grid(3)
    y, d = rosenbrock(x)
    reg = JENNRegressor(hidden=(6,), optimizer=optimizer, max_iter=13, tol=0.0, seed=0,
                        n_iter_no_change=10_000).fit(x, y, d)
    assert reg.n_iter_ == 13 and reg.stop_reason_ == "max_iter"
    # L-BFGS: one entry per loss evaluation, the start included; the others one per iteration
    assert len(reg.loss_curve_) > 13 if optimizer == "lbfgs" else len(reg.loss_curve_) == 13


def test_auto_runs_levenberg_marquardt_on_tiny_problems(rosen_fit: JENNRegressor) -> None:
    x = np.linspace(-np.pi, np.pi, 4)  # jenn's x·sin(x) demo: 4 samples, one hidden layer of 12
    xt = np.linspace(-np.pi, np.pi, 200)
    for seed in range(3):
        reg = JENNRegressor(hidden=(12,), seed=seed).fit(x, x * np.sin(x),
                                                          np.sin(x) + x * np.cos(x))
        assert reg.optimizer_ == "lm"
        assert reg.score(xt, xt * np.sin(xt)) > 0.99
        assert reg.score_jacobian(xt, np.sin(xt) + xt * np.cos(xt)) > 0.99
    assert rosen_fit.optimizer_ == "lbfgs"
    # few samples but more than 150 parameters: MINPACK's steps would cost more than L-BFGS's
    big = JENNRegressor(hidden=(20, 20), seed=0, max_iter=3).fit(x, x * np.sin(x))
    assert big.optimizer_ == "lbfgs"
