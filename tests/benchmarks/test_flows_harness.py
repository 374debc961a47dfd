"""The flows benchmark's helpers: zuko's exact-trace route, the decaying test spectra, the bugs."""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_flows as bf


def test_zuko_trace_route_is_the_jacobian_trace() -> None:
    f = bf._mlp_field(5, 8, 0)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    J = torch.func.vmap(torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0]))(x)
    torch.testing.assert_close(bf._zuko_trace(f, x), J.diagonal(dim1=1, dim2=2).sum(1))


def test_decaying_factors_have_the_stated_spectrum() -> None:
    Us, V, _ = bf._decaying(6, 0.5, 0)
    torch.testing.assert_close(V.T @ V, torch.eye(6, dtype=torch.float64))
    want = 0.5 ** torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close(torch.linalg.svdvals(Us), want)


def test_seeded_bugs_change_the_log_det_as_named() -> None:
    zuko = pytest.importorskip("zuko")
    t = zuko.flows.MAF(3, transforms=1).transform()
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    y, ladj = t.call_and_ladj(x)
    got = {name: fwd(x) for name, fwd in bf._bugs(t.call_and_ladj)}
    for yb, _ in got.values():
        torch.testing.assert_close(yb, y)
    torch.testing.assert_close(got["sign flip"][1], -ladj)
    torch.testing.assert_close(got["dropped constant (−log 2)"][1], ladj - 0.6931)
    torch.testing.assert_close(got["wrong scale (×0.5)"][1], 0.5 * ladj)
    diff = got["one wrong sample (+0.5)"][1] - ladj
    torch.testing.assert_close(diff, torch.tensor([0, 0, 0, 0.5, 0]))
