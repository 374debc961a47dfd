"""Solutions of equations under autograd, torch.func and compile.

Problems with a closed-form solution, so every derivative has a torch.func oracle:

* ``F(x, θ) = x² − θ`` (``θ > 0``, started at ``x0 = 1``): ``x*(θ) = √θ``;
* ``r(x, θ) = A x − θ`` (least squares, ``A`` 3 × 2 of full rank): ``x*(θ) = A⁺ θ``.

Contract (decided here, per function):

* ``solve_implicit(F, x0, θ)`` — differentiable in θ by autograd and by torch.func
  ``grad``/``jacrev``/``jacfwd`` (implicit function theorem); a second derivative is exact or
  raises a typed error; ``vmap`` over θ equals a loop or raises a typed error naming the loop;
* ``implicit_jacobian(F, x*, θ)`` — the total derivative: ``x*`` stays in the caller's graph, so
  differentiating the result (autograd or torch.func) gives ``d²x*/dθ²``; ``vmap`` equals a loop;
* ``root(F, x0, args=(θ,)).x`` and ``least_squares(r, x0, args=(θ,)).x`` — differentiable in
  the tensors of ``args`` through the implicit function theorem (as ``solve_implicit``), never a
  silent zero; ``vmap`` equals a loop or raises a typed error naming the loop.
"""

from __future__ import annotations

import pytest
import torch

import jacobite
from jacobite.errors import JacobiteError

from ._harness import DEVICES, DIFF_TRANSFORMS, Known, check, params, to

KNOWN: tuple[Known, ...] = ()  # every path composes

PATHS = ("solve_implicit", "implicit_jacobian", "root", "least_squares")
TRANSFORMS = (*DIFF_TRANSFORMS, "vmap")
DT = torch.float64


def _sq(x, th):
    return x ** 2 - th


def _build(path: str, device: str):
    theta = to(torch.tensor([1.7, 3.2], dtype=DT), device)
    x0 = to(torch.ones(2, dtype=DT), device)
    if path == "solve_implicit":
        return (lambda t: jacobite.solve_implicit(_sq, x0, t)), torch.sqrt, theta
    if path == "implicit_jacobian":
        return (lambda t: jacobite.implicit_jacobian(_sq, torch.sqrt(t), t),
                lambda t: torch.func.jacrev(torch.sqrt)(t), theta)
    if path == "root":
        return (lambda t: jacobite.root(_sq, x0, args=(t,)).x), torch.sqrt, theta
    A = to(torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, 0.1]], dtype=DT), device)
    th3 = to(torch.tensor([0.4, -1.2, 2.5], dtype=DT), device)
    return (lambda t: jacobite.least_squares(lambda x, b: A @ x - b, torch.zeros(2, dtype=DT,
                                             device=device), args=(t,)).x,
            lambda t: torch.linalg.pinv(A) @ t, th3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "path"),
                         [q for p in PATHS for q in params(p, TRANSFORMS, ((None, None),), (p,),
                                                           KNOWN)])
def test_solution(transform, mode, chunk, path, device):
    fn, ref, x = _build(path, device)
    if transform != "vmap" or path == "implicit_jacobian":
        check(transform, fn, ref, x, what=path, tol=1e-9)
        return
    if path == "solve_implicit":  # solves once per batch element: must equal the loop
        check("vmap", fn, ref, x, what=f"{path} vmap", tol=1e-9)
        return
    with pytest.raises(JacobiteError, match="loop"):  # root, least_squares: refused, typed
        check("vmap", fn, ref, x, what=f"{path} vmap", tol=1e-9)


def test_solve_implicit_second_derivative():
    theta = torch.tensor([1.7, 3.2], dtype=DT, requires_grad=True)
    x = jacobite.solve_implicit(_sq, torch.ones(2, dtype=DT), theta)
    (g,) = torch.autograd.grad(x.sum(), theta, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), theta)  # exact: d²√θ/dθ²
    torch.testing.assert_close(h, -0.25 * theta.detach() ** -1.5, rtol=1e-9, atol=1e-9)


def test_compile():
    check("compile", *_build("solve_implicit", "cpu"), what="solve_implicit compiled",
          tol=1e-9)
