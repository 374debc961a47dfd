"""Implicit-function Jacobians and differentiable roots against closed forms, gradcheck and
finite differences of re-solving with SciPy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.errors import (
    ConvergenceError,
    InvalidOptionError,
    JacobiteWarning,
    NotSquareError,
    ShapeError,
    SingularOperatorError,
)
from jacobite.solvers.implicit import implicit_jacobian, solve_implicit
from tests.root_problems import bratu, freudenstein_roth

DT = torch.float64


def sqrt_F(x, th):
    return x ** 2 - th


def tridiagonal_F(x, th):
    """Broyden's tridiagonal system with the constant replaced by θ."""
    z = x.new_zeros(1)
    return (3 - 2 * x) * x - torch.cat([z, x[:-1]]) - 2 * torch.cat([x[1:], z]) + th


def tridiagonal_np(x, th):
    xm, xp = np.concatenate([[0.0], x[:-1]]), np.concatenate([x[1:], [0.0]])
    return (3 - 2 * x) * x - xm - 2 * xp + th


RNG = np.random.default_rng(0)
A0, A1 = RNG.standard_normal((4, 4)) * 0.3 + 3 * np.eye(4), RNG.standard_normal((4, 4))
B0, B1 = RNG.standard_normal(4), RNG.standard_normal(4)


def linear_F(x, th):
    """``A(θ) x − b(θ)`` with ``A = A0 + θ₀ A1``, ``b = B0 + θ₁ B1``."""
    A = torch.tensor(A0) + th[0] * torch.tensor(A1)
    return A @ x - (torch.tensor(B0) + th[1] * torch.tensor(B1))


# ----------------------------------------------------------------------------- closed forms


def test_sqrt_closed_form():
    th = torch.tensor([4.0, 9.0, 2.0], dtype=DT)
    J = implicit_jacobian(sqrt_F, th.sqrt(), th)
    torch.testing.assert_close(J, torch.diag(0.5 / th.sqrt()))
    thg = th.clone().requires_grad_()
    x = solve_implicit(sqrt_F, torch.ones(3), thg)
    torch.testing.assert_close(x, th.sqrt(), rtol=1e-15, atol=0)
    (g,) = torch.autograd.grad(x.sum(), thg)
    torch.testing.assert_close(g, 0.5 / th.sqrt())


def test_float32_theta():
    th = torch.tensor([4.0, 9.0], requires_grad=True)
    x = solve_implicit(sqrt_F, torch.ones(2), th)  # root works in float64 by default
    assert x.dtype == DT and x.tolist() == [2.0, 3.0]
    (g,) = torch.autograd.grad(x.sum(), th)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, torch.tensor([0.25, 1 / 6]))


