"""Derivatives of solutions (solve_implicit, root, least_squares) under autograd and torch.func,
against closed forms, implicit_jacobian and central differences of re-solving with SciPy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch
from torch.func import grad, jacfwd, jacrev, vmap

from jacobite.errors import ConvergenceError, UnsupportedOperationError
from jacobite.solvers import implicit_jacobian, least_squares, root, solve_implicit

DT = torch.float64
TOL = dict(rtol=1e-9, atol=1e-10)
THETA = torch.tensor([1.7, 3.2], dtype=DT)
X0 = torch.ones(2, dtype=DT)


def sq(x, th):
    return x ** 2 - th


def coupled(x, th):
    """A coupled nonlinear system with one root near x0 = (1, 1)."""
    return torch.stack([x[0] ** 3 + x[1] - th[0], x[0] - x[1] ** 2 + th[1] * x[1] - 1.0])


def coupled_np(x, th):
    return np.array([x[0] ** 3 + x[1] - th[0], x[0] - x[1] ** 2 + th[1] * x[1] - 1.0])


def central(solve_np, th: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """dx*/dθ by central differences of a SciPy re-solve."""
    cols = []
    for j in range(th.size):
        e = np.zeros_like(th)
        e[j] = h
        cols.append((solve_np(th + e) - solve_np(th - e)) / (2 * h))
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- solve_implicit


def test_solve_implicit_first_derivatives_match_scipy_differences() -> None:
    th = torch.tensor([2.0, 0.5], dtype=DT)
    ref = central(lambda t: scipy.optimize.root(coupled_np, [1.0, 1.0], args=(t,),
                                                tol=1e-14).x, th.numpy())
    for transform in (jacrev, jacfwd):
        J = transform(lambda t: solve_implicit(coupled, X0, t))(th)
        np.testing.assert_allclose(J.numpy(), ref, rtol=1e-6, atol=1e-8)
    x = solve_implicit(coupled, X0, th)
    torch.testing.assert_close(jacrev(lambda t: solve_implicit(coupled, X0, t))(th),
                               implicit_jacobian(coupled, x, th), **TOL)


def test_solve_implicit_second_derivatives_in_every_composition() -> None:
    def fn(t):
        return solve_implicit(sq, X0, t)

    expected = torch.zeros(2, 2, 2, dtype=DT)  # d²√θᵢ/dθᵢ² on the diagonal
    expected[0, 0, 0], expected[1, 1, 1] = -0.25 * THETA ** -1.5
    for outer, inner in ((jacrev, jacrev), (jacfwd, jacrev), (jacrev, jacfwd)):
        torch.testing.assert_close(outer(inner(fn))(THETA), expected, **TOL)
    torch.testing.assert_close(torch.func.hessian(lambda t: fn(t)[1])(THETA), expected[1],
                               **TOL)
    with pytest.raises(UnsupportedOperationError, match="jacrev"):  # torch would give 0
        jacfwd(jacfwd(fn))(THETA)


def test_implicit_jacobian_of_a_solution_is_the_total_derivative() -> None:
    def fn(t):
        return implicit_jacobian(sq, solve_implicit(sq, X0, t), t).diagonal()

    torch.testing.assert_close(jacrev(fn)(THETA), torch.diag(-0.25 * THETA ** -1.5), **TOL)


def test_solve_implicit_pytree_theta_and_vmap_as_a_loop() -> None:
    def F(x, th):
        return x ** 3 + th["a"] * x - th["b"]

    th = {"a": torch.tensor([1.0, 2.0], dtype=DT), "b": torch.tensor([0.5, -1.0], dtype=DT)}
    rev = jacrev(lambda t: solve_implicit(F, torch.zeros(2, dtype=DT), t))(th)
    fwd = jacfwd(lambda t: solve_implicit(F, torch.zeros(2, dtype=DT), t))(th)
    x = solve_implicit(F, torch.zeros(2, dtype=DT), th)
    ij = implicit_jacobian(F, x, th)
    for k in th:
        torch.testing.assert_close(rev[k], ij[k], **TOL)
        torch.testing.assert_close(fwd[k], ij[k], **TOL)
    batch = torch.stack([THETA, THETA * 1.5, THETA + 0.2])
    torch.testing.assert_close(vmap(lambda t: solve_implicit(sq, X0, t))(batch), batch.sqrt(),
                               **TOL)
    torch.testing.assert_close(vmap(grad(lambda t: solve_implicit(sq, X0, t).sum()))(batch),
                               0.5 * batch ** -0.5, **TOL)


def test_closures_over_tracked_tensors_are_refused_not_ignored() -> None:
    w = torch.tensor([2.0, 3.0], dtype=DT, requires_grad=True)  # e.g. a module's weight
    th = THETA.clone().requires_grad_(True)
    calls = (lambda: solve_implicit(lambda x, t: w * x ** 2 - t, X0, th),
             lambda: root(lambda x, t: w * x ** 2 - t, X0, args=(th,)),
             lambda: least_squares(lambda x, t: w * x - t, torch.zeros(2, dtype=DT), args=(th,)))
    for call in calls:
        with pytest.raises(UnsupportedOperationError, match="θ of solve_implicit"):
            call()
    with torch.no_grad():  # no derivative wanted
        torch.testing.assert_close(solve_implicit(lambda x, t: w * x ** 2 - t, X0, th),
                                   (THETA / w.detach()).sqrt(), **TOL)
    both = {"w": w, "t": th}  # the fix: w becomes part of θ
    x = solve_implicit(lambda x, p: p["w"] * x ** 2 - p["t"], X0, both)
    gw, gt = torch.autograd.grad(x.sum(), (w, th))
    torch.testing.assert_close(gt, 0.5 / (w * x).detach(), **TOL)
    torch.testing.assert_close(gw, -0.5 * (x / w).detach(), **TOL)


def test_sparse_jacobian_first_and_second_derivatives() -> None:
    def jac(x):
        return sp.diags(2 * x.numpy())

    th = THETA.clone().requires_grad_(True)
    x = solve_implicit(sq, X0, th, jac=jac)
    (g,) = torch.autograd.grad(x.sum(), th, create_graph=True)
    torch.testing.assert_close(g, 0.5 * THETA ** -0.5, **TOL)
    (h,) = torch.autograd.grad(g.sum(), th)
    torch.testing.assert_close(h, -0.25 * THETA ** -1.5, **TOL)


# ----------------------------------------------------------------------------- root


def test_root_is_differentiable_in_tracked_args() -> None:
    th = torch.tensor([2.0, 0.5], dtype=DT)
    ref = central(lambda t: scipy.optimize.root(coupled_np, [1.0, 1.0], args=(t,),
                                                tol=1e-14).x, th.numpy())
    for transform in (jacrev, jacfwd):
        J = transform(lambda t: root(coupled, X0, args=(t,)).x)(th)
        np.testing.assert_allclose(J.numpy(), ref, rtol=1e-6, atol=1e-8)
    t = th.clone().requires_grad_(True)
    res = root(coupled, X0, args=(t,))
    assert res.success and res.x.requires_grad and not res.fun.requires_grad
    (g,) = torch.autograd.grad(res.x.sum(), t)
    np.testing.assert_allclose(g.numpy(), ref.sum(0), rtol=1e-6, atol=1e-8)


def test_root_with_mixed_args_and_a_second_derivative() -> None:
    def F(x, th, power):
        return x ** power - th

    t = THETA.clone().requires_grad_(True)
    x = root(F, X0, args=(t, 3)).x
    torch.testing.assert_close(x.detach(), THETA ** (1 / 3), **TOL)
    (g,) = torch.autograd.grad(x.sum(), t, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), t)
    torch.testing.assert_close(g.detach(), THETA ** (-2 / 3) / 3, **TOL)
    torch.testing.assert_close(h, -2 / 9 * THETA ** (-5 / 3), **TOL)


def test_integer_tensor_args_ride_along() -> None:
    idx = torch.tensor([1, 0])

    def F(x, th, i):
        return x ** 2 - th[i]

    J = jacrev(lambda t: root(F, X0, args=(t, idx)).x)(THETA)
    torch.testing.assert_close(J, torch.diag(0.5 * THETA ** -0.5)[idx], **TOL)


def test_a_failed_root_has_no_derivative() -> None:
    t = torch.tensor([-1.0], dtype=DT, requires_grad=True)  # x² + 1 = 0 has no real root
    res = root(lambda x, c: x ** 2 - c, torch.ones(1, dtype=DT), args=(t,))
    assert not res.success
    with pytest.raises(ConvergenceError, match="no derivative"):
        res.x.sum().backward()


def test_root_refuses_closures_over_tracked_tensors_and_vmap() -> None:
    th = THETA.clone().requires_grad_(True)
    with pytest.raises(UnsupportedOperationError, match="args="):
        root(lambda x: x ** 2 - th, X0)
    with pytest.raises(UnsupportedOperationError, match="args="):
        grad(lambda t: root(lambda x: x ** 2 - t, X0).x.sum())(THETA)
    with pytest.raises(UnsupportedOperationError, match="loop"):
        vmap(lambda t: root(sq, X0, args=(t,)).x)(torch.stack([THETA, THETA]))
    with torch.no_grad():  # no derivative wanted: the closure is fine
        assert root(lambda x: x ** 2 - th, X0).success


# ----------------------------------------------------------------------------- least_squares

T = torch.linspace(0.0, 2.0, 8, dtype=DT)
Y = 2.0 * torch.exp(-1.3 * T) + 0.05 * torch.sin(7 * T)  # not an exact fit: r ≠ 0 at p*


def expfit(p, y):
    return p[0] * torch.exp(-p[1] * T) - y


def expfit_scipy(y: np.ndarray) -> np.ndarray:
    t = T.numpy()
    return scipy.optimize.least_squares(lambda p: p[0] * np.exp(-p[1] * t) - y, [1.0, 1.0],
                                        method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15).x


# SciPy's solution is accurate to ~1e-9, so differences with h = 1e-3 hold to a few 1e-6 —
# far tighter than the Gauss–Newton approximation's error (~1e-3 here, where r ≠ 0)
LSQ_REF = central(expfit_scipy, Y.numpy(), h=1e-3)
FD = dict(rtol=0, atol=5e-6)


def full_hessian_ift(p: torch.Tensor) -> torch.Tensor:
    """``−H⁻¹ ∂²C/∂p∂y`` for the cost ``C = ½‖r‖²`` at the solution (the closed form)."""
    def cost(q, y):
        return 0.5 * expfit(q, y).square().sum()

    H = torch.func.hessian(cost)(p, Y)
    return -torch.linalg.solve(H, jacrev(jacrev(cost, 0), 1)(p, Y))


def test_least_squares_derivative_uses_the_full_hessian() -> None:
    ref = LSQ_REF
    closed = full_hessian_ift(torch.as_tensor(expfit_scipy(Y.numpy())))
    for transform in (jacrev, jacfwd):
        J = transform(lambda y: least_squares(expfit, [1.0, 1.0], args=(y,)).x)(Y)
        np.testing.assert_allclose(J.numpy(), ref, **FD)
        torch.testing.assert_close(J, closed, rtol=1e-8, atol=1e-9)
    y = Y.clone().requires_grad_(True)
    res = least_squares(lambda p, *, y: expfit(p, y), [1.0, 1.0], kwargs={"y": y})
    (g,) = torch.autograd.grad(res.x[1], y)
    np.testing.assert_allclose(g.numpy(), ref[1], **FD)


def test_least_squares_refusals_name_the_alternative() -> None:
    y = Y.clone().requires_grad_(True)
    with pytest.raises(UnsupportedOperationError, match="solve_implicit"):
        least_squares(expfit, [1.0, 1.0], args=(y,), loss="soft_l1")
    with pytest.raises(UnsupportedOperationError, match="args="):
        least_squares(lambda p: expfit(p, y), [1.0, 1.0])
    with pytest.raises(UnsupportedOperationError, match="loop"):
        vmap(lambda v: least_squares(expfit, [1.0, 1.0], args=(v,)).x)(torch.stack([Y, Y]))
    res = least_squares(expfit, [1.0, 2.0], args=(y,), bounds=([0.0, 1.5], [5.0, 5.0]))
    assert res.active_mask.tolist() == [0, -1]
    with pytest.raises(UnsupportedOperationError, match="bound is active"):
        res.x.sum().backward()
    inactive = least_squares(expfit, [1.0, 1.0], args=(y,), bounds=([0.0, 0.0], [5.0, 5.0]))
    (g,) = torch.autograd.grad(inactive.x[1], y)  # no active bound: the unbounded derivative
    np.testing.assert_allclose(g.numpy(), LSQ_REF[1], **FD)
