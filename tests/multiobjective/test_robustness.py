"""The QP-based aggregators (UPGrad, DualProj, MGDA, CAGrad, NashMTL) answer every finite float32
Jacobian — rank-deficient, duplicated or zero rows, huge or tiny scales, up to 256 rows — and stay
exact in float64 (TorchJD and the KKT conditions of each QP are the oracles)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jacobite.errors import ConvergenceError
from jacobite.multiobjective.aggregators import MGDA, CAGrad, DualProj, NashMTL, UPGrad
from jacobite.multiobjective.aggregators._qp import solve_lcp

torchjd = pytest.importorskip("torchjd.aggregation")

@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Tiny LAPACK calls: on a loaded machine, BLAS threads only wait for each other."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(1):
        yield


QP = {"UPGrad": UPGrad, "DualProj": DualProj, "MGDA": MGDA, "CAGrad": lambda: CAGrad(0.5)}


def _low_rank(seed: int, m: int = 10, k: int = 4, n: int = 30,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(m, k, generator=g, dtype=torch.float64)
            @ torch.randn(k, n, generator=g, dtype=torch.float64)).to(dtype)


def _mgda_kkt(G: torch.Tensor, w: torch.Tensor) -> float:
    """Violation of the simplex QP's optimality: w ≥ 0, Σw = 1, (Gw)ᵢ ≥ wᵀGw, equality on w > 0."""
    Gw = G @ w
    lam = float(w @ Gw)
    scale = float(G.diagonal().max())
    slack = Gw - lam
    return max(float((-w).clamp_min(0).max()), abs(float(w.sum()) - 1),
               float((-slack).clamp_min(0).max()) / scale,
               float((w * slack).abs().max()) / scale)


@pytest.mark.parametrize("seed", range(50))
def test_mgda_and_cagrad_answer_float32_dependent_rows(seed: int) -> None:
    J = _low_rank(seed)
    for agg in (MGDA(), CAGrad(0.5)):
        d = agg(J)
        assert d.dtype == torch.float32 and bool(torch.isfinite(d).all())
        # the float32 answer is the float64 answer up to float32 round-off on the Gramian
        ref = agg(J.double())
        scale = float(J.double().norm(dim=1).max())
        assert float((d.double() - ref).norm()) <= 1e-3 * scale, repr(agg)
    G = J.double() @ J.double().T
    assert _mgda_kkt(G, MGDA().weights(G)) < 1e-9


@pytest.mark.parametrize("seed", range(10))
def test_float64_stays_exact_against_torchjd(seed: int) -> None:
    J = _low_rank(seed, m=6, k=6, n=12, dtype=torch.float64)  # full rank
    G = J @ J.T
    for name, ref in {"UPGrad": torchjd.UPGrad(), "DualProj": torchjd.DualProj()}.items():
        torch.testing.assert_close(QP[name]()(J), ref(J), rtol=1e-5, atol=1e-6)
    # TorchJD's CAGrad stops its conic solver at default tolerances (see test_vs_torchjd)
    ours, theirs = CAGrad(0.5)(J), torchjd.CAGrad(0.5)(J)
    assert float((ours - theirs).norm()) <= 1e-3 * float(theirs.norm())
    w = MGDA().weights(G)
    assert _mgda_kkt(G, w) < 1e-10  # TorchJD's Frank–Wolfe stops at 1e-3: KKT is the oracle
    assert float(MGDA()(J).norm()) <= float(torchjd.MGDA()(J).norm()) * (1 + 1e-12)


