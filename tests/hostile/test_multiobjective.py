"""Hostile values for jacobite.multiobjective: aggregators fed NaN, empty, non-matrix, integer,
zero, tiny, duplicated and conflicting Jacobians; the Gramian and backward fed non-finite or
constant losses."""

from __future__ import annotations

import pytest
import torch

from jacobite.errors import DtypeError, NonFiniteInputError, ShapeError
from jacobite.multiobjective import (
    IMTLG,
    CAGrad,
    Krum,
    NashMTL,
    TrimmedMean,
    backward,
    gramian,
)

from ..multiobjective.aggregator_table import MAKERS, ROWS_2
from ._probe import assert_close, refuses, within

F64 = torch.float64

#: every aggregator once (the shared table's option variants left out), with its test options
AGGREGATORS = {**{k: v for k, v in MAKERS.items() if "-" not in k}, **ROWS_2}
#: aggregators whose update for orthogonal rows of equal length is the mean / the sum of the rows
MEAN_OF_ORTHOGONAL = ["UPGrad", "DualProj", "MGDA", "AlignedMTL", "Constant", "Mean"]
SUM_OF_ORTHOGONAL = ["PCGrad", "Sum", "GradDrop", "ConFIG"]


def _make(name: str, m: int):  # type: ignore[no-untyped-def]
    return AGGREGATORS[name](torch.zeros(m, 1, dtype=F64))  # built for m float64 rows


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_nonfinite_jacobians_are_refused_naming_detect_anomaly(name, bad):
    J = torch.tensor([[1.0, bad], [0.0, 1.0], [2.0, 1.0], [0.5, 0.5]], dtype=F64)
    with refuses(NonFiniteInputError, "detect_anomaly"):
        _make(name, 4)(J)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_a_jacobian_without_rows_is_refused(name):
    with refuses(ShapeError, "at least one objective"):
        _make(name, 4)(torch.zeros(0, 3, dtype=F64))


@pytest.mark.parametrize("shape", [(), (3,), (2, 2, 2)])
@pytest.mark.parametrize("name", ["UPGrad", "MGDA", "Mean", "ConFIG", "Krum"])
def test_a_jacobian_that_is_not_a_matrix_is_refused_naming_reshape(name, shape):
    with refuses(ShapeError, ".reshape(m, -1)"):
        _make(name, 4)(torch.ones(shape, dtype=F64))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "Mean", "PCGrad", "TrimmedMean"])
def test_non_real_floating_jacobians_are_refused_naming_the_conversion(name, dtype):
    with refuses(DtypeError, ".double()"):
        _make(name, 4)(torch.ones(4, 2, dtype=dtype))


@pytest.mark.parametrize("name", sorted(set(AGGREGATORS) - {"Krum", "TrimmedMean"}))
def test_a_zero_jacobian_gives_a_zero_update(name):
    with within():
        d = _make(name, 2)(torch.zeros(2, 3, dtype=F64))
    assert_close(d, torch.zeros(3, dtype=F64), atol=0)


@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e150, 1e-300, 1e300, 1e-310])
@pytest.mark.parametrize("name", MEAN_OF_ORTHOGONAL + SUM_OF_ORTHOGONAL)
def test_orthogonal_rows_at_extreme_scales_give_the_analytic_update(name, scale):
    # rows a·e₁ and −a·e₂ never conflict: the aggregators that keep non-conflicting rows as they
    # are return their mean (or sum), at every scale
    J = torch.tensor([[scale, 0.0], [0.0, -scale]], dtype=F64)
    with within():
        d = _make(name, 2)(J)
    want = J.sum(0) / (2 if name in MEAN_OF_ORTHOGONAL else 1)
    assert_close(d, want, rtol=1e-9, atol=0)


@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e13, 1e150, 1e-300, 1e300])
def test_imtlg_of_orthogonal_rows_is_their_mean_at_extreme_scales(scale):
    # equal projections on e₁ and −e₂: the mean, also where J Jᵀ over- or underflows
    J = torch.tensor([[scale, 0.0], [0.0, -scale]], dtype=F64)
    with within():
        d = IMTLG()(J)
    assert_close(d, J.mean(0), rtol=1e-9, atol=0)


