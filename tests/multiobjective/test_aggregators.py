"""Properties of every aggregator, independent of TorchJD: the contract (shapes, weights(G) vs
J, typed errors), non-conflict, scaling, degenerate Jacobians, exact MGDA / CAGrad against SciPy
oracles, and the random aggregators' distributions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given
from hypothesis import strategies as st

import jacobite.multiobjective as mo
from jacobite.errors import (
    DtypeError,
    InvalidOptionError,
    JacobiteError,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.multiobjective.aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    Constant,
    DualProj,
    GradDrop,
    GramianWeightedAggregator,
    Krum,
    Mean,
    NashMTL,
    PCGrad,
    Random,
    Sum,
    TrimmedMean,
    UPGrad,
)
from tests.mo_problems import DEGENERATE, random_jacobian

DT = torch.float64


def all_aggregators(m: int) -> list:
    return [UPGrad(), DualProj(), MGDA(), PCGrad(), CAGrad(c=0.5), IMTLG(), AlignedMTL(),
            ConFIG(), GradDrop(), NashMTL(n_tasks=m), Mean(), Sum(), Random(),
            Constant(torch.linspace(0.5, 1.5, m)), TrimmedMean(trim_number=0)]


#: aggregators with A(cJ) = c A(J) for c > 0 (PCGrad with the same seed)
HOMOGENEOUS = [UPGrad, DualProj, MGDA, PCGrad, IMTLG, AlignedMTL, ConFIG, Mean, Sum,
               lambda: CAGrad(c=0.4), lambda: Krum(n_byzantine=1), lambda: TrimmedMean(1)]


@given(m=st.integers(1, 12), n=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_upgrad_and_dualproj_do_not_conflict(m: int, n: int, seed: int) -> None:
    J = random_jacobian(m, n, seed)
    G = J @ J.T
    for agg in (UPGrad(), DualProj()):
        w = agg.weights(G)
        # Ĝw ≥ 0 with Ĝ = G/tr + εI  ⇒  J·d = Gw ≥ −ε tr(G) w: conflict only through the ridge
        bound = -agg.reg_eps * float(G.trace()) * w - 1e-10 * float(G.trace())
        assert bool((G @ w >= bound).all())
        torch.testing.assert_close(agg(J), J.T @ w)


@given(m=st.integers(1, 12), n=st.integers(1, 30), seed=st.integers(0, 10_000))
def test_mgda_is_exact_and_never_conflicts(m: int, n: int, seed: int) -> None:
    J = random_jacobian(m, n, seed)
    w = MGDA().weights(J @ J.T)
    d = J.T @ w
    assert bool((w >= 0).all()) and abs(float(w.sum()) - 1) < 1e-12
    # optimality on the simplex: every row improves by at least ‖d‖² (the min-norm point)
    scale = float((J * J).sum())
    assert bool((J @ d >= float(d @ d) - 1e-9 * scale).all())


@pytest.mark.parametrize("seed", range(6))
def test_mgda_matches_slsqp_oracle(seed: int) -> None:
    J = random_jacobian(6, 9, seed)
    G = (J @ J.T).numpy()
    res = scipy.optimize.minimize(
        lambda w: (w @ G @ w, 2 * G @ w), np.full(6, 1 / 6), jac=True, method="SLSQP",
        bounds=[(0, 1)] * 6, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options={"ftol": 1e-16, "maxiter": 1000})
    d_ref = J.T @ torch.as_tensor(res.x)
    d = MGDA()(J)
    assert float(d @ d) <= float(d_ref @ d_ref) * (1 + 1e-10) + 1e-14
    torch.testing.assert_close(d, d_ref, rtol=1e-5, atol=1e-7 * float(J.norm()))


def test_mgda_exact_where_frank_wolfe_conflicts() -> None:
    conflicts = 0
    for seed in range(40):
        J = random_jacobian(5, 20, seed)
        d_fw = MGDA(solver="frank-wolfe")(J)
        conflicts += bool((J @ d_fw < 0).any())
        assert bool((J @ MGDA()(J) >= 0).all())
    assert conflicts > 0  # TorchJD's stopping rule (epsilon = 1e-3) does leave conflicts


@pytest.mark.parametrize("seed", range(5))
def test_config_equal_cosines_with_independent_rows(seed: int) -> None:
    J = random_jacobian(4, 9, seed)
    d = ConFIG()(J)
    cos = (J @ d) / (J.norm(dim=1) * d.norm())
    assert bool((cos > 0).all())
    torch.testing.assert_close(cos, cos.mean().expand(4), rtol=1e-8, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_cagrad_beats_slsqp_oracle(seed: int) -> None:
    J = random_jacobian(5, 8, seed)
    G = J @ J.T
    Gn = (G / G.trace()).numpy()
    b, c = Gn.sum(1) / 5, 0.5
    s = c * np.sqrt(Gn.sum()) / 5

    def f(w: np.ndarray) -> float:
        return float(b @ w + s * np.sqrt(w @ Gn @ w))

    res = scipy.optimize.minimize(f, np.full(5, 0.2), method="SLSQP", bounds=[(0, 1)] * 5,
                                  constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                                  options={"ftol": 1e-15, "maxiter": 1000})
    weights = CAGrad(c=c).weights(G).numpy()
    w_star = (weights - 0.2) / np.abs(weights - 0.2).sum()  # back to the simplex point
    assert f(w_star) <= res.fun + 1e-10


@pytest.mark.parametrize("make", HOMOGENEOUS)
@pytest.mark.parametrize("c", [1e-3, 7.0])
def test_positive_homogeneity(make, c: float) -> None:
    J = random_jacobian(6, 11, 7)
    torch.manual_seed(0)
    d = make()(J)
    torch.manual_seed(0)
    torch.testing.assert_close(make()(c * J), c * d, rtol=1e-6, atol=1e-9 * c)


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_jacobians_give_finite_updates(name: str) -> None:
    J = DEGENERATE[name]()
    m = J.shape[0]
    for agg in all_aggregators(m):
        d = agg(J)
        assert d.shape == (J.shape[1],) and bool(torch.isfinite(d).all()), repr(agg)
    G = J @ J.T
    tr = float(G.trace())
    for agg in (UPGrad(), DualProj()):  # conflict only through the ridge: Gw ≥ −ε tr(G) w
        w = agg.weights(G)
        assert bool((G @ w >= -agg.reg_eps * tr * w - 1e-10 * tr).all()), (name, repr(agg))
    assert bool((J @ MGDA()(J) >= -1e-9 * tr).all())


def test_one_row_is_its_own_update() -> None:
    J = random_jacobian(1, 5, 0)
    for agg in (UPGrad(), DualProj(), MGDA(), Mean(), Sum(), IMTLG(), AlignedMTL(), PCGrad()):
        torch.testing.assert_close(agg(J), J[0], msg=repr(agg))


def test_zero_rows_are_ignored_by_upgrad() -> None:
    J = random_jacobian(3, 6, 1)
    J0 = torch.cat([J, torch.zeros(2, 6, dtype=DT)])
    # the zero rows impose nothing; only the preference mass changes (1/5 instead of 1/3)
    torch.testing.assert_close(UPGrad()(J0), UPGrad()(J) * 3 / 5, rtol=2e-4, atol=1e-12)


def test_duplicate_rows_count_twice_in_mean_not_in_mgda() -> None:
    J = random_jacobian(3, 6, 2)
    J2 = torch.cat([J, J[:1]])
    torch.testing.assert_close(MGDA()(J2), MGDA()(J), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises(bad: float) -> None:
    J = random_jacobian(3, 4, 0)
    J[1, 2] = bad
    for agg in all_aggregators(3):
        with pytest.raises(NonFiniteInputError, match="NaN or Inf"):
            agg(J)
    with pytest.raises(JacobiteError):
        UPGrad().weights(J @ J.T)


def test_shape_and_dtype_errors() -> None:
    with pytest.raises(ShapeError, match="2-D"):
        UPGrad()(torch.ones(3))
    with pytest.raises(ShapeError, match="no rows"):
        Mean()(torch.ones(0, 3))
    with pytest.raises(DtypeError, match=r"\.double\(\)"):
        MGDA()(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ShapeError, match="square"):
        UPGrad().weights(torch.ones(2, 3))
    with pytest.raises(ShapeError, match="one entry per objective"):
        UPGrad(pref_vector=torch.ones(3))(torch.ones(2, 4))
    with pytest.raises(ShapeError, match="at least 4 rows"):
        Krum(n_byzantine=1)(torch.ones(3, 2))
    with pytest.raises(ShapeError, match="at least 3 rows"):
        TrimmedMean(trim_number=1)(torch.ones(2, 2))
    with pytest.raises(ShapeError):
        Constant(torch.ones(3))(torch.ones(2, 2))
    with pytest.raises(InvalidOptionError, match="n_tasks"):
        NashMTL(n_tasks=3)(torch.ones(2, 2))


@pytest.mark.parametrize("make", [
    lambda: UPGrad(reg_eps=-1.0), lambda: UPGrad(solver="cvx"), lambda: DualProj(norm_eps=-1),
    lambda: MGDA(epsilon=0.0), lambda: MGDA(max_iter=0), lambda: MGDA(solver="fw"),
    lambda: CAGrad(c=-1.0), lambda: AlignedMTL(scale_mode="max"), lambda: Krum(-1),
    lambda: Krum(1, n_selected=0), lambda: TrimmedMean(-1), lambda: NashMTL(0),
    lambda: NashMTL(2, max_norm=-1.0)])
def test_invalid_options(make) -> None:
    with pytest.raises(InvalidOptionError):
        make()


def test_reprs_show_parameters() -> None:
    assert repr(UPGrad()) == "UPGrad(pref_vector=None, norm_eps=0.0001, reg_eps=0.0001, " \
                             "solver='auto')"
    assert repr(MGDA()) == "MGDA(epsilon=0.001, max_iter=100, solver='exact')"
    assert repr(CAGrad(c=0.5)) == "CAGrad(c=0.5, norm_eps=0.0001)"
    assert repr(Krum(2)) == "Krum(n_byzantine=2, n_selected=1)"
    assert repr(NashMTL(3)).startswith("NashMTL(n_tasks=3, max_norm=1.0, update_weights_every=1")
    assert repr(Mean()) == "Mean()"
    assert "trim_number=1" in repr(TrimmedMean(1))


def test_gramian_weighted_contract_and_float32() -> None:
    J = random_jacobian(5, 9, 3, dtype=torch.float32)
    for agg in all_aggregators(5):
        torch.manual_seed(1)
        d = agg(J)
        assert d.dtype == torch.float32
        if isinstance(agg, GramianWeightedAggregator) and not isinstance(agg, NashMTL):
            torch.manual_seed(1)
            torch.testing.assert_close(J.T @ agg.weights(J @ J.T), d)
    assert {type(a) for a in all_aggregators(3) if not isinstance(a, GramianWeightedAggregator)} \
        == {ConFIG, GradDrop, TrimmedMean}
    assert mo.UPGrad is UPGrad and "UPGrad" in mo.__all__


@pytest.mark.parametrize("m", [3, 40])
def test_upgrad_torch_backend_equals_auto(m: int) -> None:
    J = random_jacobian(m, 60, m)
    torch.testing.assert_close(UPGrad(solver="torch")(J), UPGrad()(J), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(DualProj(solver="torch")(J), DualProj()(J), rtol=1e-9,
                               atol=1e-12)


def test_upgrad_pref_vector_and_quadprog_solver() -> None:
    pytest.importorskip("qpsolvers")
    J = random_jacobian(6, 10, 4)
    p = torch.linspace(0.1, 1.0, 6, dtype=DT)
    torch.testing.assert_close(UPGrad(p)(J), UPGrad(p, solver="quadprog")(J), rtol=1e-7, atol=0)
    torch.testing.assert_close(DualProj(p)(J), DualProj(p, solver="quadprog")(J), rtol=1e-7,
                               atol=0)


def test_nash_mtl_bargaining_solution_and_state() -> None:
    J = random_jacobian(4, 10, 5)
    G = J @ J.T
    agg = NashMTL(n_tasks=4, max_norm=0.0)
    a = agg.weights(G)
    torch.testing.assert_close(a * (G @ a), torch.ones(4, dtype=DT), rtol=1e-9, atol=0)
    assert float(NashMTL(4)(J).norm()) == pytest.approx(1.0)  # ‖d‖² = m > 1: clipped
    lazy = NashMTL(n_tasks=4, max_norm=0.0, update_weights_every=2)
    first = lazy.weights(G)
    torch.testing.assert_close(lazy.weights(4 * G), first)  # reused on the second call
    lazy.reset()
    torch.testing.assert_close(lazy.weights(4 * G), first / 2)


def test_weights_of_a_gramian_that_requires_grad() -> None:
    J = random_jacobian(4, 7, 8).requires_grad_()
    G = J @ J.T
    for agg in all_aggregators(4):
        if isinstance(agg, GramianWeightedAggregator):
            w = agg.weights(G)
            assert w.shape == (4,) and bool(torch.isfinite(w).all()), repr(agg)


def test_random_weights_distribution() -> None:
    torch.manual_seed(0)
    W = torch.stack([Random().weights(torch.eye(4, dtype=DT)) for _ in range(4000)])
    assert bool((W > 0).all())
    torch.testing.assert_close(W.sum(1), torch.ones(4000, dtype=DT))
    torch.testing.assert_close(W.mean(0), torch.full((4,), 0.25, dtype=DT), atol=0.01, rtol=0)


def test_graddrop_behaviour() -> None:
    J = torch.tensor([[1.0, -2.0, 0.0], [3.0, 1.0, 0.0]], dtype=DT)
    torch.testing.assert_close(GradDrop(leak=torch.ones(2, dtype=DT))(J), J.sum(0))
    torch.manual_seed(0)
    draws = torch.stack([GradDrop()(J) for _ in range(4000)])
    # column 0 agrees in sign: always the sum; column 1 keeps +1 w.p. P = ½(1 + (−1)/3) = 1/3
    assert bool((draws[:, 0] == 4.0).all()) and bool((draws[:, 2] == 0.0).all())
    assert set(draws[:, 1].tolist()) <= {1.0, -2.0}
    assert float((draws[:, 1] == 1.0).double().mean()) == pytest.approx(1 / 3, abs=0.03)


def test_krum_and_trimmed_mean_resist_outliers() -> None:
    honest = 1.0 + 0.01 * torch.randn(6, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    J = torch.cat([honest, torch.full((1, 3), -100.0, dtype=DT)])
    assert bool((Krum(n_byzantine=1)(J) > 0.9).all())
    assert bool((Krum(n_byzantine=1, n_selected=3)(J) > 0.9).all())
    assert bool((TrimmedMean(trim_number=1)(J) > 0.9).all())
    assert bool((Mean()(J) < 0).all())


def test_imtlg_equal_projections_and_aligned_mtl_balance() -> None:
    J = random_jacobian(4, 9, 6)
    d = IMTLG()(J)
    cos = (J @ d) / J.norm(dim=1)
    torch.testing.assert_close(cos, cos.mean().expand(4), rtol=1e-8, atol=0)
    G = J @ J.T
    B = AlignedMTL().weights  # rows of BJ are orthogonal with equal norms
    assert B(G).shape == (4,)


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e150, 1e-150])
def test_config_is_linear_under_extreme_scaling(scale: float) -> None:
    # the rows' norms overflow (1e300² = inf) or underflow (1e-300² = 0) if taken directly;
    # ConFIG(cJ) = c ConFIG(J) must hold anyway, against the float64 answer at scale 1
    J = random_jacobian(3, 5, 11)
    want = ConFIG()(J) * scale
    got = ConFIG()(J * scale)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    D = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64) * scale
    torch.testing.assert_close(ConFIG()(D), D.sum(0), rtol=1e-12, atol=0)  # orthogonal rows


@pytest.mark.parametrize("scale", [1e13, 1e100, 1e150])
def test_imtlg_is_linear_under_large_scaling(scale: float) -> None:
    # v = G⁺ n shrinks like 1/scale: an absolute "Σ v vanishes" cut-off zeroed these updates
    J = random_jacobian(3, 5, 12)
    torch.testing.assert_close(IMTLG()(J * scale), IMTLG()(J) * scale, rtol=1e-10, atol=0)
    D = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64) * scale
    torch.testing.assert_close(IMTLG()(D), D.mean(0), rtol=1e-12, atol=0)  # equal projections