def _families(m: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((m, n))
    dup = base[rng.integers(0, max(1, m // 3), m)]
    zero = base.copy()
    zero[::2] = 0.0
    low = rng.standard_normal((m, 2)) @ rng.standard_normal((2, n))
    out = {"gaussian": base, "duplicated": dup, "zero rows": zero, "rank 2": low,
           "huge": 1e30 * low, "tiny": 1e-30 * low, "all zero": np.zeros((m, n)),
           "mixed scales": base * 10.0 ** rng.uniform(-15, 15, (m, 1))}
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in out.items()}


@pytest.mark.parametrize("m", [1, 2, 7, 64, 256])
def test_every_family_gets_a_finite_answer(m: int) -> None:
    for name, J in _families(m, 40, m).items():
        for agg in [UPGrad(), DualProj(), MGDA(), NashMTL(n_tasks=m)] + \
                ([CAGrad(0.5)] if m <= 64 else []):
            d = agg(J)
            assert d.shape == (40,) and bool(torch.isfinite(d).all()), (name, repr(agg))


@pytest.mark.parametrize("make", [lambda: UPGrad(norm_eps=0.0), lambda: DualProj(norm_eps=0.0),
                                  MGDA, lambda: CAGrad(0.5, norm_eps=0.0)])
def test_huge_and_tiny_scales_are_linear(make) -> None:
    # positively homogeneous: A(cJ) = c A(J), also where J Jᵀ leaves float32's range (with the
    # default norm_eps = 1e-4 a Gramian of trace below it counts as zero, as in TorchJD)
    J = _low_rank(3, m=5, k=3, n=8, dtype=torch.float64)
    ref = make()(J)
    for c in (1e30, 1e-30):
        d = make()((c * J).float())
        torch.testing.assert_close(d.double() / c, ref, rtol=1e-4, atol=1e-5 * float(ref.norm()))


def test_nash_mtl_weights_scale_inversely() -> None:
    J = _low_rank(4, m=3, k=3, n=6, dtype=torch.float64)
    a = NashMTL(3, max_norm=0.0).weights(J @ J.T)
    big = NashMTL(3, max_norm=0.0)((1e30 * J).float())
    torch.testing.assert_close(big.double(), J.T @ a, rtol=1e-4, atol=1e-6)


def test_reg_eps_zero_on_a_singular_gramian() -> None:
    J = _low_rank(5, m=8, k=3, n=20, dtype=torch.float64)
    for agg in (UPGrad(reg_eps=0.0, norm_eps=0.0), DualProj(reg_eps=0.0, norm_eps=0.0)):
        d = agg(J)
        assert bool((J @ d >= -1e-9 * float(J.norm()) ** 2).all())  # still non-conflicting


def test_iteration_limit_message_names_the_real_option() -> None:
    m = 12
    idx = torch.arange(m, dtype=torch.float64)
    M = 0.95 ** (idx[:, None] - idx[None, :]).abs()
    Q = torch.randn(40, m, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with pytest.raises(ConvergenceError) as info:
        solve_lcp(M, Q, max_iter=1)
    message = str(info.value)
    assert "max_iter" in message and "reg_eps" not in message and "solver=" not in message


def test_indefinite_matrix_is_repaired_not_refused() -> None:
    # a Gramian of dependent rows pushed indefinite by round-off, as float32 makes it
    J = _low_rank(7, m=30, k=5, n=40, dtype=torch.float64)
    G = J @ J.T
    G -= 1e-7 * float(G.diagonal().sum()) * torch.eye(30, dtype=torch.float64)
    X = solve_lcp(G, -torch.ones(1, 30, dtype=torch.float64))
    assert bool(torch.isfinite(X).all()) and bool((X >= 0).all()) and float(X.sum()) > 0


# The sweep: 10,000 float32 Jacobians of every family. UPGrad, DualProj and MGDA aggregate all
# of them; CAGrad and NashMTL (a root search over MGDA problems, a Newton loop: ~10× the cost)
# every 20th. Most are small (m ≤ 8); one in 500 has 9 to 256 rows.
SWEEP = 10_000


def _sweep_matrix(rng: np.random.Generator, i: int) -> torch.Tensor:
    big = i % 500 == 0
    m = int(rng.integers(9, 257)) if big else int(rng.integers(1, 9))
    n = int(rng.integers(1, 300 if big else 40))
    kind = i % 7
    J = rng.standard_normal((m, n))
    if kind == 1:
        k = int(rng.integers(1, max(2, min(m, n))))
        J = rng.standard_normal((m, k)) @ rng.standard_normal((k, n))
    elif kind == 2:
        J = J[rng.integers(0, max(1, m // 2), m)]
    elif kind == 3:
        J *= 10.0 ** rng.uniform(20, 30)
    elif kind == 4:
        J *= 10.0 ** -rng.uniform(20, 30)
    elif kind == 5:
        J[rng.random(m) < 0.4] = 0.0
    elif kind == 6:
        J *= 10.0 ** rng.uniform(-15, 15, (m, 1))
    return torch.from_numpy(J.astype(np.float32))


def test_sweep_of_float32_jacobians_always_has_an_answer() -> None:
    rng = np.random.default_rng(2026)
    for i in range(SWEEP):
        J = _sweep_matrix(rng, i)
        aggs = [UPGrad(), DualProj(), MGDA()]
        if i % 20 == 0:
            aggs += [CAGrad(0.5), NashMTL(n_tasks=J.shape[0])]
        for agg in aggs:
            d = agg(J)
            assert d.shape == (J.shape[1],) and bool(torch.isfinite(d).all()), \
                (i, tuple(J.shape), repr(agg))


def test_last_resort_gives_the_same_answer(monkeypatch) -> None:
    # with the pivoting made to fail every time, the least-squares last resort answers
    from jacobite.multiobjective.aggregators import _qp, upgrad

    J = _low_rank(8, m=7, k=7, n=12, dtype=torch.float64)
    refs = [agg(J) for agg in (UPGrad(), DualProj(), MGDA(), CAGrad(0.5))]

    def stalled(*args, **kwargs):
        raise _qp._Stalled

    monkeypatch.setattr(_qp, "_attempt", stalled)
    monkeypatch.setattr(upgrad, "_solve_lcp_numpy", stalled)
    for agg, ref in zip((UPGrad(), DualProj(), MGDA(), CAGrad(0.5)), refs, strict=True):
        torch.testing.assert_close(agg(J), ref, rtol=1e-6, atol=1e-8)
