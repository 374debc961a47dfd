"""TorchJD's fixed values (aggregations of two small matrices and the weights of their Gramians,
at 1e-4), the optimality conditions of MGDA and of the dual-cone projection, and the reduction of
PCGrad to UPGrad on two rows — in float32 and float64."""

from __future__ import annotations

import pytest
import torch

from jacobite.multiobjective.aggregators import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    Constant,
    DualProj,
    GradDrop,
    Krum,
    Mean,
    NashMTL,
    PCGrad,
    Random,
    Sum,
    TrimmedMean,
    UPGrad,
)
from jacobite.multiobjective.aggregators._qp import project_dual_cone

DTYPES = [torch.float32, torch.float64]

J_BASE = [[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]]
J_KRUM = [[1.0, 1.0, 1.0], [1.0, 0.0, 1.0], [75.0, -666.0, 23.0], [1.0, 2.0, 3.0],
          [2.0, 0.0, 1.0]]
J_TRIMMED = [[1e11, 3.0], [1.0, -1e11], [-1e10, 1e10], [2.0, 2.0]]

UPDATES = [
    ("AlignedMTL", AlignedMTL, J_BASE, [0.2133, 0.9673, 0.9673]),
    ("ConFIG", ConFIG, J_BASE, [0.1588, 2.0706, 2.0706]),
    ("Constant", lambda: Constant(torch.tensor([1.0, 2.0])), J_BASE, [8.0, 3.0, 3.0]),
    ("DualProj", DualProj, J_BASE, [0.5563, 1.1109, 1.1109]),
    ("GradDrop", GradDrop, J_BASE, [6.0, 2.0, 2.0]),
    ("IMTLG", IMTLG, J_BASE, [0.0767, 1.0000, 1.0000]),
    ("Krum", lambda: Krum(n_byzantine=1, n_selected=4), J_KRUM, [1.2500, 0.7500, 1.5000]),
    ("Mean", Mean, J_BASE, [1.0, 1.0, 1.0]),
    ("MGDA", MGDA, J_BASE, [0.0, 1.0, 1.0]),
    ("PCGrad", PCGrad, J_BASE, [0.5848, 3.8012, 3.8012]),
    ("Random", Random, J_BASE, [-2.6229, 1.0000, 1.0000]),
    ("Sum", Sum, J_BASE, [2.0, 2.0, 2.0]),
    ("TrimmedMean", lambda: TrimmedMean(trim_number=1), J_TRIMMED, [1.5000, 2.5000]),
    ("UPGrad", UPGrad, J_BASE, [0.2929, 1.9004, 1.9004]),
    ("CAGrad", lambda: CAGrad(c=0.5), J_BASE, [0.1835, 1.2041, 1.2041]),
    ("NashMTL", lambda: NashMTL(n_tasks=2), J_BASE, [0.0542, 0.7061, 0.7061]),
]

WEIGHTS = [
    ("AlignedMTL", AlignedMTL, J_BASE, [0.5591, 0.4083]),
    ("Constant", lambda: Constant(torch.tensor([1.0, 2.0])), J_BASE, [1.0, 2.0]),
    ("DualProj", DualProj, J_BASE, [0.6109, 0.5000]),
    ("IMTLG", IMTLG, J_BASE, [0.5923, 0.4077]),
    ("Krum", lambda: Krum(1, 4), J_KRUM, [0.2500, 0.2500, 0.0000, 0.2500, 0.2500]),
    ("Mean", Mean, J_BASE, [0.5000, 0.5000]),
    ("MGDA", MGDA, J_BASE, [0.6000, 0.4000]),
    ("PCGrad", PCGrad, J_BASE, [2.2222, 1.5789]),
    ("Random", Random, J_BASE, [0.8623, 0.1377]),
    ("Sum", Sum, J_BASE, [1.0, 1.0]),
    ("UPGrad", UPGrad, J_BASE, [1.1109, 0.7894]),
    ("CAGrad", lambda: CAGrad(c=0.5), J_BASE, [0.7041, 0.5000]),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "J", "expected"), UPDATES, ids=[u[0] for u in UPDATES])
def test_update_values(name, make, J, expected, dtype) -> None:
    J = torch.tensor(J, dtype=dtype)
    if name == "GradDrop" and dtype == torch.float64:
        # TorchJD's value holds for its float32 draws; in float64 torch.rand draws other numbers,
        # so TorchJD itself, with the same seed, is the oracle
        torchjd = pytest.importorskip("torchjd.aggregation")
        torch.manual_seed(0)
        expected = torchjd.GradDrop()(J).tolist()
    torch.manual_seed(0)  # GradDrop and Random draw from the global generator, as in TorchJD
    torch.testing.assert_close(make()(J), torch.tensor(expected, dtype=dtype), rtol=0, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "make", "J", "expected"), WEIGHTS, ids=[w[0] for w in WEIGHTS])
