"""Values against analytic Jacobians and against torch.func.jacrev (an independent oracle)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from jacobite.errors import NonFiniteInputError
from jacobite.numeric import NumericJacobian, jacobian
from jacobite.numeric.differences import three_point

from ._zoo import CASES, mlp64

# relative accuracy each method must reach on these well-scaled functions
RTOL = {"richardson": 1e-12, "central": 1e-8, "forward": 2e-6, "complex": 1e-15}
METHODS = list(RTOL)
IDS = [c.name for c in CASES]


def _scale(J: np.ndarray) -> float:
    return max(1.0, float(np.abs(J).max()))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_numpy_matches_analytic(case, method):
    J = case.jac(case.x)
    res = jacobian(case.f_np, case.x, method)
    assert isinstance(res, NumericJacobian)
    assert isinstance(res.jacobian, np.ndarray) and res.jacobian.dtype == np.float64
    assert res.jacobian.shape == J.shape
    assert res.error.shape == J.shape and bool((res.error >= 0).all())
    assert res.method == method
    err = np.abs(res.jacobian - J).max()
    assert err <= RTOL[method] * _scale(J) * 4, (method, err)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_torch_matches_jacrev(case, method):
    x = torch.from_numpy(case.x.copy())
    oracle = torch.func.jacrev(case.f_torch)(x)
    res = jacobian(case.f_torch, x, method)
    assert isinstance(res.jacobian, torch.Tensor) and res.jacobian.dtype == torch.float64
    assert isinstance(res.error, torch.Tensor)
    assert res.jacobian.shape == oracle.shape
    err = (res.jacobian - oracle).abs().max().item()
    assert err <= RTOL[method] * _scale(oracle.numpy()) * 4, (method, err)


@pytest.mark.parametrize("method", ["richardson", "central", "forward"])
def test_torch_mlp_float64(method):
    net = mlp64()
    x = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
    oracle = torch.func.jacrev(net)(x)
    res = jacobian(net, x, method)
    assert res.jacobian.shape == (3, 5)
    assert not res.jacobian.requires_grad
    err = (res.jacobian - oracle).abs().max().item()
    assert err <= RTOL[method] * 4, err


def test_shapes_follow_jacrev_convention():
    x = np.ones((2, 3))
    assert jacobian(np.sum, x).jacobian.shape == (2, 3)  # scalar out: input dims only
    assert jacobian(lambda t: np.array([t, 2 * t]), 1.0).jacobian.shape == (2,)  # scalar in
    assert jacobian(lambda t: t ** 2, 3.0).jacobian.shape == ()  # scalar in and out
    res = jacobian(lambda X: X.T @ X, np.arange(6.0).reshape(3, 2), "central")
    assert res.jacobian.shape == (2, 2, 3, 2)
    assert res.as_matrix().shape == (4, 6) and res.flat.shape == (4, 6)
    assert res.error_matrix().shape == (4, 6)
    assert res.shape == (2, 2, 3, 2) and (res.m, res.n) == (4, 6)


def test_list_and_float_inputs_work_in_numpy():
    res = jacobian(lambda v: np.asarray(v) * 2, [1.0, 2.0], "forward")
    assert isinstance(res.jacobian, np.ndarray)
    np.testing.assert_allclose(res.jacobian, 2 * np.eye(2), rtol=1e-7)
    assert abs(float(jacobian(np.exp, 0.0).jacobian) - 1.0) < 1e-14


def test_integer_numpy_input_is_converted_to_float64():
    seen = []

    def f(v):
        seen.append(v.dtype)
        return v ** 2

    res = jacobian(f, np.array([1, 2, 3]))
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_allclose(res.jacobian, np.diag([2.0, 4.0, 6.0]), rtol=1e-13)


def test_torch_keeps_dtype_and_calls_f_with_tensors():
    seen = set()

    def f(v):
        seen.add((type(v), v.dtype))
        return torch.sin(v)

    x = torch.tensor([0.5, 1.0], dtype=torch.float32)
    with pytest.warns(UserWarning, match="double"):
        res = jacobian(f, x, "central")
    assert seen == {(torch.Tensor, torch.float32)}
    assert res.jacobian.dtype == torch.float32
    torch.testing.assert_close(res.jacobian, torch.diag(torch.cos(x)), rtol=1e-3, atol=1e-3)


def test_float32_richardson_error_estimate_is_honest():
    x = torch.tensor([0.5, 1.0, 2.0])
    with pytest.warns(UserWarning):
        res = jacobian(torch.exp, x)
    true = torch.diag(torch.exp(x.double()))
    err = (res.jacobian.double() - true).abs()
    assert bool((err <= 10 * res.error.double() + 1e-7).all())
    assert err.max().item() < 1e-4


def test_args_and_kwargs_are_forwarded():
    def f(x, a, *, b):
        return a * x + b * x ** 2

    res = jacobian(f, np.array([1.0, 2.0]), args=(3.0,), kwargs={"b": 0.5})
    np.testing.assert_allclose(res.jacobian, np.diag([4.0, 5.0]), rtol=1e-13)


def test_function_returning_list_or_tensor_in_numpy_world():
    res = jacobian(lambda v: [v[0] * v[1], v[0]], np.array([2.0, 3.0]))
    np.testing.assert_allclose(res.jacobian, [[3.0, 2.0], [1.0, 0.0]], atol=1e-13)
    res = jacobian(lambda v: torch.from_numpy(v) ** 2, np.array([2.0]))
    assert isinstance(res.jacobian, np.ndarray)
    np.testing.assert_allclose(res.jacobian, [[4.0]], rtol=1e-13)


def test_step_override_and_step_field():
    x = np.array([1.0, 2.0])
    res = jacobian(np.sin, x, "forward", step=1e-6)
    np.testing.assert_allclose(np.diag(res.step), 1e-6, rtol=1e-9)
    res = jacobian(np.sin, x, "central", step=np.array([1e-4, 2e-4]))
    np.testing.assert_allclose(np.diag(res.step), [1e-4, 2e-4], rtol=1e-9)
    res = jacobian(np.sin, x, "richardson", step=0.1)
    assert bool((res.step <= 0.1 * (1 + 1e-12)).all())
    np.testing.assert_allclose(res.jacobian, np.diag(np.cos(x)), atol=1e-13)


def test_empty_input_and_output():
    res = jacobian(lambda v: v * 2, np.zeros(0))
    assert res.jacobian.shape == (0, 0) and res.nfev == 1
    res = jacobian(lambda v: np.zeros(0), np.ones(3), "central")
    assert res.jacobian.shape == (0, 3) and res.max_error == 0.0


def test_repr_is_short():
    r = repr(jacobian(np.exp, np.ones(2)))
    assert r.startswith("NumericJacobian(method='richardson', shape=(2, 2), ndarray")


@pytest.mark.parametrize("method", ["richardson", "central", "forward", "backward"])
def test_float32_at_large_arguments_steps_stay_representable(method) -> None:
    # float32 holds 1e8 only to 8 units: every step taken must move x, and the estimate holds
    import warnings

    x = torch.tensor([1e8, -3e5, 0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = jacobian(lambda v: v ** 2 / 1e8 + torch.cos(v[2]), x, method)
    xe = x.double()
    exact = torch.diag(2 * xe / 1e8)
    exact[:, 2] -= torch.sin(xe[2])
    true = (res.jacobian.double() - exact).abs()
    assert bool((true <= 10 * res.error.double() + 1e-6).all()), (true, res.error)


@pytest.mark.parametrize(("method", "rtol"), [("central", 1e-10), ("forward", 1e-7),
                                              ("backward", 1e-7)])
@pytest.mark.parametrize("x", [1e150, -1e150, 1e100, 1e20, 1e300 ** 0.5])
def test_differences_at_huge_points_are_finite_sharp_and_honest(x, method, rtol):
    # f(x +- 2h) is near 1e300, finite; the weights of the difference once overflowed to NaN,
    # and the step sat at x's last digit (2e134 at 1e150), leaving an error of the size of J
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = jacobian(lambda v: v ** 2, np.array([x]), method=method)
    j, err = float(res.jacobian[0, 0]), float(res.error[0, 0])
    assert abs(j - 2 * x) <= min(err, rtol * abs(2 * x))


def test_three_point_weights_do_not_overflow_with_huge_steps_and_values():
    a, b = np.array([3e140]), np.array([2e140])
    x = 1e150
    fp, fm, f0 = np.array([(x + a[0]) ** 2]), np.array([(x - b[0]) ** 2]), np.array([x * x])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = three_point(a, b, fp, fm, f0)
    np.testing.assert_allclose(d, [2 * x], rtol=1e-6)


def test_richardson_at_a_huge_point_names_the_step_and_then_is_exact():
    with pytest.raises(NonFiniteInputError, match=r"vanished.*step="):
        jacobian(lambda v: v ** 2, np.array([1e150]))
    res = jacobian(lambda v: v ** 2, np.array([1e150]), step=1e146)
    np.testing.assert_allclose(res.jacobian, [[2e150]], rtol=1e-12)
    assert abs(float(res.jacobian[0, 0]) - 2e150) <= float(res.error[0, 0])
