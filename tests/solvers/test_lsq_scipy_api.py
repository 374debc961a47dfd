"""least_squares with SciPy's arguments, each against scipy.optimize.least_squares as the oracle:
residual functions in NumPy, difference Jacobians (2-point, 3-point, cs, diff_step,
jac_sparsity), Bounds, a callable loss, sparse / LinearOperator Jacobians, the callback,
tolerances that are off, workers, and the typed refusals."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.linalg import aslinearoperator

import jacobite
from jacobite.errors import ArgumentTypeError, InvalidOptionError, ShapeError

T = np.linspace(0.0, 2.0, 15)
Y = 2.5 * np.exp(-1.3 * T) + 0.3


def decay(p: np.ndarray) -> np.ndarray:
    """A NumPy model: it returns an array (and works on tensors only by accident)."""
    return np.asarray(p[0] * np.exp(-p[1] * T) + p[2] - Y)


def decay_jac(p: np.ndarray) -> np.ndarray:
    e = np.exp(-p[1] * T)
    return np.stack([e, -p[0] * T * e, np.ones_like(T)], axis=1)


def tridiagonal(x: np.ndarray) -> np.ndarray:
    f = (3 - x) * x + 1
    f[1:] -= x[:-1]
    f[:-1] -= 2 * x[1:]
    return f


def tridiagonal_pattern(n: int) -> sp.csr_matrix:
    return sp.diags([np.ones(n - 1), np.ones(n), np.ones(n - 1)], [-1, 0, 1]).tocsr()


def tridiagonal_jac(x: np.ndarray) -> sp.csr_matrix:
    n = x.size
    return sp.diags([-np.ones(n - 1), 3 - 2 * x, -2 * np.ones(n - 1)], [-1, 0, 1]).tocsr()


def cubic_soft_l1(z: np.ndarray) -> np.ndarray:
    t = 1 + z
    return np.stack([3 * (np.cbrt(t) - 1), t ** (-2 / 3), -2 / 3 * t ** (-5 / 3)])


P0 = np.array([1.0, 1.0, 0.0])


@pytest.mark.parametrize("jac", ["2-point", "3-point", "cs", decay_jac, "auto"])
@pytest.mark.parametrize("method", ["trf", "lm"])
def test_numpy_fun_matches_scipy(jac: object, method: str) -> None:
    want = so.least_squares(decay, P0, jac=decay_jac, method=method, xtol=1e-14, ftol=1e-14,
                            gtol=1e-14)
    res = jacobite.least_squares(decay, P0, jac=jac, method=method)
    assert isinstance(res.x, np.ndarray) and isinstance(res.fun, np.ndarray)
    np.testing.assert_allclose(res.x, want.x, rtol=1e-6)
    assert res.success


@pytest.mark.parametrize("scheme", ["2-point", "3-point", "cs"])
@pytest.mark.parametrize("diff_step", [None, 1e-3])
def test_difference_jacobian_is_scipys(scheme: str, diff_step: float | None) -> None:
    """max_nfev=1 returns the Jacobian at x0: SciPy's difference rule, to its own accuracy."""
    x0 = np.array([2.0, 0.7, -0.4])
    res = jacobite.least_squares(decay, x0, jac=scheme, diff_step=diff_step, max_nfev=1,
                                 method="trf")
    want = so.least_squares(decay, x0, jac=scheme, diff_step=diff_step, max_nfev=1,
                            method="trf")
    np.testing.assert_allclose(res.jac, want.jac, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.jac, decay_jac(x0), rtol=1e-2 if diff_step else 1e-5)


@pytest.mark.parametrize("scheme", ["2-point", "3-point", "cs"])
def test_jac_sparsity_groups_columns(scheme: str) -> None:
    n = 30
    x0 = -np.ones(n)
    pat = tridiagonal_pattern(n)
    res = jacobite.least_squares(tridiagonal, x0, jac=scheme, jac_sparsity=pat, max_nfev=1,
                                 method="trf")
    assert sp.issparse(res.jac)
    np.testing.assert_allclose(res.jac.toarray(), tridiagonal_jac(x0).toarray(), atol=1e-6)
    full = jacobite.least_squares(tridiagonal, x0, jac=scheme, jac_sparsity=pat, method="trf")
    want = so.least_squares(tridiagonal, x0, jac=scheme, jac_sparsity=pat, method="trf")
    np.testing.assert_allclose(full.x, want.x, atol=1e-8)