def test_weight_values(name, make, J, expected, dtype) -> None:
    torch.manual_seed(0)
    J = torch.tensor(J, dtype=dtype)
    w = make().weights(J @ J.T)
    torch.testing.assert_close(w, torch.tensor(expected, dtype=dtype), rtol=0, atol=1e-4)


SHAPES = [(5, 7), (9, 37), (2, 14), (32, 114), (50, 100)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_mgda_satisfies_the_kkt_conditions(shape, dtype) -> None:
    g = torch.Generator().manual_seed(shape[0])
    J = torch.randn(shape, generator=g, dtype=dtype)
    G = J @ J.T
    w = MGDA().weights(G).double()
    G = G.double()
    Gw = G @ w
    mu = Gw - w @ Gw  # multipliers of w ≥ 0 (stationarity with λ = wᵀGw)
    scale = float(G.diagonal().max())
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert float(w.min()) >= 0 and abs(float(w.sum()) - 1) < tol  # primal feasibility
    assert float(mu.min()) >= -tol * scale  # dual feasibility (TorchJD: 1e-2 absolute)
    assert float((w * mu).abs().max()) <= tol * scale  # complementary slackness


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_dual_cone_projection_satisfies_the_kkt_conditions(shape, dtype) -> None:
    # v = argmin vᵀGv s.t. v ≥ u  ⇔  v ≥ u, Gv ≥ 0, (v − u)ᵀGv = 0
    g = torch.Generator().manual_seed(100 + shape[0])
    J = torch.randn(shape, generator=g, dtype=dtype)
    G = J @ J.T
    u = torch.rand(shape[0], generator=g, dtype=dtype)
    v = project_dual_cone(G, u[None])[0].double()
    G, u = G.double(), u.double()
    scale = float(G.diagonal().max()) * float(v.abs().max())
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert float((v - u).min()) >= -tol
    assert float((G @ v).min()) >= -tol * scale
    assert abs(float((v - u) @ G @ v)) <= tol * scale


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 7), (9, 37), (32, 114)])
@pytest.mark.parametrize("scaling", [2.0 ** -4, 2.0 ** -2, 2.0 ** 2, 2.0 ** 4])
def test_dual_cone_projection_is_scale_invariant(shape, scaling, dtype) -> None:
    g = torch.Generator().manual_seed(shape[1])
    J = torch.randn(shape, generator=g, dtype=dtype)
    G = J @ J.T
    U = torch.rand(1, shape[0], generator=g, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(project_dual_cone(scaling * G, U), project_dual_cone(G, U),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(5, 2, 3), (1, 3, 6, 9), (2, 1, 1, 5, 8), (3, 1)])
def test_batched_projection_equals_one_problem_at_a_time(shape) -> None:
    # TorchJD projects a tensor of vectors; jacobite takes them as the rows of a (B, m) matrix
    g = torch.Generator().manual_seed(len(shape))
    A = torch.randn(shape[-1], shape[-1], generator=g, dtype=torch.float64)
    G = A @ A.T
    U = torch.randn(shape, generator=g, dtype=torch.float64).reshape(-1, shape[-1])
    batched = project_dual_cone(G, U)
    one_by_one = torch.cat([project_dual_cone(G, u[None]) for u in U])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-10, atol=1e-12)


def test_quadprog_failure_on_a_large_gramian_falls_back() -> None:
    # TorchJD's quadprog path raises ValueError on this Gramian; jacobite's answers it with the
    # exact solver (solve_lcp) and the answer satisfies the optimality conditions
    pytest.importorskip("qpsolvers")
    g = torch.Generator().manual_seed(0)
    J = torch.randn(10, 100, generator=g, dtype=torch.float64) * 1e5
    G = J @ J.T
    u = torch.ones(1, 10, dtype=torch.float64)
    v = project_dual_cone(G, u, "quadprog")[0]
    torch.testing.assert_close(v, project_dual_cone(G, u)[0], rtol=1e-6, atol=1e-9)
    assert float((v - 1).min()) >= -1e-12 and float((G @ v).min()) >= -1e-6 * float(G.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [5, 7, 9, 15, 27, 68, 102, 57, 1200, 11100])
def test_pcgrad_on_two_rows_is_upgrad_of_the_sum(n, dtype) -> None:
    g = torch.Generator().manual_seed(n)
    J = torch.randn(2, n, generator=g, dtype=dtype)
    G = J @ J.T
    upgrad = UPGrad(torch.ones(2, dtype=dtype), norm_eps=0.0, reg_eps=0.0)
    torch.testing.assert_close(PCGrad().weights(G), upgrad.weights(G), rtol=0, atol=4e-4)
