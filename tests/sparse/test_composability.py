"""Sparse results under autograd and torch.func: differentiable, or a typed error — never a
silently detached result."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from torch.func import grad, jacrev, vmap

import jacobite
import jacobite.sparse as js
from jacobite.errors import JacobiteWarning, UnsupportedOperationError
from tests.problems import program_function, programs

DT = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-10}


@pytest.fixture(autouse=True, scope="module")
def _float64():
    """The fuzzed programs build their constants in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def chain(u: torch.Tensor) -> torch.Tensor:
    """A banded, nonlinear f: R^6 -> R^5."""
    return torch.sin(u[1:] * u[:-1]) + u[1:] ** 3 - torch.exp(u[:-1]) * u[1:]


def energy(u: torch.Tensor) -> torch.Tensor:
    """A scalar with a tridiagonal Hessian whose entries vary with u."""
    return (torch.cos(u[1:] - u[:-1]) * u[1:]).sum() + (u ** 4).sum()


def _point() -> torch.Tensor:
    return torch.linspace(-0.7, 0.9, 6, dtype=DT)


def _dJ_sparse(jac, x: torch.Tensor) -> torch.Tensor:
    """d vec(J(x)) / dx by torch.autograd through the sparse result's to_dense()."""
    return torch.autograd.functional.jacobian(lambda u: jac(u).to_dense(), x.clone())


@pytest.mark.parametrize("vectorize", [False, True])
@pytest.mark.parametrize("mode", ["forward", "reverse", "bidirectional"])
def test_plan_jacobian_is_differentiable(mode: str, vectorize: bool) -> None:
    x = _point()
    plan = js.prepare(chain, x, mode=mode, vectorize=vectorize)
    torch.testing.assert_close(_dJ_sparse(plan.jacobian, x), jacrev(jacrev(chain))(x), **TOL)


@pytest.mark.parametrize("vectorize", [False, True])
def test_hessian_plan_is_differentiable(vectorize: bool) -> None:
    x = _point()
    plan = js.prepare_hessian(energy, x, vectorize=vectorize)
    torch.testing.assert_close(_dJ_sparse(plan.jacobian, x),
                               jacrev(jacrev(jacrev(energy)))(x), **TOL)


def test_value_and_a_backward_pass_through_both() -> None:
    x = _point().requires_grad_(True)
    plan = js.prepare(chain, x.detach(), mode="reverse", vectorize=False)
    value, J = plan.value_and_jacobian(x)
    loss = value.square().sum() + J.to_dense().square().sum()
    (g,) = torch.autograd.grad(loss, x)

    def dense_loss(u: torch.Tensor) -> torch.Tensor:
        return chain(u).square().sum() + jacrev(chain)(u).square().sum()

    torch.testing.assert_close(g, grad(dense_loss)(x.detach()), **TOL)


def test_one_call_forms_are_differentiable() -> None:
    x = _point()
    dJ = _dJ_sparse(lambda u: jacobite.jacobian(chain, u, sparse=True), x)
    torch.testing.assert_close(dJ, jacrev(jacrev(chain))(x), **TOL)
    dH = _dJ_sparse(lambda u: jacobite.hessian(energy, u, sparse=True), x)
    torch.testing.assert_close(dH, jacrev(jacrev(jacrev(energy)))(x), **TOL)


def test_without_grad_the_result_is_constant() -> None:
    x = _point().requires_grad_(True)
    plan = js.prepare(chain, x.detach())
    with torch.no_grad():
        assert not plan.jacobian(x).to_dense().requires_grad
    assert not plan.jacobian(x.detach()).to_dense().requires_grad


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fuzz_derivative_of_the_sparse_jacobian(program) -> None:
    f = program_function(program)
    x = torch.rand(12, dtype=DT) + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JacobiteWarning)
        plan = js.prepare(f, x, vectorize=False)
    flat = lambda u: f(u).reshape(-1)  # noqa: E731
    ref = jacrev(jacrev(flat))(x)
    # torch's own modes disagree on ill-posed ops (duplicate index_put): nothing to compare
    assume(torch.allclose(ref, jacrev(torch.func.jacfwd(flat))(x), rtol=1e-12, atol=1e-12))
    torch.testing.assert_close(_dJ_sparse(plan.jacobian, x), ref, **TOL)


# ---- torch.func transforms: a typed error naming what works ---------------------------------
def _plan() -> js.SparsePlan:
    return js.prepare(chain, _point())


@pytest.mark.parametrize("transform", ["vmap", "grad", "jacrev"])
def test_plan_inside_torch_func_is_a_typed_error(transform: str) -> None:
    plan = _plan()
    batch = torch.stack([_point(), _point() + 0.1])
    call = {"vmap": lambda: vmap(lambda u: plan.jacobian(u).to_dense())(batch),
            "grad": lambda: grad(lambda u: plan.jacobian(u).to_dense().sum())(_point()),
            "jacrev": lambda: jacrev(lambda u: plan.jacobian(u).to_dense())(_point())}[transform]
    with pytest.raises(UnsupportedOperationError, match=r"torch\.func transforms") as ei:
        call()
    assert "jacobite.jacobian(f, x)" in str(ei.value) and "requires_grad_" in str(ei.value)


@pytest.mark.parametrize("entry", ["detect", "detect_hessian", "prepare", "jacobian", "hessian"])
def test_entry_points_inside_vmap_are_typed_errors(entry: str) -> None:
    batch = torch.stack([_point(), _point() + 0.1])
    run = {"detect": lambda u: js.detect(chain, u).matrix,
           "detect_hessian": lambda u: js.detect_hessian(energy, u).matrix,
           "prepare": lambda u: js.prepare(chain, u).nnz,
           "jacobian": lambda u: jacobite.jacobian(chain, u, sparse=True).to_dense(),
           "hessian": lambda u: jacobite.hessian(energy, u, sparse=True).to_dense()}[entry]
    with pytest.raises(UnsupportedOperationError, match=r"torch\.func transforms"):
        vmap(run)(batch)


def test_a_loop_is_what_vmap_would_give() -> None:
    """The workaround the error names: the loop equals the dense vmapped Jacobian."""
    plan = _plan()
    batch = torch.stack([_point(), _point() + 0.1, _point() - 0.2])
    looped = torch.stack([plan.jacobian(u).to_dense() for u in batch])
    torch.testing.assert_close(looped, vmap(jacrev(chain))(batch), **TOL)
    torch.testing.assert_close(vmap(lambda u: jacobite.jacobian(chain, u))(batch), looped, **TOL)


def test_f_capturing_a_traced_tensor_is_a_typed_error() -> None:
    plan_for = lambda w: js.prepare(lambda u: u * w, _point())  # noqa: E731

    def inner(w: torch.Tensor) -> torch.Tensor:
        return plan_for(w).jacobian(_point()).to_dense().sum()

    with pytest.raises(UnsupportedOperationError, match=r"torch\.func transforms"):
        grad(inner)(torch.tensor(2.0, dtype=DT))