@given(st.integers(0, 9), st.sampled_from(["lb", "ub"]))
def test_differences_near_a_bound_stay_inside(k: int, side: str) -> None:
    """Difference points never leave the box (steps flip or go one-sided, whatever the sign of
    x), columns of one color share the formula, and each stays a correct quotient."""
    n = 10
    x0 = -np.ones(n)
    lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
    (lb if side == "lb" else ub)[k] = x0[k] - (1e-9 if side == "lb" else -1e-9)
    seen: list[np.ndarray] = []

    def fun(x: np.ndarray) -> np.ndarray:
        seen.append(np.array(x))
        return tridiagonal(np.array(x))

    for scheme in ("2-point", "3-point"):
        res = jacobite.least_squares(fun, x0, jac=scheme, bounds=(lb, ub), max_nfev=1,
                                     jac_sparsity=tridiagonal_pattern(n), method="trf")
        np.testing.assert_allclose(res.jac.toarray(), tridiagonal_jac(res.x).toarray(),
                                   atol=1e-6)
    assert all(np.all((p >= lb) & (p <= ub)) for p in seen)  # no point outside the box


def test_wrong_jac_sparsity_shape_is_refused() -> None:
    with pytest.raises(ShapeError, match="jac_sparsity"):
        jacobite.least_squares(tridiagonal, -np.ones(5), jac_sparsity=np.ones((4, 5)))


@pytest.mark.parametrize("mode", ["sparse", "operator"])
def test_sparse_and_operator_jacobians(mode: str) -> None:
    n = 20
    x0 = -np.ones(n)
    jac = tridiagonal_jac if mode == "sparse" else (
        lambda x: aslinearoperator(tridiagonal_jac(x)))
    res = jacobite.least_squares(tridiagonal, x0, jac=jac, method="trf")
    want = so.least_squares(tridiagonal, x0, jac=jac, method="trf", x_scale=1.0)
    np.testing.assert_allclose(res.x, want.x, atol=1e-9)
    assert res.cost < 1e-20
    with pytest.raises(InvalidOptionError, match="tr_solver='exact'"):
        jacobite.least_squares(tridiagonal, x0, jac=jac, tr_solver="exact")


def test_bounds_instance_is_a_pair() -> None:
    lb, ub = np.array([0.0, 1.5, -1.0]), np.array([3.0, 5.0, 0.2])
    x0 = np.array([1.0, 2.0, 0.0])
    a = jacobite.least_squares(decay, x0, bounds=so.Bounds(lb, ub))
    b = jacobite.least_squares(decay, x0, bounds=(lb, ub))
    want = so.least_squares(decay, x0, bounds=(lb, ub), xtol=1e-14, ftol=1e-14, gtol=1e-14)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(a.x, want.x, atol=1e-7)
    np.testing.assert_array_equal(a.active_mask, want.active_mask)


@pytest.mark.parametrize("f_scale", [0.1, 1.0])
def test_callable_loss_matches_scipy(f_scale: float) -> None:
    y = Y.copy()
    y[3] += 4.0  # an outlier

    def fun(p: np.ndarray) -> np.ndarray:
        return np.asarray(p[0] * np.exp(-p[1] * T) + p[2] - y)

    res = jacobite.least_squares(fun, P0, loss=cubic_soft_l1, f_scale=f_scale, method="trf")
    want = so.least_squares(fun, P0, jac="3-point", loss=cubic_soft_l1, f_scale=f_scale,
                            method="trf", xtol=1e-14, ftol=1e-14, gtol=1e-14)
    np.testing.assert_allclose(res.x, want.x, rtol=1e-6)
    np.testing.assert_allclose(res.cost, want.cost, rtol=1e-9)
    # the same loss by name and as a callable give the same solve
    by_name = jacobite.least_squares(fun, P0, decay_jac, loss="soft_l1", f_scale=f_scale,
                                     method="trf")
    soft = jacobite.least_squares(fun, P0, decay_jac, f_scale=f_scale, method="trf",
                                  loss=lambda z: np.stack([2 * (np.sqrt(1 + z) - 1),
                                                           1 / np.sqrt(1 + z),
                                                           -0.5 * (1 + z) ** -1.5]))
    # a flat robust minimum: x agrees to the accuracy the cost determines it, the cost fully
    np.testing.assert_allclose(soft.x, by_name.x, rtol=1e-5)
    np.testing.assert_allclose(soft.cost, by_name.cost, rtol=1e-13)


def test_callable_loss_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ShapeError, match=r"\(3, m\)"):
        jacobite.least_squares(decay, P0, loss=lambda z: z, method="trf")


