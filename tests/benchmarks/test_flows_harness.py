"""The flows benchmark's helpers: zuko's exact-trace route, the decaying test spectra, the
stderr calibration, the bugs."""

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


def test_calibration_counts_mean_stderr_squared_and_coverage() -> None:
    exact = torch.zeros(2, dtype=torch.float64)
    values = [torch.tensor([1.0, -3.0], dtype=torch.float64)] * 2
    stderrs = [torch.tensor([0.5, 1.0], dtype=torch.float64), torch.tensor([1.0, 1.0],
                                                                             dtype=torch.float64)]
    ms2, cover_t, cover_z = bf._calibration(values, stderrs, exact, dof=3)
    assert ms2 == pytest.approx((0.25 + 1 + 1 + 1) / 4)
    # t(3) quantile 3.18: |1| ≤ 3.18·0.5, |1| ≤ 3.18, |−3| ≤ 3.18 twice; 1.96: only |1| ≤ 1.96
    assert cover_t == 1.0 and cover_z == pytest.approx(0.25)


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