def test_linear_system_closed_form():
    th = torch.tensor([0.2, -0.7], dtype=DT)
    A, b = A0 + 0.2 * A1, B0 - 0.7 * B1
    x = np.linalg.solve(A, b)
    want = np.stack([-np.linalg.solve(A, A1 @ x), np.linalg.solve(A, B1)], axis=1)
    J = implicit_jacobian(linear_F, torch.tensor(x), th)
    np.testing.assert_allclose(J.numpy(), want, rtol=1e-12, atol=1e-14)
    Jad = torch.autograd.functional.jacobian(
        lambda t: solve_implicit(linear_F, torch.zeros(4), t), th)
    np.testing.assert_allclose(Jad.numpy(), want, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("method", ["hybrid", "newton"])
def test_gradcheck_nonlinear(method):
    th = torch.tensor([1.0, 0.5, 1.5, 0.8], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: solve_implicit(tridiagonal_F, -torch.ones(4), t, method=method), (th,))
    th2 = torch.tensor([0.3, 1.7], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: solve_implicit(sqrt_F, torch.ones(2), t), (th2,))


def test_gradcheck_pytree_theta_and_matrix_x():
    a = torch.tensor([[1.0, 2.0], [0.5, 3.0]], dtype=DT, requires_grad=True)
    s = torch.tensor(0.3, dtype=DT, requires_grad=True)

    def F(X, p):  # X + p["s"] sin(X) = p["a"], entrywise
        return X + p["s"] * torch.sin(X) - p["a"]

    assert torch.autograd.gradcheck(
        lambda a_, s_: solve_implicit(F, torch.zeros(2, 2), {"a": a_, "s": s_}), (a, s))
    x = solve_implicit(F, torch.zeros(2, 2), {"a": a, "s": s}).detach()
    J = implicit_jacobian(F, x, {"a": a.detach(), "s": s.detach()})
    assert set(J) == {"a", "s"} and J["a"].shape == (2, 2, 2, 2) and J["s"].shape == (2, 2)
    d = 1 / (1 + 0.3 * torch.cos(x))  # dX/da entrywise; dX/ds = -sin(X) / (1 + s cos X)
    torch.testing.assert_close(J["a"].reshape(4, 4), torch.diag(d.reshape(-1)))
    torch.testing.assert_close(J["s"], -torch.sin(x) * d)


# ----------------------------------------------------------------------------- re-solving


def test_matches_finite_differences_of_scipy_resolves():
    th0 = np.array([1.0, 0.5, 1.5, 0.8, 1.2])

    def solve(th):
        r = scipy.optimize.root(tridiagonal_np, -np.ones(5), args=(th,), method="hybr",
                                options={"xtol": 1e-14})
        assert r.success
        return r.x

    h = 1e-5
    fd = np.stack([(solve(th0 + h * e) - solve(th0 - h * e)) / (2 * h) for e in np.eye(5)], 1)
    th = torch.tensor(th0)
    x = solve_implicit(tridiagonal_F, -torch.ones(5), th)
    np.testing.assert_allclose(x.numpy(), solve(th0), rtol=1e-12)
    J = implicit_jacobian(tridiagonal_F, x, th)
    np.testing.assert_allclose(J.numpy(), fd, rtol=1e-7, atol=1e-8)


def test_sparse_solve_and_adjoint_bratu():
    N = 8
    F0 = bratu(N, 1.0)
    F = lambda u, lam: F0(u) - (lam - 1.0) * torch.exp(u) / (N + 1) ** 2  # noqa: E731
    lam = torch.tensor(4.0, dtype=DT, requires_grad=True)
    u = solve_implicit(F, torch.zeros(N * N), lam, jac="sparse")
    (g,) = torch.autograd.grad(u.sum(), lam)
    J = implicit_jacobian(F, u.detach(), lam.detach())
    torch.testing.assert_close(g, J.sum(), rtol=1e-12, atol=0)
    with torch.no_grad():  # finite differences of re-solving
        up = solve_implicit(F, torch.zeros(N * N), lam + 1e-5)
        um = solve_implicit(F, torch.zeros(N * N), lam - 1e-5)
    assert abs(float((up - um).sum() / 2e-5) - float(g)) <= 1e-6 * abs(float(g))


def test_backward_does_not_unroll_the_solver():
    calls = []

    def F(x, th):
        calls.append(1)
        return tridiagonal_F(x, th)

    th = torch.ones(4, dtype=DT, requires_grad=True)
    x = solve_implicit(F, -torch.ones(4), th)
    n_forward = len(calls)
    assert n_forward > 3 and x.grad_fn is not None
    x.sum().backward()
    assert len(calls) - n_forward == 1  # one vector-Jacobian product in θ
    assert th.grad is not None and torch.isfinite(th.grad).all()


# ----------------------------------------------------------------------------- properties


@settings(max_examples=15)
@given(n=st.integers(1, 5), seed=st.integers(0, 2 ** 31 - 1))
def test_random_linear_systems(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) * 0.4 + 2 * np.eye(n)
    At = torch.tensor(A)
    th = torch.tensor(rng.standard_normal(n), requires_grad=True)
    x = solve_implicit(lambda x, t: At @ x - t, torch.zeros(n), th)
    np.testing.assert_allclose(x.detach().numpy(), np.linalg.solve(A, th.detach().numpy()),
                               rtol=1e-10, atol=1e-12)
    J = torch.autograd.functional.jacobian(
        lambda t: solve_implicit(lambda x, s: At @ x - s, torch.zeros(n), t), th.detach())
    np.testing.assert_allclose(J.numpy(), np.linalg.inv(A), rtol=1e-10, atol=1e-12)


@settings(max_examples=15)
@given(eps=st.floats(-0.9, 0.9), b=st.lists(st.floats(-10, 10), min_size=1, max_size=4))
def test_kepler_like_derivative(eps, b):
    bt = torch.tensor(b, dtype=DT, requires_grad=True)
    x = solve_implicit(lambda x, t: x + eps * torch.sin(x) - t, torch.zeros(len(b)), bt)
    (g,) = torch.autograd.grad(x.sum(), bt)
    want = 1 / (1 + eps * np.cos(x.detach().numpy()))
    np.testing.assert_allclose(g.numpy(), want, rtol=1e-12)


# ----------------------------------------------------------------------------- failures


def test_singular_and_residual_checks():
    with pytest.raises(SingularOperatorError, match="singular"):
        implicit_jacobian(sqrt_F, torch.zeros(1, dtype=DT), torch.zeros(1, dtype=DT))

    def F(x, th):  # a line of roots: ∂F/∂x is singular everywhere
        s = x.sum() - th[0]
        return torch.stack([s, 2 * s])

    th = torch.tensor([1.0], dtype=DT, requires_grad=True)
    x = solve_implicit(F, torch.zeros(2), th)
    with pytest.raises(SingularOperatorError):
        x.sum().backward()
    x_bad = torch.tensor([1.5], dtype=DT)
    with pytest.warns(JacobiteWarning, match="does not solve"):
        implicit_jacobian(sqrt_F, x_bad, torch.tensor([2.0], dtype=DT))
    with pytest.raises(ConvergenceError, match="does not solve"):
        implicit_jacobian(sqrt_F, x_bad, torch.tensor([2.0], dtype=DT), check="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        implicit_jacobian(sqrt_F, x_bad, torch.tensor([2.0], dtype=DT), check="off")
    with pytest.raises(InvalidOptionError):
        implicit_jacobian(sqrt_F, x_bad, torch.tensor([2.0], dtype=DT), check="maybe")
    with pytest.raises(NotSquareError):
        implicit_jacobian(lambda x, t: torch.cat([x, t]), x_bad, torch.tensor([2.0], dtype=DT))


def test_failed_solve_and_bad_theta():
    F = lambda x, th: freudenstein_roth(x) - th  # noqa: E731 - the standard start is trapped
    with pytest.raises(ConvergenceError, match="local minimum"):
        solve_implicit(F, [0.5, -2.0], torch.zeros(2, dtype=DT))
    with pytest.raises(ShapeError):
        solve_implicit(sqrt_F, [1.0], [1.0])
    with pytest.raises(InvalidOptionError):
        solve_implicit(sqrt_F, [1.0], torch.ones(1, dtype=DT), args=(1,))