@pytest.mark.parametrize("method", ["trf", "lm", "dogbox"])
def test_callback_sees_every_accepted_step(method: str) -> None:
    seen: list[so.OptimizeResult] = []

    def cb(intermediate_result: so.OptimizeResult) -> None:
        seen.append(intermediate_result)

    res = jacobite.least_squares(decay, P0, method=method, callback=cb)
    assert [r.nit for r in seen] == list(range(1, len(seen) + 1)) and len(seen) == res.njev - 1
    np.testing.assert_array_equal(seen[-1].x, res.x)
    np.testing.assert_allclose(seen[-1].cost, 0.5 * np.sum(decay(seen[-1].x) ** 2), rtol=1e-12)
    np.testing.assert_array_equal(seen[-1].fun, decay(seen[-1].x))


@pytest.mark.parametrize("stop", ["raise", "true"])
def test_callback_stops_with_status_minus_2(stop: str) -> None:
    xs: list[np.ndarray] = []

    def cb(x: np.ndarray) -> bool:
        xs.append(x)
        if stop == "raise":
            raise StopIteration
        return True

    def halt(x: np.ndarray) -> None:
        raise StopIteration

    res = jacobite.least_squares(decay, P0, method="trf", callback=cb)
    want = so.least_squares(decay, P0, jac="3-point", method="trf", callback=halt)
    assert res.status == want.status == -2 and not res.success and res.nit == 1
    np.testing.assert_array_equal(xs[0], res.x)
    np.testing.assert_allclose(res.cost, 0.5 * np.sum(decay(res.x) ** 2), rtol=1e-12)


def test_callback_gets_tensors_for_a_tensor_start() -> None:
    got: list[object] = []
    t = torch.as_tensor(T)
    y = torch.as_tensor(Y)
    jacobite.least_squares(lambda p: p[0] * torch.exp(-p[1] * t) + p[2] - y,
                           torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64),
                           callback=got.append)
    assert got and all(isinstance(x, torch.Tensor) for x in got)


def test_tolerances_may_be_off_but_not_all() -> None:
    for ftol, xtol, gtol in [(1e-10, None, None), (None, 1e-10, None), (None, None, 1e-10)]:
        res = jacobite.least_squares(decay, P0, ftol=ftol, xtol=xtol, gtol=gtol, method="trf")
        want = so.least_squares(decay, P0, ftol=ftol, xtol=xtol, gtol=gtol, method="trf",
                                jac=decay_jac)
        np.testing.assert_allclose(res.x, want.x, rtol=1e-5)
    with pytest.raises(InvalidOptionError, match="at least one"):
        jacobite.least_squares(decay, P0, ftol=None, xtol=None, gtol=None)


def test_complex_start_is_refused() -> None:
    for x0 in (2.0 + 0j, [1.0, 2.0 + 0j], torch.tensor([1.0 + 1j])):
        with pytest.raises(InvalidOptionError, match="complex"):
            jacobite.least_squares(lambda x: x - 1, x0)


def test_args_fun_cannot_take_raise_type_error() -> None:
    with pytest.raises(ArgumentTypeError, match="fun cannot be called"):
        jacobite.least_squares(lambda x, a: x - a, 1.0, args=(1, 2))
    with pytest.raises(ArgumentTypeError, match="fun cannot be called"):
        jacobite.least_squares(lambda x, a=0: x - a, 1.0, kwargs={"b": 1})


@pytest.mark.parametrize(("kw", "err"), [
    (dict(tr_solver="best"), InvalidOptionError),
    (dict(tr_solver="lsmr", tr_options={"tol": 1e-10}), ArgumentTypeError),
    (dict(x_scale=1.0 + 2.0j), InvalidOptionError),
    (dict(x_scale="auto"), InvalidOptionError),
    (dict(workers=0), InvalidOptionError),
    (dict(jac="oops"), InvalidOptionError),
])
def test_bad_scipy_options_are_refused(kw: dict[str, object], err: type[Exception]) -> None:
    with pytest.raises(err):
        jacobite.least_squares(decay, P0, **kw)  # type: ignore[arg-type]


def test_workers_give_the_serial_answer() -> None:
    serial = jacobite.least_squares(decay, P0, jac="2-point", method="trf")
    threads = jacobite.least_squares(decay, P0, jac="2-point", method="trf", workers=2)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pooled = jacobite.least_squares(decay, P0, jac="2-point", method="trf",
                                        workers=pool.map)
    for res in (threads, pooled):
        np.testing.assert_array_equal(res.x, serial.x)
        assert res.nfev == serial.nfev


