"""Curvature operators over data sharded across 2 gloo processes: every product, diagonal and
K-FAC factor equals the single-process one over the concatenated data (computed in the same
process), is identical on both ranks, and a failing rank stops the other with RankFailedError.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from jacobite import curvature as C
from jacobite import distributed as D
from jacobite.analysis import eigenvalues, frobenius_norm, spectral_density, spectral_norm

from ._spawn import run

pytestmark = pytest.mark.distributed


class _Net(nn.Module):
    """A small MLP that can be told to fail in its forward pass."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)
        self.fail = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail:
            raise ValueError("forward failed on purpose")
        return self.body(x)


def _data(n: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    X = torch.randn(n, 3, generator=g, dtype=dtype)
    return X, torch.randint(0, 3, (n,), generator=g), torch.randn(n, 3, generator=g, dtype=dtype)


def _close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    err = float((a - b).norm() / b.norm().clamp_min(1e-30))
    assert err <= rel, f"relative error {err:.3g} > {rel:g}"


def _curvature(rank: int, size: int) -> dict:
    torch.manual_seed(0)
    g = D.resolve("world")
    out: dict = {}
    dt = torch.float64
    model = _Net(dt)
    X, y, t = _data(11, dt)  # 11 samples: shares of 6 and 5
    Xs, ys, ts = D.shard_batch((X, y, t), g)
    ce, mse = nn.CrossEntropyLoss(), nn.MSELoss(reduction="sum")
    V = torch.randn(model.body[0].weight.numel() + 5 + 18, 3, dtype=dt,
                    generator=torch.Generator().manual_seed(2))
    v = V[:, 0]
    # a mean loss over two local batches per rank: the global count divides
    local_batches = [(Xs[:3], ys[:3]), (Xs[3:], ys[3:])]
    for cache in (False, True):
        G1 = C.ggn(model, ce, (X, y), cache=cache)
        Gd = C.ggn(model, ce, local_batches, cache=cache, process_group=g)
        _close(Gd.mv(v), G1.mv(v), 1e-12)
        _close(Gd.mm(V), G1.mm(V), 1e-12)
    out["ggn_mv"] = Gd.mv(v)
    _close(Gd.diagonal(), G1.to_dense().diagonal(), 1e-12)
    _close(C.ggn_diagonal(model, ce, (Xs, ys), process_group=g), C.ggn_diagonal(model, ce, (X, y)),
           1e-12)
    H1, Hd = C.hessian(model, mse, (X, t)), C.hessian(model, mse, (Xs, ts), process_group=g)
    _close(Hd.mv(v), H1.mv(v), 1e-12)
    out["hessian_mv"] = Hd.mv(v)
    for kind in ("empirical", "exact"):
        F1 = C.fisher(model, ce, (X, y), kind=kind)
        Fd = C.fisher(model, ce, (Xs, ys), kind=kind, process_group=g)
        _close(Fd.mv(v), F1.mv(v), 1e-12)
        _close(Fd.diagonal(), F1.diagonal(), 1e-12)
    Fmc = C.fisher(model, ce, (Xs, ys), kind="mc", samples=2, process_group=g)
    out["fisher_mc"] = Fmc.mv(v)
    # the Jacobian: this rank's rows; Jᵀu all-reduced
    J1, Jd = C.jacobian(model, X), C.jacobian(model, Xs, process_group=g)
    rows = slice(D.shard(11, g).start * 3, D.shard(11, g).stop * 3)
    assert Jd.shape == (rows.stop - rows.start, J1.shape[1])
    _close(Jd.mv(v), J1.mv(v)[rows], 1e-12)
    u = torch.randn(33, dtype=dt, generator=torch.Generator().manual_seed(3))
    _close(Jd.rmv(u[rows]), J1.rmv(u), 1e-12)
    # K-FAC: the factors of the concatenated data
    K1 = C.kfac(model, ce, (X, y), kind="empirical")
    Kd = C.kfac(model, ce, local_batches, kind="empirical", process_group=g)
    for (n1, A1, B1), (nd, Ad, Bd) in zip(K1.factors, Kd.factors, strict=True):
        assert n1 == nd
        _close(Ad, A1, 1e-12)
        _close(Bd, B1, 1e-12)
    out["kfac_mc"] = [A for _, A, _ in C.kfac(model, ce, (Xs, ys), process_group=g).factors]
    # ignored targets, more in one share than the other: the factors are those of the counted
    # samples alone (the counts gathered are the counted ones)
    y_ign = y.clone()
    y_ign[[0, 2, 4, 7]] = -100
    ys_ign = D.shard_batch((X, y_ign), g)[1]
    K1 = C.kfac(model, ce, (X[y_ign != -100], y[y_ign != -100]), kind="empirical")
    Kd = C.kfac(model, ce, (Xs, ys_ign), kind="empirical", process_group=g)
    for (_, A1, B1), (_, Ad, Bd) in zip(K1.factors, Kd.factors, strict=True):
        _close(Ad, A1, 1e-12)
        _close(Bd, B1, 1e-12)
    counted = (X[y_ign != -100], y[y_ign != -100])
    _close(C.ggn(model, ce, (Xs, ys_ign), process_group=g).mv(v), C.ggn(model, ce, counted).mv(v),
           1e-12)
    _close(C.fisher(model, ce, (Xs, ys_ign), process_group=g).mv(v),
           C.fisher(model, ce, counted).mv(v), 1e-12)
    # analysis runs unchanged on every rank: Lanczos, Hutchinson and SLQ with the same seed
    G1, Gd = C.ggn(model, ce, (X, y)), C.ggn(model, ce, (Xs, ys), process_group=g)
    top1, topd = eigenvalues(G1, k=2, seed=0).values, eigenvalues(Gd, k=2, seed=0).values
    _close(topd, top1, 1e-9)
    _close(spectral_norm(Gd), top1[0], 1e-9)
    f1 = frobenius_norm(G1, nproj=6, seed=0).value
    fd = frobenius_norm(Gd, nproj=6, seed=0).value
    _close(torch.as_tensor(fd), torch.as_tensor(f1), 1e-12)
    tr1 = spectral_density(G1, probes=4, steps=6, seed=0).trace(lambda t: t).value
    trd = spectral_density(Gd, probes=4, steps=6, seed=0).trace(lambda t: t).value
    _close(torch.as_tensor(trd), torch.as_tensor(tr1), 1e-9)
    out["top"], out["hutchinson"], out["slq"] = topd, fd, trd
    # float32: 1e-6 relative
    m32 = _Net(torch.float32)
    X32, y32, _ = _data(11, torch.float32)
    Xs32, ys32 = D.shard_batch((X32, y32), g)
    v32 = v.float()
    _close(C.ggn(m32, ce, (Xs32, ys32), process_group=g).mv(v32),
           C.ggn(m32, ce, (X32, y32)).mv(v32), 1e-6)
    # a rank whose forward pass fails inside a product: the other raises RankFailedError
    model.fail = rank == 1
    try:
        Gd.mv(v)
    except Exception as exc:
        out["fail"] = (type(exc).__name__, str(exc))
    model.fail = False
    # a rank with bad data fails at set-up: the other is told, nobody waits
    bad = Xs.clone()
    if rank == 0:
        bad[0, 0] = float("nan")
    try:
        C.ggn(model, ce, (bad, ys), process_group=g)
    except Exception as exc:
        out["setup_fail"] = (type(exc).__name__, str(exc))
    return out


def test_curvature_over_two_ranks_equals_one_process() -> None:
    r0, r1 = run(_curvature, 2, timeout=90)
    for key in ("ggn_mv", "hessian_mv", "fisher_mc", "top", "hutchinson", "slq"):
        np.testing.assert_array_equal(r0[key], r1[key])  # the same bits on every rank
    for a0, a1 in zip(r0["kfac_mc"], r1["kfac_mc"], strict=True):
        np.testing.assert_array_equal(a0, a1)
    assert r1["fail"][0] == "ValueError"
    assert r0["fail"][0] == "RankFailedError"
    assert "rank 1 failed: ValueError: forward failed on purpose" in r0["fail"][1]
    assert r0["setup_fail"][0] == "NonFiniteInputError"
    assert r1["setup_fail"][0] == "RankFailedError" and "rank 0 failed" in r1["setup_fail"][1]
