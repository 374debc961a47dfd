"""The batched residual wrapper (per-problem Jacobians by every mode against the analytic ones,
the check that problems are independent) and the implicit-function derivatives of a batch of
solutions against a loop of single solves and closed forms."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.errors import (
    ConvergenceError,
    ShapeError,
    SingularOperatorError,
    UnsupportedOperationError,
)
from jacobite.solvers.lsq.engine.problem import BatchResiduals

DT = torch.float64
T = torch.linspace(0, 2, 7, dtype=DT)


def _model(p: torch.Tensor) -> torch.Tensor:
    """(B, 3) -> (B, 7): a e^{-k t} + c t², with per-row sin coupling of the parameters."""
    a, k, c = p[:, :1], p[:, 1:2], p[:, 2:3]
    return a * torch.exp(-k * T) + torch.sin(c * a) * T ** 2


def _analytic(p: torch.Tensor) -> torch.Tensor:
    a, k, c = p[:, :1], p[:, 1:2], p[:, 2:3]
    e = torch.exp(-k * T)
    co = torch.cos(c * a) * T ** 2
    return torch.stack([e + c * co, -a * T * e, a * co], -1)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("chunk", [None, 1])
@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 9), seed=st.integers(0, 2 ** 16))
def test_jacobians_match_analytic(mode, chunk, B, seed):
    x = torch.randn(B, 3, dtype=DT, generator=torch.Generator().manual_seed(seed))
    P = BatchResiduals(_model, x, mode=mode, chunk_size=chunk)
    P.f(x)
    torch.testing.assert_close(P.J(x), _analytic(x), rtol=1e-12, atol=1e-13)


def test_forward_by_jvps_beyond_the_double_backward_size(monkeypatch):
    from jacobite.solvers.lsq.engine import problem

    monkeypatch.setattr(problem, "DUAL_MAX", 0)
    x = torch.randn(4, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    P = BatchResiduals(_model, x, mode="forward")
    P.f(x)
    torch.testing.assert_close(P.J(x), _analytic(x), rtol=1e-12, atol=1e-13)


def test_auto_mode_reverse_when_small_forward_when_large():
    small = BatchResiduals(_model, torch.ones(2, 3, dtype=DT))
    small.f(small.x0)
    assert small.mode == "reverse"
    big = BatchResiduals(_model, torch.ones(5000, 3, dtype=DT))
    big.f(big.x0)
    assert big.mode == "forward"


def test_residuals_independent_of_x_give_zero_jacobians():
    c = torch.ones(3, 4, dtype=DT)
    for mode in ("forward", "reverse"):
        P = BatchResiduals(lambda x: c.clone(), torch.zeros(3, 2, dtype=DT), mode=mode)
        P.f(P.x0)
        assert P.J(P.x0).shape == (3, 4, 2) and not P.J(P.x0).any()


def test_linear_residuals_by_the_double_backward():
    A = torch.randn(3, 5, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    P = BatchResiduals(lambda x: torch.einsum("bmn,bn->bm", A, x), torch.ones(3, 2, dtype=DT),
                       mode="forward")
    P.f(P.x0)
    torch.testing.assert_close(P.J(P.x0), A)


@pytest.mark.parametrize("coupled", [
    lambda x: x - x.mean(0),
    lambda x: x * x.sum(0, keepdim=True),
    lambda x: torch.nn.functional.batch_norm(x, None, None, training=True),
    lambda x: x.flip(0) + x,
])
def test_coupled_functions_are_refused(coupled):
    x = torch.randn(6, 2, dtype=DT, generator=torch.Generator().manual_seed(2))
    P = BatchResiduals(coupled, x)
    P.f(x)
    with pytest.raises(UnsupportedOperationError, match="couples the problems"):
        P.check(x, P.J(x))


def test_coupling_is_refused_by_least_squares_too():
    with pytest.raises(UnsupportedOperationError, match="row b of fun"):
        jacobite.least_squares(lambda x: x - x.mean(0), torch.ones(4, 1), batch=True)


def test_coupling_check_with_a_user_jacobian():
    def jac(x):
        return torch.eye(2, dtype=DT).expand(x.shape[0], 2, 2)

    P = BatchResiduals(lambda x: x - x.mean(0), torch.randn(5, 2, dtype=DT), jac=jac)
    P.f(P.x0)
    with pytest.raises(UnsupportedOperationError):
        P.check(P.x0, P.J(P.x0))


def test_independent_problems_pass_the_check():
    x = torch.randn(8, 3, dtype=DT, generator=torch.Generator().manual_seed(3))
    P = BatchResiduals(_model, x)
    P.f(x)
    P.check(x, P.J(x))


def test_user_jacobian_of_the_wrong_shape():
    P = BatchResiduals(_model, torch.ones(2, 3, dtype=DT), jac=lambda x: torch.zeros(7, 3))
    P.f(P.x0)
    with pytest.raises(ShapeError, match=r"\(B, m, n\) = \(2, 7, 3\)"):
        P.J(P.x0)


def test_residuals_of_the_wrong_batch_size():
    P = BatchResiduals(lambda x: x.sum(), torch.ones(2, 3, dtype=DT))
    with pytest.raises(ShapeError, match="one row of residuals per problem"):
        P.f(P.x0)


# -- implicit-function derivatives ---------------------------------------------------------

def _exp_fit(p, y):
    return p[:, :1] * torch.exp(-p[:, 1:] * T) - y


def _data(B, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = 0.5 + torch.rand(B, 1, dtype=DT, generator=g)
    return 2.0 * torch.exp(-k * T) + 0.01 * torch.randn(B, T.numel(), dtype=DT, generator=g)


def _single(y):
    return jacobite.least_squares(lambda p, yy: p[0] * torch.exp(-p[1] * T) - yy,
                                  torch.ones(2, dtype=DT), args=(y,)).x


def _implicit_oracle(p, y):
    """dp*/dy by the implicit function theorem on Jᵀ r = 0 for r = m(p) − y:
    (JᵀJ + Σ rᵢ ∇²mᵢ) dp = Jᵀ dy, with J and ∇²m from torch.func."""
    def m(q):
        return q[0] * torch.exp(-q[1] * T)

    J = torch.func.jacrev(m)(p)
    H = torch.func.jacrev(torch.func.jacrev(m))(p)
    A = J.T @ J + torch.einsum("i,ijk->jk", m(p) - y, H)
    return torch.linalg.solve(A, J.T)


def test_reverse_derivative_matches_a_loop_of_single_solves():
    y = _data(3)
    x = jacobite.least_squares(_exp_fit, torch.ones(3, 2), batch=True, args=(y,)).x
    J = torch.func.jacrev(lambda yy: jacobite.least_squares(_exp_fit, torch.ones(3, 2),
                                                            batch=True, args=(yy,)).x)(y)
    for b in range(3):
        Jb = torch.func.jacrev(_single)(y[b])
        torch.testing.assert_close(J[b, :, b], Jb, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(J[b, :, b], _implicit_oracle(x[b].detach(), y[b]),
                                   rtol=1e-7, atol=1e-10)
        others = [c for c in range(3) if c != b]
        assert not J[b][:, others].any()  # block diagonal: no problem sees another's data
    assert x.shape == (3, 2)


def test_forward_and_second_derivatives_match_single_solves():
    y = _data(2, seed=4)

    def xs(yy):
        return jacobite.least_squares(_exp_fit, torch.ones(2, 2), batch=True, args=(yy,)).x

    torch.testing.assert_close(torch.func.jacfwd(xs)(y), torch.func.jacrev(xs)(y),
                               rtol=1e-10, atol=1e-13)
    H = torch.func.hessian(lambda yy: xs(yy)[:, 1].sum())(y)
    Hs = torch.func.hessian(lambda yy: _single(yy)[1])(y[1])
    torch.testing.assert_close(H[1, :, 1, :], Hs, rtol=1e-8, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 5), seed=st.integers(0, 2 ** 16))
def test_linear_least_squares_derivative_is_the_pseudo_inverse(B, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, 6, 3, dtype=DT, generator=g)
    y = torch.randn(B, 6, dtype=DT, generator=g, requires_grad=True)
    res = jacobite.least_squares(lambda x, yy: torch.einsum("bmn,bn->bm", A, x) - yy,
                                 torch.zeros(B, 3), batch=True, args=(y,))
    torch.testing.assert_close(res.x, torch.linalg.lstsq(A, y.detach()[..., None])
                               .solution[..., 0], rtol=1e-10, atol=1e-12)
    w = torch.randn(B, 3, dtype=DT, generator=g)
    (grad,) = torch.autograd.grad((res.x * w).sum(), y)
    torch.testing.assert_close(grad, (torch.linalg.pinv(A).mT @ w[..., None])[..., 0],
                               rtol=1e-9, atol=1e-12)


def test_derivative_refused_where_a_problem_did_not_converge():
    y = _data(2).requires_grad_(True)
    res = jacobite.least_squares(_exp_fit, torch.ones(2, 2), batch=True, args=(y,), max_nfev=2)
    assert not res.success.all()
    with pytest.raises(ConvergenceError, match="did not converge"):
        torch.autograd.grad(res.x.sum(), y)


def test_derivative_refused_where_a_parameter_is_undetermined():
    y = torch.ones(2, 4, dtype=DT, requires_grad=True)
    res = jacobite.least_squares(lambda p, yy: (p[:, :1] * p[:, 1:]).expand(-1, 4) - yy,
                                 torch.ones(2, 2), batch=True, args=(y,))
    assert res.success.all()
    with pytest.raises(SingularOperatorError, match="singular"):
        torch.autograd.grad(res.x.sum(), y)


def test_closure_over_a_tracked_tensor_is_refused():
    y = _data(2).requires_grad_(True)
    with pytest.raises(UnsupportedOperationError, match="args="):
        jacobite.least_squares(lambda p: _exp_fit(p, y), torch.ones(2, 2), batch=True)


class _Cube(torch.autograd.Function):
    """x³ with a backward that cannot be differentiated again and no forward-mode rule."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


