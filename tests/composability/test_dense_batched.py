"""``batch_jacobian`` and ``module_jacobian`` under autograd, torch.func and compile."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

import jacobite
from tests.battery import MLP

from ._cases import BY_NAME, bind
from ._harness import CONFIGS, DEVICES, DIFF_TRANSFORMS, Known, check, params, to

# ----------------------------------------------------------------------------- known failures
KNOWN: tuple[Known, ...] = ()

TRANSFORMS = (*DIFF_TRANSFORMS, "vmap")
GRID = ("batched_shared",)
SWEEP = ("batched_mlp", "batched_matrix", "batched_scalar_out")


def _batch(case_name: str, mode, chunk, device: str):
    case = BY_NAME[case_name]
    f, args_at, X = bind(case, device)

    def fn(t):
        return jacobite.batch_jacobian(f, *args_at(t), argnums=case.argnums, in_dims=case.in_dims,
                                       mode=mode, chunk_size=chunk)

    def ref(t):
        return vmap(jacrev(f, argnums=case.argnums), in_dims=case.in_dims)(*args_at(t))

    return fn, ref, X


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("batch_jacobian", TRANSFORMS, CONFIGS, GRID, KNOWN)
                         + params("batch_jacobian", TRANSFORMS, (("auto", "auto"),), SWEEP,
                                  KNOWN))
def test_batch_jacobian(transform, mode, chunk, case, device):
    check(transform, *_batch(case, mode, chunk, device),
          what=f"batch_jacobian {case} {mode} {chunk}")


def _module(mode, chunk, device: str):
    net = MLP.to(device)
    params_ = {k: v.detach() for k, v in net.named_parameters()}
    x0 = to(torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64), device)

    def fn(t):
        return jacobite.module_jacobian(net, t, mode=mode, chunk_size=chunk)

    def ref(t):
        return jacrev(lambda p: functional_call(net, p, (t,)))(params_)

    return fn, ref, x0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("transform", "mode", "chunk", "case"),
                         params("module_jacobian", TRANSFORMS, CONFIGS, ("mlp",), KNOWN))
def test_module_jacobian_wrt_input(transform, mode, chunk, case, device):
    check(transform, *_module(mode, chunk, device), what=f"module_jacobian {mode} {chunk}")


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_module_jacobian_wrt_parameters(mode):
    """A loss on the parameter Jacobian is differentiable w.r.t. the parameters (autograd)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    names = [k for k, _ in net.named_parameters()]

    def penalty_ref(p):
        J = jacrev(lambda q: functional_call(net, q, (x,)))(p)
        return sum(J[k].square().sum() for k in names)

    expected = torch.func.grad(penalty_ref)({k: v.detach() for k, v in net.named_parameters()})
    J = jacobite.module_jacobian(net, x, mode=mode)
    penalty = sum(J[k].square().sum() for k in names)
    got = torch.autograd.grad(penalty, list(net.parameters()), allow_unused=True)
    for k, g in zip(names, got, strict=True):
        if g is None:  # J does not depend on it (the last bias): only right if that is exact
            assert not expected[k].any(), f"no gradient reached parameter {k}"
            continue
        torch.testing.assert_close(g, expected[k], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("path", ["batch_jacobian", "module_jacobian"])
def test_compile(path):
    built = (_batch("batched_shared", "auto", "auto", "cpu") if path == "batch_jacobian"
             else _module("auto", "auto", "cpu"))
    check("compile", *built, what=f"{path} compiled")