def test_result_type_follows_x0() -> None:
    t = torch.tensor([0.5], dtype=torch.float64)
    assert isinstance(jacobite.least_squares(lambda x: x ** 2 - 4, t).x, torch.Tensor)
    out = jacobite.least_squares(lambda x: x ** 2 - 4, np.array([0.5]))
    assert isinstance(out.x, np.ndarray) and isinstance(out.active_mask, np.ndarray)
    numpy_fun = jacobite.least_squares(lambda x: np.asarray(x) ** 2 - 4, 0.5)
    assert isinstance(numpy_fun.x, np.ndarray) and numpy_fun.x.shape == (1,)
    assert isinstance(jacobite.least_squares(lambda x: x ** 2 - 4, 0.5).x, torch.Tensor)


def test_float32_residuals_take_float32_steps() -> None:
    rng = np.random.default_rng(1978)
    x = np.linspace(0, 1, 100, dtype=np.float32)
    y = rng.random(size=100, dtype=np.float32)

    def err(p: np.ndarray) -> np.ndarray:
        return ((p[0] + p[1] * x).astype(np.float32) - y).astype(np.float32)

    exact = np.linalg.lstsq(np.stack([np.ones(100), x.astype(float)], 1), y.astype(float),
                            rcond=None)[0]
    res = jacobite.least_squares(err, [-1.0, -1.0])
    np.testing.assert_allclose(res.jac, np.stack([np.ones(100), x], 1), atol=1e-3)
    np.testing.assert_allclose(res.x, exact, atol=2e-6)


@given(st.floats(-3.0, 3.0), st.floats(0.2, 3.0))
def test_positional_jac_and_bounds_as_scipy(a: float, width: float) -> None:
    """``least_squares(fun, x0, jac, bounds)`` binds as in SciPy."""
    lb, ub = a - width, a + width
    x0 = np.array([a])
    res = jacobite.least_squares(lambda v: np.asarray((v - a) ** 2 + 1.0), x0,
                                 lambda v: np.atleast_2d(2 * (v - a)), (lb, ub), method="trf")
    assert lb <= res.x[0] <= ub and abs(res.x[0] - a) < 1e-3


def test_fun_that_leaves_torch_falls_back_to_differences() -> None:
    """A fun returning tensors but computing in NumPy: AD cannot follow it, differences can."""
    def fun(x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.sin(np.asarray(x))) - 0.5

    x0 = torch.tensor([0.1, 0.2], dtype=torch.float64)
    res = jacobite.least_squares(fun, x0)
    assert res.jac_mode == "3-point" and isinstance(res.x, torch.Tensor)
    np.testing.assert_allclose(res.x.numpy(), np.arcsin(0.5), rtol=1e-12)
    with pytest.raises(jacobite.errors.UnsupportedOperationError, match="leaves torch"):
        jacobite.least_squares(fun, x0, jac="dense")


def test_fun_reading_x_into_python_is_differenced() -> None:
    """float(x) / x.item() / math.exp: AD would see a constant; jac='auto' differences it
    (the answer is SciPy's), jac='dense' refuses it by name."""
    import math

    def fun(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.tensor(math.exp(float(p[0])), dtype=torch.float64) - 2.0,
                            p[1] - 1.0])

    x0 = torch.tensor([0.0, 0.0], dtype=torch.float64)
    res = jacobite.least_squares(fun, x0)
    assert res.success and res.jac_mode == "3-point"
    np.testing.assert_allclose(res.x.numpy(), [math.log(2.0), 1.0], rtol=1e-10)
    with pytest.raises(jacobite.errors.UnsupportedOperationError, match="float"):
        jacobite.least_squares(fun, x0, jac="dense")


def test_numpy_jac_for_a_fun_that_runs_on_tensors() -> None:
    """fun works on tensors by accident, its jac only on arrays: jac gets arrays."""
    def fun(p: object) -> object:
        return p[0] * np.exp(-p[1] * T) + p[2] - Y  # type: ignore[index]

    res = jacobite.least_squares(fun, P0, decay_jac, method="trf")
    want = so.least_squares(decay, P0, decay_jac, method="trf", xtol=1e-14, ftol=1e-14,
                            gtol=1e-14)
    np.testing.assert_allclose(res.x, want.x, rtol=1e-8)


def test_numpy_start_with_tracked_args_gives_a_differentiable_tensor() -> None:
    """x*(θ) = θ for r = x − θ: dx/dθ = 1 by the implicit function theorem, x0 a NumPy array."""
    th = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    res = jacobite.least_squares(lambda x, a: x - a, np.array([0.0]), args=(th,))
    assert isinstance(res.x, torch.Tensor)
    (g,) = torch.autograd.grad(res.x.sum(), th)
    assert float(g) == pytest.approx(1.0, abs=1e-12)
