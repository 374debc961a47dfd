"""``jacobite.jacobian(..., sparse=True)`` (a CSR operator) under autograd, torch.func, compile.

Contract: the operator's values are differentiable with respect to ``x`` (``to_dense()`` of it
equals ``jacrev``'s matrix, under autograd and torch.func.grad/jacrev/jacfwd); ``vmap`` either
matches a loop or raises a typed error naming the batched alternative (``batch_jacobian``).
"""

from __future__ import annotations

import pytest
from torch.func import jacrev

import jacobite
from jacobite.errors import JacobiteError

from ._cases import BY_NAME, bind
from ._harness import DEVICES, DIFF_TRANSFORMS, Known, check, params

# ----------------------------------------------------------------------------- known failures
_CUT = ("the CSR values are assembled from detached products: autograd finds no grad_fn, "
        "and inside torch.func transforms detection calls requires_grad_() (a RuntimeError); "
        "the compressed JVPs/VJPs should run on the caller's x so the values stay in its graph")
_VMAP = ("under vmap detection hits data-dependent control flow (an untyped RuntimeError); "
         "raise a typed error naming jacobite.batch_jacobian instead")
KNOWN = (
    Known(_CUT, transform=DIFF_TRANSFORMS),
    Known(_VMAP, transform="vmap"),
)

CASES = ("index", "cumsum_2d", "flip_roll", "where")
MODES = (("forward", None), ("reverse", None), ("auto", None))


def _sparse(case_name: str, mode: str, device: str):
    case = BY_NAME[case_name]
    f, args_at, x = bind(case, device)

    def fn(t):
        return jacobite.jacobian(f, *args_at(t), argnums=case.argnums, mode=mode,
                                 sparse=True).to_dense()

    def ref(t):
        out = f(*args_at(t))
        return jacrev(f, argnums=case.argnums)(*args_at(t)).reshape(out.numel(), t.numel())

    return fn, ref, x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("sparse", DIFF_TRANSFORMS, MODES[2:], CASES, KNOWN)
                         + params("sparse", DIFF_TRANSFORMS, MODES[:2], CASES[:1], KNOWN))
def test_sparse_jacobian_differentiable(transform, mode, chunk, case, device):
    check(transform, *_sparse(case, mode, device), what=f"sparse {case} {mode}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("sparse", ("vmap",), MODES, CASES[:1], KNOWN))
def test_sparse_jacobian_vmap(transform, mode, chunk, case, device):
    fn, ref, x = _sparse(case, mode, device)
    try:
        check("vmap", fn, ref, x, what=f"sparse {case} {mode} vmap")
    except JacobiteError as exc:
        assert "batch_jacobian" in str(exc), exc


def test_compile():
    check("compile", *_sparse("index", "auto", "cpu"), what="sparse compiled")
