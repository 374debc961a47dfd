"""The curvature-spectra benchmark's harness: its product counters count every vector, its
residual is the dense one, a missing curvlinops skips its row, and a quick run reports its
targets with the agreement it measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import _curv_cases as cc
from benchmarks import bench_curvature_spectra as bs


def test_counters_count_every_vector_of_a_product() -> None:
    A = torch.arange(9.0).reshape(3, 3)
    c = bs.Counted(lambda v: A @ v)
    c(torch.ones(3))
    c(torch.ones(3, 4))
    assert c.count == 5
    from scipy.sparse.linalg import aslinearoperator

    lin, count = bs.scipy_counted(aslinearoperator(A.numpy()))
    np.testing.assert_allclose(lin.matvec(np.ones(3, dtype=np.float32)), A.sum(1).numpy())
    np.testing.assert_allclose(lin.matmat(np.eye(3, dtype=np.float32)), A.numpy())
    assert count == [4]


def test_residual_is_the_dense_residual_over_the_scale() -> None:
    g = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = A + A.T
    lam, V = np.array([1.0, -2.0]), torch.randn(5, 2, generator=g, dtype=torch.float64).numpy()
    want = max(np.linalg.norm(A.numpy() @ (v / np.linalg.norm(v)) - lam_i * v / np.linalg.norm(v))
               for lam_i, v in zip(lam, V.T, strict=True)) / 3.0
    got = bs._residual(lambda v: (A.float() @ v), lam, V, 3.0)
    assert got == pytest.approx(want, rel=1e-5)


def test_missing_curvlinops_skips_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cc, "have", lambda module: False)
    sec = bs.top_eigenvalues(quick=True)
    assert any("skipped, install curvlinops-for-pytorch" in str(r[0]) for r in sec.rows)
    ours = sec.rows[0]
    assert isinstance(ours[1], int) and ours[1] <= bs.MAX_PRODUCTS
    assert isinstance(ours[4], float) and ours[4] <= bs.TOL


def test_quick_run_reports_targets_and_agreement() -> None:
    pytest.importorskip("curvlinops")
    top, slq = bs.run(quick=True)
    ours, peer, same, tight = top.rows
    assert isinstance(ours[5], float) and ours[5] <= bs.TOL  # equal to eigsh's values
    assert isinstance(peer[1], int) and isinstance(same[1], int)
    assert all(isinstance(r[4], float) and r[4] <= bs.TOL for r in (ours, peer, same, tight))
    assert isinstance(tight[1], int) and isinstance(ours[1], int) and tight[1] >= ours[1]
    assert "(met)" in top.notes[0]
    est = slq.rows[0]
    assert isinstance(est[7], float) and est[7] <= 4
