"""Derivatives of the matrix-free spectra against torch.linalg on the dense Jacobian."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import grad, jacfwd, jacrev, vmap

import jacobite
from jacobite.analysis.spectra import (
    condition_number,
    frobenius_norm,
    logabsdet,
    spectral_norm,
    top_singular,
)
from jacobite.errors import UnsupportedOperationError
from jacobite.operators import DenseOperator
from tests.nets import mlp

F64 = torch.float64
TOL = dict(rtol=1e-9, atol=1e-10)


def _mat(m: int, n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, n, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _f(x: torch.Tensor) -> torch.Tensor:
    """A nonlinear map R⁴ → R³ with a well-separated spectrum at the test point."""
    W = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.5, -2.0, 1.0, 0.0], [0.0, 0.3, 0.7, 1.5]],
                     dtype=F64)
    return torch.tanh(W @ x) + 0.1 * x[:3] ** 3


X = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(2, 7), n=st.integers(2, 7), seed=st.integers(0, 1000))
def test_top_singular_values_have_the_svd_gradient(m: int, n: int, seed: int) -> None:
    A = _mat(m, n, seed)
    k = min(2, m, n)
    w = torch.tensor([1.0, -0.7][:k], dtype=F64)
    actual = grad(lambda B: (top_singular(B, k=k).values * w).sum())(A)
    expected = grad(lambda B: (torch.linalg.svdvals(B)[:k] * w).sum())(A)
    torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-9)  # gap-dependent


def test_spectral_norm_of_a_function_in_every_mode() -> None:
    def ref(x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_norm(jacrev(_f)(x), 2)

    for transform in (grad, jacrev, jacfwd):
        torch.testing.assert_close(transform(lambda x: spectral_norm(_f, x))(X),
                                   transform(ref)(X), **TOL)
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(spectral_norm(_f, x), x)
    torch.testing.assert_close(g, grad(ref)(X), **TOL)


def test_parameters_a_module_closes_over_get_gradients() -> None:
    """Spectral-norm regularisation: d‖∂net/∂x‖₂ / dW for the module's own weights."""
    net = mlp((4, 6, 3))
    x = torch.randn(4, dtype=F64, generator=torch.Generator().manual_seed(1))
    params = dict(net.named_parameters())
    sigma = spectral_norm(net, x)
    actual = torch.autograd.grad(sigma, list(params.values()), allow_unused=True)
    assert actual[-1] is None  # J does not depend on the last bias: no gradient, reference 0

    def ref(p: dict[str, torch.Tensor]) -> torch.Tensor:
        J = jacrev(lambda v: torch.func.functional_call(net, p, (v,)))(x)
        return torch.linalg.matrix_norm(J, 2)

    expected = grad(ref)({k: v.detach() for k, v in params.items()})
    for a, e in zip(actual, expected.values(), strict=True):
        torch.testing.assert_close(torch.zeros_like(e) if a is None else a, e, **TOL)


def test_an_operator_holding_a_tracked_matrix() -> None:
    A = _mat(4, 3, 2).requires_grad_(True)
    (g,) = torch.autograd.grad(spectral_norm(DenseOperator(A)), A)
    torch.testing.assert_close(g, grad(lambda B: torch.linalg.matrix_norm(B, 2))(A.detach()),
                               **TOL)


def test_linearize_of_a_tracked_point() -> None:
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(spectral_norm(jacobite.linearize(_f, x)), x)
    torch.testing.assert_close(g, grad(lambda v: torch.linalg.matrix_norm(jacrev(_f)(v), 2))(X),
                               **TOL)


def test_float32_matrix_gets_a_float32_gradient() -> None:
    A = _mat(3, 3, 4).float().requires_grad_(True)
    s = spectral_norm(A)
    (g,) = torch.autograd.grad(s, A)
    assert s.dtype == F64 and g.dtype == torch.float32
    ref = grad(lambda B: torch.linalg.matrix_norm(B, 2))(A.detach().double())
    torch.testing.assert_close(g.double(), ref, rtol=1e-5, atol=1e-6)


def test_exact_frobenius_condition_number_and_logabsdet() -> None:
    cases = (
        (lambda x: frobenius_norm(_f, x, nproj=-1).value,
         lambda x: torch.linalg.matrix_norm(jacrev(_f)(x), "fro")),
        (lambda x: condition_number(_f, x),
         lambda x: torch.linalg.cond(jacrev(_f)(x))),
        (lambda x: logabsdet(torch.sin, x, method="exact").value,
         lambda x: torch.linalg.slogdet(jacrev(torch.sin)(x))[1]),
    )
    for fn, ref in cases:
        for transform in (grad, jacfwd):
            torch.testing.assert_close(transform(fn)(X), transform(ref)(X), **TOL)


