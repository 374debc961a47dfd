"""The dense engine composes: results stay differentiable, run under vmap, and every mode gives
the same Jacobian — including for functions with no_grad regions, which forward-mode AD alone
would differentiate through."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jacfwd, jacrev, vmap

import jacobite
from jacobite.dense._engine import probe_of
from jacobite.errors import JacobianTooLarge, UnsupportedOperationError

from ..battery import CASES
from ._functions import Square

DT = torch.float64
MODES = ("forward", "reverse", "auto")
CHUNKS = (None, "auto", 1, 2)


def _x() -> torch.Tensor:
    return torch.tensor([0.7, -1.3, 2.1], dtype=DT)


def _coupled(v: torch.Tensor) -> torch.Tensor:
    return torch.sin(v) * v.sum()


def _with_no_grad(v: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        c = v.sum()
    return v * c


def _scalar_with_no_grad(v: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        c = v.sum()
    return (v ** 3).sum() * c


# ----------------------------------------------------------------- differentiable results


def test_grad_through_a_forward_mode_jacobian_is_not_zero() -> None:
    x = _x()
    g = grad(lambda v: jacobite.jacobian(lambda u: u ** 3, v, mode="forward").sum())(x)
    torch.testing.assert_close(g, 6 * x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("outer", ["jacrev", "jacfwd", "autograd"])
def test_second_derivative_through_every_mode(mode: str, chunk, outer: str) -> None:
    x = _x()
    ref = jacrev(jacrev(_coupled))(x)

    def inner(v: torch.Tensor) -> torch.Tensor:
        return jacobite.jacobian(_coupled, v, mode=mode, chunk_size=chunk)

    if outer == "autograd":
        xr = x.clone().requires_grad_()
        J = inner(xr)
        got = torch.stack([torch.autograd.grad(J.reshape(-1)[k], xr, retain_graph=True)[0]
                           for k in range(J.numel())]).reshape(3, 3, 3)
    else:
        got = (jacrev if outer == "jacrev" else jacfwd)(inner)(x)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_pytree_jacobian_is_differentiable(mode: str) -> None:
    a, b = _x(), torch.tensor([0.2, 0.4], dtype=DT)

    def f(p, q):
        return {"s": torch.sin(p) * q.sum(), "t": (p[:2] * q).cumsum(0)}

    def total(p):
        J = jacobite.jacobian(f, p, b, argnums=(0, 1), mode=mode, chunk_size=2)
        return sum(t.sum() for leaf in J.values() for t in leaf)

    def total_ref(p):
        J = jacrev(f, argnums=(0, 1))(p, b)
        return sum(t.sum() for leaf in J.values() for t in leaf)

    torch.testing.assert_close(grad(total)(a), grad(total_ref)(a), rtol=1e-10, atol=1e-10)


def test_module_jacobian_is_differentiable_in_the_parameters() -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    x = _x()
    J = jacobite.module_jacobian(torch.nn.Sequential(lin, torch.nn.Tanh()), x)
    (gw,) = torch.autograd.grad(J["0.weight"].sum(), lin.weight)

    def ref(w):
        return jacrev(lambda W: torch.tanh(x @ W.T + lin.bias))(w).sum()

    torch.testing.assert_close(gw, grad(ref)(lin.weight.detach()), rtol=1e-10, atol=1e-10)


def test_hessian_and_hvp_are_differentiable() -> None:
    x = _x()
    f = lambda v: (torch.sin(v) * v.sum()).sum()  # noqa: E731
    ref = jacrev(lambda v: torch.func.hessian(f)(v).sum())(x)
    torch.testing.assert_close(grad(lambda v: jacobite.hessian(f, v).sum())(x), ref)
    ones = torch.ones(3, dtype=DT)
    got = grad(lambda v: jacobite.hvp(f, (v,), (ones,)).sum())(x)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------- vmap


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("check_finite", [True, False])
def test_jacobian_under_vmap_equals_a_loop(mode: str, chunk, check_finite: bool) -> None:
    X = torch.randn(4, 3, dtype=DT, generator=torch.Generator().manual_seed(1))

    def one(v):
        return jacobite.jacobian(_coupled, v, mode=mode, chunk_size=chunk,
                                 check_finite=check_finite)

    torch.testing.assert_close(vmap(one)(X), torch.stack([one(v) for v in X]),
                               rtol=1e-12, atol=1e-12)


def test_vmap_of_hessian_and_jvp() -> None:
    X = torch.randn(3, 3, dtype=DT, generator=torch.Generator().manual_seed(2))
    f = lambda v: (v ** 4).sum()  # noqa: E731
    torch.testing.assert_close(vmap(lambda v: jacobite.hessian(f, v))(X),
                               torch.stack([torch.diag(12 * v ** 2) for v in X]))
    ones = torch.ones(3, dtype=DT)
    torch.testing.assert_close(vmap(lambda v: jacobite.jvp(torch.sin, (v,), (ones,))[1])(X),
                               torch.cos(X))


# ------------------------------------------------------------------- chunk_size=1 is a loop


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize(("chunk", "calls"), [(1, 3), (None, 1), (2, 2)])
def test_chunk_size_one_is_a_plain_loop(mode: str, chunk, calls: int) -> None:
    """chunk_size=1 evaluates one basis vector per call (no vmap), as in torch.func."""
    x = _x()
    Square.calls = 0
    J = jacobite.jacobian(Square.apply, x, mode=mode, chunk_size=chunk)
    torch.testing.assert_close(J, torch.diag(2 * x))
    assert Square.calls == calls


# --------------------------------------------------------------- no_grad regions, every mode


@pytest.mark.parametrize("mode", ["reverse", "auto"])
def test_no_grad_regions_follow_reverse_mode_semantics(mode: str) -> None:
    x = _x()
    ref = torch.autograd.functional.jacobian(_with_no_grad, x)
    torch.testing.assert_close(jacobite.jacobian(_with_no_grad, x, mode=mode), ref)
    # auto picks reverse even where it would pick forward on shape alone
    wide = lambda v: _with_no_grad(v).repeat(100)  # noqa: E731
    assert jacobite.jacobian_plan(wide, x).mode == "reverse"
    torch.testing.assert_close(jacobite.jacobian(wide, x),
                               torch.autograd.functional.jacobian(wide, x))


def test_forward_mode_refuses_no_grad_regions() -> None:
    with pytest.raises(UnsupportedOperationError, match=r"no_grad.*mode='reverse'"):
        jacobite.jacobian(_with_no_grad, _x(), mode="forward")


def test_detach_is_honoured_by_every_mode() -> None:
    f = lambda v: v * v.detach().sum()  # noqa: E731
    x = _x()
    ref = torch.autograd.functional.jacobian(f, x)
    for mode in MODES:
        torch.testing.assert_close(jacobite.jacobian(f, x, mode=mode), ref)


def test_products_and_operators_agree_on_no_grad_regions() -> None:
    x, v = _x(), torch.tensor([0.3, -1.0, 2.0], dtype=DT)
    u = torch.tensor([1.0, 0.5, -2.0], dtype=DT)
    J = torch.autograd.functional.jacobian(_with_no_grad, x)
    torch.testing.assert_close(jacobite.jvp(_with_no_grad, (x,), (v,))[1], J @ v)
    op = jacobite.linearize(_with_no_grad, x)
    torch.testing.assert_close(op.mv(v), J @ v)
    torch.testing.assert_close(op.rmv(u), J.T @ u)
    assert torch.dot(u, op.mv(v)).item() == pytest.approx(torch.dot(op.rmv(u), v).item())
    H = torch.autograd.functional.hessian(_scalar_with_no_grad, x)
    torch.testing.assert_close(jacobite.hessian(_scalar_with_no_grad, x), H)
    torch.testing.assert_close(jacobite.hvp(_scalar_with_no_grad, (x,), (v,)), H @ v)


def test_custom_functions_are_not_no_grad_regions() -> None:
    assert not probe_of(Square.apply, (_x(),)).stops_gradient


@pytest.mark.parametrize("case", [c for c in CASES if "batched" not in c.kinds], ids=repr)
def test_no_battery_function_is_taken_for_a_no_grad_region(case) -> None:
    """The detection has no false positives on ordinary functions (else auto would change)."""
    assert not probe_of(case.fn, case.args(), case.argnums).stops_gradient


# ----------------------------------------------------------------------- the memory guard


@pytest.mark.parametrize("mode", MODES)
def test_memory_guard_holds_after_a_cached_plan(mode: str) -> None:
    reps = [1]
    f = lambda v: v.repeat(reps[0])  # noqa: E731  (output size changes between calls)
    x = torch.ones(100, dtype=DT)
    jacobite.jacobian(f, x, mode=mode, memory_budget="1 MiB")  # plan cached: 100 x 100
    reps[0] = 1000
    with pytest.raises(JacobianTooLarge):
        jacobite.jacobian(f, x, mode=mode, memory_budget="1 MiB")
