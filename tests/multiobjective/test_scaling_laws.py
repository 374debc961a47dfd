"""The aggregators whose weights see J's scale follow their scaling law at every scale, also
where ``J Jᵀ`` over- or underflows: CAGrad's update is linear in J (``d(sJ) = s·d(J)``) while
``tr(s²G) ≥ norm_eps`` and 0 below; Nash-MTL's weights scale as ``1/s`` and its update not at
all. Oracles: the analytic CAGrad update of orthogonal unit rows, and Nash-MTL's defining
equations ``αᵢ (gᵢ·d) = 1`` solved for α by least squares."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobite.multiobjective import CAGrad, NashMTL

F64 = torch.float64
SCALES = [1e-300, 1e-150, 1.0, 1e150, 1e300]
SCALES_32 = [1e-20, 1e-12, 1.0, 1e20, 1e30]


@pytest.mark.parametrize("c", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("s", SCALES)
def test_cagrad_of_orthogonal_unit_rows_is_analytic_at_every_scale(s: float, c: float) -> None:
    # Ĝ = I/2: w* = (½, ½), ‖g₀‖ = ‖g_w‖ = ½, so the weights are (1 + c)/2 each
    J = s * torch.eye(2, dtype=F64)
    d = CAGrad(c=c, norm_eps=0.0)(J)
    torch.testing.assert_close(d, torch.full((2,), s * (1 + c) / 2, dtype=F64), rtol=1e-12,
                               atol=0)


@pytest.mark.parametrize("s", [1e-300, 1e-150, 1e-3, 1e-2, 1.0, 1e300])
def test_cagrad_is_zero_exactly_below_its_trace_threshold(s: float) -> None:
    J = s * torch.eye(2, dtype=F64)
    want = s * 0.75 * torch.ones(2, dtype=F64) if 2 * s * s >= 1e-4 else torch.zeros(2, dtype=F64)
    torch.testing.assert_close(CAGrad(c=0.5)(J), want, rtol=1e-12, atol=0)


def _rows(seed: int, m: int, n: int, dtype: torch.dtype = F64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # a shared direction keeps 0 out of the rows' convex hull (Nash-MTL has a solution)
    return (torch.randn(m, n, generator=g, dtype=F64) + 3.0).to(dtype)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 4), s=st.sampled_from(SCALES))
def test_cagrad_is_linear_in_j_at_every_scale(seed: int, m: int, s: float) -> None:
    J = _rows(seed, m, 5)
    agg = CAGrad(c=0.4, norm_eps=0.0)
    torch.testing.assert_close(agg(s * J), s * agg(J), rtol=1e-9, atol=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(2, 4), s=st.sampled_from(SCALES))
def test_nash_mtl_solves_its_equations_at_every_scale(seed: int, m: int, s: float) -> None:
    J = _rows(seed, m, 5)
    d = NashMTL(n_tasks=m, max_norm=0.0)(s * J)
    alpha = torch.linalg.lstsq(J.T, d[:, None]).solution[:, 0]  # α(J) = s·α(sJ)
    assert bool((alpha > 0).all())
    torch.testing.assert_close(alpha * (J @ d), torch.ones(m, dtype=F64), rtol=1e-8, atol=0)
    clipped = NashMTL(n_tasks=m)(s * J)
    torch.testing.assert_close(clipped, d / float(d.norm()), rtol=1e-9, atol=0)


@pytest.mark.parametrize("s", SCALES)
def test_nash_mtl_of_orthogonal_rows_is_the_sum_of_their_directions(s: float) -> None:
    J = s * torch.diag(torch.tensor([1.0, 2.0, -4.0], dtype=F64))
    want = torch.tensor([1.0, 1.0, -1.0], dtype=F64)
    torch.testing.assert_close(NashMTL(n_tasks=3, max_norm=0.0)(J), want, rtol=1e-9, atol=0)
    torch.testing.assert_close(NashMTL(n_tasks=3)(J), want / 3**0.5, rtol=1e-9, atol=0)


@pytest.mark.parametrize("s", SCALES_32)
def test_float32_jacobians_follow_the_same_laws(s: float) -> None:
    J = _rows(3, 3, 5)
    J32 = (s * J).to(torch.float32)
    d_cagrad = CAGrad(c=0.4, norm_eps=0.0)(J32)
    torch.testing.assert_close(d_cagrad.double() / s, CAGrad(c=0.4, norm_eps=0.0)(J),
                               rtol=1e-4, atol=0)
    d_nash = NashMTL(n_tasks=3)(J32)
    assert d_nash.dtype == torch.float32
    torch.testing.assert_close(d_nash.double(), NashMTL(n_tasks=3)(J), rtol=1e-4, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(5))
def test_config_of_balanced_opposite_rows_is_zero(dtype: torch.dtype, seed: int) -> None:
    # rows ±c_i u: the equally weighted unit rows cancel, so ConFIG has no direction; the update
    # is exactly zero (not round-off normalised to a unit vector), whatever the row scales
    from jacobite.multiobjective import ConFIG

    g = torch.Generator().manual_seed(seed)
    u = torch.randn(3, generator=g, dtype=torch.float64)
    c = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    J = (torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64) * c)[:, None] * u
    out = ConFIG()(J.to(dtype))
    assert torch.equal(out, torch.zeros(3, dtype=dtype))
