"""``jvp``, ``vjp``, ``hvp``, ``hessian`` and ``linearize`` products under every transform."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jacrev
from torch.func import jvp as jvp_ref
from torch.func import vjp as vjp_ref
from torch.utils._pytree import tree_flatten

import jacobite

from ._cases import BY_NAME, bind, loop_only
from ._harness import CHUNKS, DEVICES, TRANSFORMS, Known, check, params, weights_like

# ----------------------------------------------------------------------------- known failures
KNOWN: tuple[Known, ...] = ()
COMPILE_KNOWN: dict[str, str] = {}

NO_MODE = ((None, None),)
VEC_CASES = ("matmul_chain", "tuple_out", "dict_in")
SCALAR_CASES = ("rosenbrock", "prod")


def _bound(case_name: str, device: str):
    f, args_at, x = bind(BY_NAME[case_name], device)
    return (lambda t: f(*args_at(t))), x


def _flat(tree) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tree_flatten(tree)[0]])


def _build(path: str, case: str, chunk, device: str):
    g, x = _bound(case, device)
    v = weights_like(x, seed=3)
    if path == "jvp":
        return (lambda t: jacobite.jvp(g, (t,), (v,)),
                lambda t: jvp_ref(g, (t,), (v,)), x)
    if path == "vjp":
        u = weights_like(g(x), seed=5)
        return (lambda t: (lambda r: (r[0], r[1](u)))(jacobite.vjp(g, t)),
                lambda t: (lambda r: (r[0], r[1](u)))(vjp_ref(g, t)), x)
    if path == "hvp":
        return (lambda t: jacobite.hvp(g, (t,), (v,)),
                lambda t: jvp_ref(grad(g), (t,), (v,))[1], x)
    if path == "hessian":
        return (lambda t: jacobite.hessian(g, t, chunk_size=chunk),
                lambda t: jacrev(grad(g))(t), x)
    if path == "linearize":
        vf, uf = _flat(v), _flat(weights_like(g(x), seed=5))

        def fn(t):
            op = jacobite.linearize(g, t)
            return op.mv(vf), op.rmv(uf)

        def ref(t):
            _, jv = jvp_ref(g, (t,), (v,))
            out, pull = vjp_ref(g, t)
            u = torch.split(uf, [o.numel() for o in tree_flatten(out)[0]])
            spec = tree_flatten(out)[1]
            from torch.utils._pytree import tree_unflatten
            cot = tree_unflatten([p.reshape(o.shape) for p, o in
                                  zip(u, tree_flatten(out)[0], strict=True)], spec)
            return _flat(jv), _flat(pull(cot))

        return fn, ref, x
    raise AssertionError(path)


CASES = {"jvp": VEC_CASES, "vjp": VEC_CASES, "hvp": SCALAR_CASES, "hessian": SCALAR_CASES,
         "linearize": VEC_CASES}


def _params(path: str, configs) -> list:
    return params(path, TRANSFORMS[:5], configs, CASES[path], KNOWN)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"), _params("jvp", NO_MODE))
def test_jvp(transform, mode, chunk, case, device):
    check(transform, *_build("jvp", case, chunk, device), what=f"jvp {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"), _params("vjp", NO_MODE))
def test_vjp(transform, mode, chunk, case, device):
    check(transform, *_build("vjp", case, chunk, device), what=f"vjp {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"), _params("hvp", NO_MODE))
def test_hvp(transform, mode, chunk, case, device):
    check(transform, *_build("hvp", case, chunk, device), what=f"hvp {case}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         _params("hessian", [(None, c) for c in CHUNKS]))
def test_hessian(transform, mode, chunk, case, device):
    check(transform, *_build("hessian", case, chunk, device), what=f"hessian {case} {chunk}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         _params("linearize", NO_MODE))
def test_linearize(transform, mode, chunk, case, device):
    check(transform, *_build("linearize", case, chunk, device), what=f"linearize {case}")


@pytest.mark.parametrize(("path", "case"), [
    pytest.param(p, c, marks=[pytest.mark.xfail(strict=True, reason=COMPILE_KNOWN[p])]
                 if p in COMPILE_KNOWN else [])
    for p, c in [("jvp", "matmul_chain"), ("vjp", "tuple_out"), ("hvp", "rosenbrock"),
                 ("hessian", "rosenbrock"), ("linearize", "matmul_chain")]])
def test_compile(path, case):
    check("compile", *_build(path, case, "auto", "cpu"), what=f"{path} {case} compiled")


def test_hessian_chunk_size_one_is_a_plain_loop():
    """``loop_only``'s derivative rules refuse vmap: only a plain loop over the basis works."""
    x = torch.tensor([0.3, -0.1, 0.7], dtype=torch.float64)
    H = jacobite.hessian(lambda t: loop_only(t).sum(), x, chunk_size=1)
    torch.testing.assert_close(H, torch.diag(-2.0 * torch.sin(x)), rtol=1e-12, atol=1e-12)
