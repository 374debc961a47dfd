"""Matrix-free spectra of :mod:`jacobite.analysis` under autograd, torch.func and compile.

Contract (decided here, per function; ``J`` is the matrix or the Jacobian of ``f`` at ``x``):

* ``spectral_norm`` / ``top_singular(...).values`` — differentiable: a 0-d / ``(k,)`` tensor
  ``σ_i = u_iᵀ (J v_i)`` recomputed from the converged (detached) singular vectors, so autograd
  and torch.func give the exact derivative ``u_iᵀ dJ v_i`` (simple singular values);
* ``frobenius_norm(..., nproj=-1).value`` — differentiable: ``sqrt(Σ‖J e_i‖²)`` from
  products kept in the graph;
* ``logabsdet(..., method="exact").value`` — differentiable: ``slogdet`` of the matrix formed
  from products kept in the graph;
* ``vmap`` — equal to a loop, or a typed :class:`~jacobite.errors.JacobiteError` that names the
  batched alternative (``batch_jacobian`` then ``torch.linalg``).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev

import jacobite.analysis as ja
from jacobite.errors import JacobiteError

from ._cases import BY_NAME, bind
from ._harness import DEVICES, DIFF_TRANSFORMS, Known, check, params, to

KNOWN: tuple[Known, ...] = ()  # every function composes

FUNCS = ("spectral_norm", "top_singular", "frobenius_norm", "logabsdet")
INPUTS = ("matrix", "function")


def _quantity(name: str, J: torch.Tensor) -> torch.Tensor:
    """The oracle: the same quantity of the dense matrix, by torch.linalg."""
    if name == "spectral_norm":
        return torch.linalg.matrix_norm(J, 2)
    if name == "top_singular":
        return torch.linalg.svdvals(J)[:2]
    if name == "frobenius_norm":
        return torch.linalg.matrix_norm(J, "fro")
    return torch.linalg.slogdet(J)[1]


def _call(name: str, *a):
    if name == "spectral_norm":
        return ja.spectral_norm(*a)
    if name == "top_singular":
        return ja.top_singular(*a, k=2).values
    if name == "frobenius_norm":
        return ja.frobenius_norm(*a, nproj=-1).value
    return ja.logabsdet(*a, method="exact").value


def _tensor(r, strict: bool) -> torch.Tensor:
    if isinstance(r, torch.Tensor):
        return r
    if strict:
        raise TypeError(f"returned a {type(r).__name__}, which no transform can differentiate")
    return torch.tensor(r, dtype=torch.float64)


def _build(name: str, inp: str, device: str, strict: bool = True):
    square = name == "logabsdet"
    if inp == "matrix":
        g = torch.Generator().manual_seed(11)
        A = to(torch.randn(3, 3 if square else 2, generator=g, dtype=torch.float64), device)
        return (lambda t: _tensor(_call(name, t), strict)), (lambda t: _quantity(name, t)), A
    f, args_at, x = bind(BY_NAME["ref_xyz" if square else "matmul_chain"], device)

    def h(t):
        return f(*args_at(t))

    return (lambda t: _tensor(_call(name, h, t), strict)), \
        (lambda t: _quantity(name, jacrev(h)(t))), x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inp", INPUTS)
@pytest.mark.parametrize(("transform", "mode", "chunk", "name"),
                         params("analysis", DIFF_TRANSFORMS, ((None, None),), FUNCS, KNOWN))
def test_differentiable(transform, mode, chunk, name, inp, device):
    check(transform, *_build(name, inp, device), what=f"{name}({inp})")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inp", INPUTS)
@pytest.mark.parametrize(("transform", "mode", "chunk", "name"),
                         params("analysis", ("vmap",), ((None, None),), FUNCS, KNOWN))
def test_vmap(transform, mode, chunk, name, inp, device):
    fn, ref, x = _build(name, inp, device)
    try:
        check("vmap", fn, ref, x, what=f"{name}({inp}) vmap")
    except JacobiteError as exc:
        assert "batch_jacobian" in str(exc), exc


@pytest.mark.parametrize("name", FUNCS)
def test_compile(name):
    check("compile", *_build(name, "function", "cpu", strict=False), what=f"{name} compiled",
          tol=1e-8)