@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e150, 1e-300, 1e300])
def test_cagrad_and_nash_mtl_of_orthogonal_rows_are_analytic_at_extreme_scales(scale):
    # rows a·e₁ and −a·e₂: CAGrad's weights are (1 + c)/2 (d = 0.75·(a, −a) for c = ½) while
    # tr(J Jᵀ) ≥ norm_eps; Nash-MTL's weights are 1/a, and its update (1, −1), clipped to
    # unit length, does not depend on a
    J = torch.tensor([[scale, 0.0], [0.0, -scale]], dtype=F64)
    with within():
        cagrad = CAGrad(c=0.5, norm_eps=0.0)(J)
        nash = NashMTL(n_tasks=2)(J)
    assert_close(cagrad, 0.75 * J.sum(0), rtol=1e-12, atol=0)
    assert_close(nash, torch.tensor([1.0, -1.0], dtype=F64) / 2 ** 0.5, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_a_meta_jacobian_gives_a_meta_update_of_its_shape(name):
    J = torch.empty(4, 3, dtype=F64, device="meta")
    with within():
        d = _make(name, 4)(J)
    assert d.is_meta and d.shape == (3,) and d.dtype == F64


@pytest.mark.parametrize("name", sorted(set(AGGREGATORS) - {"ConFIG", "GradDrop", "TrimmedMean"}))
def test_a_meta_gramian_gives_meta_weights_of_its_shape(name):
    agg = _make(name, 4)
    with within():
        w = agg.weights(torch.empty(4, 4, dtype=F64, device="meta"))
    assert w.is_meta and w.shape == (4,) and w.dtype == F64


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "Mean", "AlignedMTL", "IMTLG",
                                  "Constant"])
def test_a_single_row_is_returned_unchanged(name):
    row = torch.tensor([[1e-200, 2.0, -3e5]], dtype=F64)
    with within():
        d = _make(name, 1)(row)
    assert_close(d, row[0], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "Mean", "IMTLG", "AlignedMTL"])
def test_duplicated_rows_give_that_row(name):
    J = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=F64)
    with within():
        d = _make(name, 2)(J)
    assert_close(d, J[0], rtol=1e-9)


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "Mean", "IMTLG", "PCGrad"])
def test_exactly_opposite_rows_give_no_update(name):
    J = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)
    with within():
        d = _make(name, 2)(J)
    assert_close(d, torch.zeros(2, dtype=F64), atol=1e-12)


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA", "CAGrad", "ConFIG", "IMTLG",
                                  "AlignedMTL", "PCGrad", "Mean", "NashMTL"])
def test_a_transposed_view_gives_the_contiguous_answer(name):
    J = torch.tensor([[1.0, 0.5], [0.0, 1.0], [2.0, 0.0]], dtype=F64).t()
    with within():
        got = _make(name, 2)(J)
        want = _make(name, 2)(J.contiguous())
    assert_close(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", ["UPGrad", "DualProj", "MGDA"])
def test_non_conflicting_updates_stay_non_conflicting_with_near_dependent_rows(name):
    J = torch.tensor([[1.0, 1e-9], [1.0, -1e-9], [-0.5, 1.0]], dtype=F64)
    with within():
        d = _make(name, 3)(J)
    assert bool((J @ d >= -1e-9).all())


@pytest.mark.parametrize("m", [1, 2, 3])
def test_robust_aggregators_with_too_few_rows_are_refused_naming_the_option(m):
    J = torch.ones(m, 2, dtype=F64)
    with refuses(ShapeError, "lower n_byzantine"):
        Krum(n_byzantine=1)(J)
    if m < 3:
        with refuses(ShapeError, "lower trim_number"):
            TrimmedMean(1)(J)


# ---- the Gramian and backward -------------------------------------------------------------------

def _point() -> torch.Tensor:
    return torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)


def test_gramian_of_losses_matches_the_explicit_jacobian():
    x = _point()
    with within():
        G = gramian(torch.stack([x.sum(), (x ** 2).sum(), torch.zeros((), dtype=F64) * x[0]]),
                    [x])
    J = torch.tensor([[1.0, 1.0], [2.0, 4.0], [0.0, 0.0]], dtype=F64)
    assert_close(G, J @ J.T)


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_losses_are_refused_naming_the_loss(index, bad):
    x = _point()
    losses = [x.sum(), (x ** 2).sum()]
    losses[index] = losses[index] * bad
    with refuses(NonFiniteInputError, f"losses [{index}]", "before backward"):
        backward(torch.stack(losses), [x])
    assert x.grad is None


def test_backward_with_a_constant_loss_uses_a_zero_row():
    y = _point()
    with within():
        backward(torch.stack([y.sum().detach(), (y ** 2).sum()]), [y])
    # rows 0 and (2, 4): no conflict, so UPGrad returns their mean
    assert_close(y.grad, [1.0, 2.0])


def test_backward_of_tiny_losses_matches_the_analytic_update():
    y = _point()
    with within():
        backward(torch.stack([1e-300 * y[0], -1e-300 * y[1]]), [y])
    assert_close(y.grad, [5e-301, -5e-301], rtol=1e-9, atol=0)
