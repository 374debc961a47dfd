"""Hessians and Hessian-vector products: the cases functorch checks on ``hessian``, over
jacobite's chunk sizes.

Oracle: ``torch.autograd.functional.hessian`` and ``torch.func`` (float64).
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import hessian as autograd_hessian
from torch.func import grad, hessian, jacrev, jvp

import jacobite
from jacobite.errors import ArgnumsError, ShapeError

from ._common import CHUNKS, D, close, randn

chunks = pytest.mark.parametrize("chunk", CHUNKS, ids=str)

# functorch's comparisons with torch.autograd.functional.hessian: f takes its arguments as one
# tuple, so the result is a tuple (per input) of tuples (per input).
REFERENCE = {
    "power": (lambda x: (3 * x ** 2).sum(), [(2, 3, 5)]),
    "three_inputs": (lambda x, y, z: ((x.relu() * x) @ y.sin() @ z).sum(),
                     [(2, 3), (3, 5), (5, 5)]),
    "one_unrelated_input": (lambda x, y: (x ** 2).sum(), [(2,), (3,)]),
    "constant": (lambda x, y: torch.ones([], dtype=D), [(2,), (3,)]),
}


@chunks
@pytest.mark.parametrize("case", sorted(REFERENCE))
def test_against_autograd_functional(case, chunk):
    f, shapes = REFERENCE[case]
    inputs = tuple(randn(*s, seed=i) for i, s in enumerate(shapes))
    H = jacobite.hessian(lambda args: f(*args), inputs, chunk_size=chunk)
    close(H, autograd_hessian(f, inputs))


@chunks
def test_quadratic_form(chunk):
    A = randn(4, 4)
    x = randn(4, seed=1)
    H = jacobite.hessian(lambda v: v @ A @ v, x, chunk_size=chunk)
    close(H, A + A.T)


@chunks
def test_matrix_input_keeps_shapes(chunk):
    x = randn(2, 3)
    f = lambda v: (v.sin() * v.sum()).sum()  # noqa: E731
    H = jacobite.hessian(f, x, chunk_size=chunk)
    assert H.shape == (2, 3, 2, 3)
    close(H, hessian(f)(x))
    close(jacobite.hessian(f, x, chunk_size=chunk, flat=True), hessian(f)(x).reshape(6, 6))


@chunks
def test_argnums(chunk):
    f = lambda a, b: ((a * b).sum()) ** 2 + (a ** 3).sum()  # noqa: E731
    a, b = randn(3), randn(3, seed=1)
    close(jacobite.hessian(f, a, b, argnums=1, chunk_size=chunk), hessian(f, argnums=1)(a, b))
    close(jacobite.hessian(f, a, b, argnums=(0, 1), chunk_size=chunk),
          hessian(f, argnums=(0, 1))(a, b))


@chunks
def test_scalar_input(chunk):
    x = randn()
    close(jacobite.hessian(lambda v: v.sin(), x, chunk_size=chunk), -x.sin())


@chunks
def test_non_tensor_argument(chunk):
    x = randn(3)
    f = lambda v, k: (v ** k).sum()  # noqa: E731
    close(jacobite.hessian(f, x, 3, chunk_size=chunk), torch.diagflat(6 * x))


def test_vector_valued_function_is_refused():
    """torch.func.hessian returns the (m, n, n) stack for a vector f; jacobite's hessian is
    for scalar functions and names the nested Jacobian to use instead."""
    x = randn(3)
    with pytest.raises(ShapeError, match="scalar"):
        jacobite.hessian(lambda v: v.sin(), x)
    stacked = jacobite.jacobian(lambda v: jacobite.jacobian(torch.sin, v), x)
    close(stacked, hessian(torch.sin)(x))


@pytest.mark.parametrize("argnums", [2, -3, (0, 0)], ids=str)
def test_bad_argnums(argnums):
    with pytest.raises(ArgnumsError):
        jacobite.hessian(lambda a, b: (a * b).sum(), randn(2), randn(2, seed=1), argnums=argnums)


# ---------------------------------------------------------------------------------------------
# hvp


def test_hvp_matches_hessian_times_vector():
    f = lambda v: (v ** 3).sum() + v.prod()  # noqa: E731
    x, v = randn(4), randn(4, seed=1)
    close(jacobite.hvp(f, (x,), (v,)), hessian(f)(x) @ v)
    close(jacobite.hvp(f, (x,), (v,)), jvp(grad(f), (x,), (v,))[1])


def test_hvp_with_argnums():
    f = lambda a, b: (a.sin() * b).sum() * b.sum()  # noqa: E731
    a, b = randn(3), randn(3, seed=1)
    va, vb = randn(3, seed=2), randn(3, seed=3)
    close(jacobite.hvp(f, (a, b), (vb,), argnums=1),
          jvp(lambda y: grad(f, argnums=1)(a, y), (b,), (vb,))[1])
    expected = jvp(lambda x, y: grad(f, argnums=(0, 1))(x, y), (a, b), (va, vb))[1]
    close(jacobite.hvp(f, (a, b), (va, vb), argnums=(0, 1)), expected)


def test_hvp_of_vector_function_is_refused():
    with pytest.raises(ShapeError, match="scalar"):
        jacobite.hvp(torch.sin, (randn(3),), (randn(3, seed=1),))


def test_hvp_tangent_of_wrong_shape():
    with pytest.raises(ShapeError, match="tangent 0 has shape"):
        jacobite.hvp(lambda v: (v ** 2).sum(), (randn(3),), (randn(4, seed=1),))


def test_hessian_of_jacobian_composition_matches_jacrev():
    """The Hessian of ``sum(J)`` where ``J`` is itself a jacobite Jacobian."""
    f = lambda v: torch.stack([v.prod(), (v ** 2).sum()])  # noqa: E731
    x = randn(3)
    H = jacobite.hessian(lambda v: jacobite.jacobian(f, v, mode="reverse").sum(), x)
    close(H, jacrev(jacrev(lambda v: jacrev(f)(v).sum()))(x))
