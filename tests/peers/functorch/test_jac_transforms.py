"""jacobite's Jacobians inside and around other transforms: Jacobian of a Jacobian, under
``vmap``, under ``torch.func.grad`` and ordinary autograd, of a ``vmap``-ed function, and the
per-sample Jacobians of ``batch_jacobian`` trained through with autograd.

Oracle: the same composition written with torch.func alone (float64).
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import grad, jacfwd, jacrev, vmap

import jacobite

from ._common import CHUNKS, MODES, D, close, configs, diag, jac, randn

# None of these functions turns a tensor into a Python number: a JacobiteWarning is a false alarm.
pytestmark = pytest.mark.filterwarnings("error::jacobite.errors.JacobiteWarning")


def _inner_outer() -> list[object]:
    """Every (outer mode, inner mode) pair of a nested call."""
    return [pytest.param(o, i, id=f"outer_{o}-inner_{i}")
            for o, i in itertools.product(MODES, MODES)]


@pytest.mark.parametrize(("outer", "inner"), _inner_outer())
def test_jacobian_of_jacobian(outer, inner):
    x = randn(3)
    H = jac(lambda v: jac(lambda u: u.sin().sum(), v, mode=inner), x, mode=outer)
    close(H, diag(-x.sin()))


@pytest.mark.parametrize(("outer", "inner"), _inner_outer())
def test_jacobian_of_jacobian_of_linear_map_is_zero(outer, inner):
    W = randn(5, 3)
    x = randn(3, seed=1)
    T = jac(lambda v: jac(lambda u: W @ u, v, mode=inner), x, mode=outer)
    close(T, torch.zeros(5, 3, 3, dtype=D))


@pytest.mark.parametrize(("outer", "inner"), _inner_outer())
def test_jacobian_of_pytree_jacobian(outer, inner):
    def f(x, y):
        return (x.sin() * y, x + y), {"s": (x * y).sum()}

    x, y = randn(3), randn(3, seed=1)
    inner_jac = lambda a, b: jac(f, a, b, argnums=(0, 1), mode=inner)  # noqa: E731
    got = jac(inner_jac, x, y, argnums=(0, 1), mode=outer)
    close(got, jacrev(jacrev(f, argnums=(0, 1)), argnums=(0, 1))(x, y))


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_vmap_of_jacobian(mode, chunk):
    x = randn(2, 3)
    J = vmap(lambda v: jac(torch.sin, v, mode=mode, chunk=chunk))(x)
    close(J, torch.stack([diag(x[i].cos()) for i in range(2)]))


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_vmap_of_jacobian_with_shared_argument(mode, chunk):
    W = randn(4, 3)
    xs = randn(5, 3, seed=1)
    f = lambda w, v: torch.tanh(w @ v)  # noqa: E731
    J = vmap(lambda v: jac(f, W, v, argnums=(0, 1), mode=mode, chunk=chunk))(xs)
    close(J, vmap(jacrev(f, argnums=(0, 1)), in_dims=(None, 0))(W, xs))


@pytest.mark.parametrize("chunk", CHUNKS, ids=str)
@pytest.mark.parametrize(("outer", "inner"), _inner_outer())
def test_vmap_of_chunked_nested_jacobian(outer, inner, chunk):
    def f(x):
        return (x.sin(), x), (x + 2, x.sum())

    xs = randn(10, 2)
    got = vmap(lambda v: jac(lambda u: jac(f, u, mode=inner, chunk=chunk), v,
                             mode=outer, chunk=chunk))(xs)
    close(got, vmap(jacrev(jacrev(f)))(xs))


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_jacobian_of_vmapped_function(mode, chunk):
    xs = randn(2, 3)
    close(jac(vmap(torch.sin), xs, mode=mode, chunk=chunk), jacrev(vmap(torch.sin))(xs))


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_func_grad_through_jacobian(mode, chunk):
    x = randn(3)
    g = grad(lambda v: jac(torch.sin, v, mode=mode, chunk=chunk).sum())(x)
    close(g, -x.sin())


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_autograd_through_jacobian(mode, chunk):
    x = randn(3).requires_grad_()
    J = jac(torch.sin, x, mode=mode, chunk=chunk)
    (g,) = torch.autograd.grad(J.sum(), x)
    close(g, -x.detach().sin())


@pytest.mark.parametrize(("mode", "chunk"), configs())
def test_autograd_through_pytree_jacobian(mode, chunk):
    a, b = randn(3).requires_grad_(), randn(2, seed=1).requires_grad_()
    f = lambda p, q: {"u": p.sin() * q.sum(), "v": (p ** 2).sum() * q}  # noqa: E731
    J = jac(f, a, b, argnums=(0, 1), mode=mode, chunk=chunk)
    got = torch.autograd.grad(sum(t.pow(2).sum() for t in jacobite_leaves(J)), (a, b))
    ref = jacrev(f, argnums=(0, 1))(a, b)
    expected = torch.autograd.grad(sum(t.pow(2).sum() for t in jacobite_leaves(ref)), (a, b))
    close(got, expected)


def jacobite_leaves(tree: object) -> list[torch.Tensor]:
    return torch.utils._pytree.tree_flatten(tree)[0]


@pytest.mark.parametrize("mode", MODES)
def test_third_derivative_through_hessian(mode):
    f = lambda v: (v ** 4).sum() + v.prod()  # noqa: E731
    x = randn(3)
    T = jac(lambda v: jacobite.hessian(f, v), x, mode=mode)
    close(T, jacrev(jacrev(jacrev(f)))(x))


@pytest.mark.parametrize("chunk", CHUNKS, ids=str)
def test_vmap_of_hessian_matches_nested_jacrev(chunk):
    """A batch of least-squares Hessians; the inputs are batched at different depths."""
    A = 0.1 * randn(3, 2, 2)
    x1 = randn(3, 10, 2, seed=1)
    x2 = x1

    def loss(a, p, q):
        return ((q - (a @ p.T).T) ** 2).sum()

    got = vmap(lambda a, p, q: jacobite.hessian(loss, a, p, q, chunk_size=chunk))(A, x1, x2)
    close(got, vmap(jacrev(jacrev(loss)))(A, x1, x2))


@pytest.mark.parametrize("mode", MODES)
def test_per_sample_jacobians_match_vmap(mode):
    x = randn(4, 3)
    close(jacobite.batch_jacobian(torch.sin, x, mode=mode),
          torch.stack([diag(x[i].cos()) for i in range(4)]))


@pytest.mark.parametrize("api", [jacrev, jacfwd], ids=["jacrev", "jacfwd"])
@pytest.mark.parametrize("mode", MODES)
def test_training_through_per_sample_jacobians(mode, api):
    """A small force-field fit: the loss depends on dE/dr of a network, and its gradient with
    respect to the weights flows back through the per-sample Jacobians."""
    torch.manual_seed(0)  # nn.Linear initialisation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(),
                                    torch.nn.Linear(8, 8), torch.nn.Tanh(),
                                    torch.nn.Linear(8, 1)).double()
    r = torch.linspace(0.5, 1.0, 12, dtype=D).reshape(-1, 1)
    target = 1 / r ** 7

    def loss(forces):
        return ((forces.reshape(-1, 1) - target) ** 2).mean() + model(r).pow(2).mean()

    params = list(model.parameters())
    got = torch.autograd.grad(loss(jacobite.batch_jacobian(model, r, mode=mode)), params)
    expected = torch.autograd.grad(loss(vmap(api(model))(r)), params)
    close(got, expected)
