"""Inverse and differential kinematics on a CUDA device (device battery: ``make test-gpu``)."""

from __future__ import annotations

import pytest
import torch

from jacobite.kinematics import ik, solve_velocity
from tests.kinematics._robots import load

pytestmark = pytest.mark.cuda

F64 = torch.float64


def _goals(chain, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    q = chain.lower + (chain.upper - chain.lower) * torch.rand(n, chain.dof, generator=g,
                                                               dtype=F64)
    return chain.fk(q)


def test_ik_on_cuda_solves_a_large_batch_on_the_device():
    chain = load("kuka_iiwa7")
    target = _goals(chain, 20000)
    res = ik(chain, target.cuda())
    assert res.q.device.type == "cuda" and res.success.device.type == "cuda"
    assert res.success.double().mean() >= 0.999
    # the flags hold on the CPU too: recompute the poses there
    T = chain.fk(res.q.cpu())
    pos = (T[:, :3, 3] - target[:, :3, 3]).norm(dim=-1)
    assert (pos[res.success.cpu()] <= 1e-4 + 1e-12).all()
    assert (res.q.cpu() >= chain.lower).all() and (res.q.cpu() <= chain.upper).all()


def test_ik_gradient_on_cuda_matches_the_cpu():
    chain = load("ur5")
    q = torch.tensor([0.4, -1.1, 1.3, -0.8, 1.2, 0.3], dtype=F64)
    p = chain.fk(q)[:3, 3]
    grads = []
    for device in ("cpu", "cuda"):
        t = p.to(device).requires_grad_(True)
        res = ik(chain, t, position_only=True, q0=q.to(device), seeds=1, tol=1e-11)
        assert bool(res.success)
        res.q.sum().backward()
        assert t.grad is not None
        grads.append(t.grad.cpu())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-7, atol=1e-9)


def test_solve_velocity_on_cuda_matches_the_cpu():
    chain = load("panda")
    g = torch.Generator().manual_seed(1)
    q = torch.rand(16, 7, generator=g, dtype=F64)
    twist = torch.randn(16, 6, generator=g, dtype=F64)
    ref = solve_velocity(chain, q, twist, damping=1e-2)
    got = solve_velocity(chain, q.cuda(), twist.cuda(), damping=1e-2)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), ref, rtol=1e-9, atol=1e-12)