def test_lanczos_condition_number_is_differentiable() -> None:
    A = _mat(6, 6, 3) + 4 * torch.eye(6, dtype=F64)
    actual = grad(lambda B: condition_number(B, exact=False, tol=1e-12))(A)
    torch.testing.assert_close(actual, grad(torch.linalg.cond)(A), rtol=1e-7, atol=1e-9)


def test_hutchinson_is_differentiated_as_the_estimator() -> None:
    """The same probes (seed) give the same estimator; its gradient is that of the mean."""
    A = _mat(3, 5, 5).requires_grad_(True)
    e = frobenius_norm(A, nproj=6, seed=3)
    (g,) = torch.autograd.grad(e.value, A)
    gen = torch.Generator().manual_seed(3)
    probes = torch.stack([torch.randint(0, 2, (3,), generator=gen).to(F64) * 2 - 1
                          for _ in range(6)])
    B = A.detach().requires_grad_(True)
    ref = (probes @ B).square().sum(1).mean().sqrt()  # m ≤ n: probes on the left
    (h,) = torch.autograd.grad(ref, B)
    torch.testing.assert_close(e.value.detach(), ref.detach(), **TOL)
    torch.testing.assert_close(g, h, **TOL)


def test_slq_refuses_a_tracked_input() -> None:
    A = (_mat(5, 5, 6) + 5 * torch.eye(5, dtype=F64)).requires_grad_(True)
    with pytest.raises(UnsupportedOperationError, match="method='exact'"):
        logabsdet(A, method="slq")
    est = logabsdet(A.detach(), method="slq", nprobe=4, steps=5)  # untracked: an estimate
    assert not est.exact and est.value.dtype == F64


def test_singular_vectors_are_constants() -> None:
    A = _mat(4, 3, 7).requires_grad_(True)
    r = top_singular(A, k=2)
    assert r.values.requires_grad and not r.left.requires_grad and not r.right.requires_grad


def test_untracked_input_gives_a_plain_tensor() -> None:
    s = spectral_norm(_mat(3, 2))
    assert isinstance(s, torch.Tensor) and s.ndim == 0 and not s.requires_grad
    with torch.no_grad():
        assert not spectral_norm(_mat(3, 2).requires_grad_(True)).requires_grad


@pytest.mark.parametrize("call", [
    lambda A: spectral_norm(A),
    lambda A: frobenius_norm(A, nproj=4, seed=0).value,
    lambda A: logabsdet(A).value,
    lambda A: condition_number(A),
])
def test_vmap_names_batch_jacobian(call) -> None:
    with pytest.raises(UnsupportedOperationError, match="batch_jacobian"):
        vmap(call)(torch.stack([_mat(3, 3, 8), _mat(3, 3, 9)]))
    with pytest.raises(UnsupportedOperationError, match="batch_jacobian"):
        vmap(lambda x: spectral_norm(torch.sin, x))(torch.ones(2, 3, dtype=F64))


def test_compiled_value_equals_eager() -> None:
    torch._dynamo.reset()
    fn = torch.compile(lambda x: spectral_norm(_f, x) + frobenius_norm(_f, x, nproj=-1).value,
                       backend="eager")
    expected = torch.linalg.matrix_norm(jacrev(_f)(X), 2) + \
        torch.linalg.matrix_norm(jacrev(_f)(X), "fro")
    torch.testing.assert_close(fn(X), expected, **TOL)


@pytest.mark.parametrize("second", [
    torch.func.hessian,
    lambda fn: jacrev(jacrev(fn)),
    lambda fn: jacfwd(jacfwd(fn)),  # torch alone would return zeros here
    lambda fn: jacrev(jacfwd(fn)),
])
def test_singular_values_refuse_a_partial_second_derivative(second) -> None:
    for fn in (lambda x: spectral_norm(_f, x), lambda x: top_singular(_f, x, k=2).values,
               lambda x: condition_number(_f, x, exact=False, tol=1e-12)):
        with pytest.raises(UnsupportedOperationError, match="svdvals"):
            second(fn)(X)
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(spectral_norm(_f, x), x, create_graph=True)
    with pytest.raises(UnsupportedOperationError, match="differentiable once"):
        torch.autograd.grad(g.sum(), x)


def test_exact_norms_have_exact_second_derivatives() -> None:
    for fn, ref in ((lambda x: frobenius_norm(_f, x, nproj=-1).value,
                     lambda x: torch.linalg.matrix_norm(jacrev(_f)(x), "fro")),
                    (lambda x: logabsdet(torch.sin, x, method="exact").value,
                     lambda x: torch.linalg.slogdet(jacrev(torch.sin)(x))[1])):
        torch.testing.assert_close(torch.func.hessian(fn)(X), torch.func.hessian(ref)(X), **TOL)