@pytest.mark.parametrize("with_sin", [False, True])
@pytest.mark.parametrize("B", [3000, 30000])  # forward mode by a double backward / by JVPs
def test_functions_without_forward_mode_get_reverse_mode_jacobians(with_sin, B):
    x = torch.rand(B, 2, dtype=DT, generator=torch.Generator().manual_seed(5)) + 0.5

    def fun(p):
        out = _Cube.apply(p) + (torch.sin(p) if with_sin else 0.0)
        return out.repeat(1, 40)  # m = 80: forward mode

    P = BatchResiduals(fun, x)
    P.f(x)
    assert P.mode == "forward"
    d = 3 * x ** 2 + (torch.cos(x) if with_sin else 0.0)
    torch.testing.assert_close(P.J(x), torch.diag_embed(d).repeat(1, 40, 1))


def test_coupling_check_without_forward_mode():
    x = torch.rand(6, 2, dtype=DT, generator=torch.Generator().manual_seed(6)) + 0.5
    fine = BatchResiduals(lambda p: _Cube.apply(p) + torch.sin(p), x)
    fine.f(x)
    fine.check(x, fine.J(x))
    coupled = BatchResiduals(lambda p: _Cube.apply(p) - _Cube.apply(p).mean(0), x)
    coupled.f(x)
    with pytest.raises(UnsupportedOperationError, match="couples the problems"):
        coupled.check(x, coupled.J(x))
