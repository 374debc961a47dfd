"""``jacobite.jacobian(..., sparse=True)`` (a CSR operator) under autograd, torch.func, compile.

Contract: the operator's values are differentiable with respect to ``x`` by autograd
(``to_dense()`` of it has ``jacrev``'s derivative); inside torch.func transforms (``grad``,
``jacrev``, ``jacfwd``, ``vmap``) it either matches the oracle or raises a typed error that names
the alternative (autograd for derivatives; a loop or ``batch_jacobian`` for batches).
"""

from __future__ import annotations

import pytest
from torch.func import jacrev

import jacobite

from ._cases import BY_NAME, bind
from ._harness import DEVICES, DIFF_TRANSFORMS, Known, check, check_or_refuses, params

# ----------------------------------------------------------------------------- known failures
KNOWN: tuple[Known, ...] = ()

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
    if transform == "autograd":
        check(transform, *_sparse(case, mode, device), what=f"sparse {case} {mode}")
    else:
        check_or_refuses(transform, *_sparse(case, mode, device), hints=("autograd",),
                         what=f"sparse {case} {mode}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("sparse", ("vmap",), MODES, CASES[:1], KNOWN))
def test_sparse_jacobian_vmap(transform, mode, chunk, case, device):
    check_or_refuses("vmap", *_sparse(case, mode, device), hints=("loop", "batch_jacobian"),
                     what=f"sparse {case} {mode} vmap")


def test_compile():
    check("compile", *_sparse("index", "auto", "cpu"), what="sparse compiled")
