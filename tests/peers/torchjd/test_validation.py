"""TorchJD's representation and validation cases, where jacobite has the same API: ``repr`` and
``str`` of every aggregator, the checks of options and of the Jacobian's shape. jacobite's errors
are typed (``jacobite.errors``) and subclass the ValueError TorchJD raises."""

from __future__ import annotations

import re
from contextlib import nullcontext

import pytest
import torch

from jacobite.errors import JacobiteError
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

OK = nullcontext()
T123 = torch.tensor([1.0, 2.0, 3.0])


def _raises():
    return pytest.raises(ValueError)


def test_representations() -> None:
    cases = [
        (UPGrad(pref_vector=None, norm_eps=0.0001, reg_eps=0.0001, solver="quadprog"),
         "UPGrad(pref_vector=None, norm_eps=0.0001, reg_eps=0.0001, solver='quadprog')",
         "UPGrad"),
        (UPGrad(pref_vector=T123, solver="quadprog"),
         "UPGrad(pref_vector=tensor([1., 2., 3.]), norm_eps=0.0001, reg_eps=0.0001, "
         "solver='quadprog')", "UPGrad([1., 2., 3.])"),
        (DualProj(pref_vector=None, solver="quadprog"),
         "DualProj(pref_vector=None, norm_eps=0.0001, reg_eps=0.0001, solver='quadprog')",
         "DualProj"),
        (DualProj(pref_vector=T123, solver="quadprog"),
         "DualProj(pref_vector=tensor([1., 2., 3.]), norm_eps=0.0001, reg_eps=0.0001, "
         "solver='quadprog')", "DualProj([1., 2., 3.])"),
        (AlignedMTL(pref_vector=None), "AlignedMTL(pref_vector=None, scale_mode='min')",
         "AlignedMTL"),
        (AlignedMTL(pref_vector=T123), "AlignedMTL(pref_vector=tensor([1., 2., 3.]), "
         "scale_mode='min')", "AlignedMTL([1., 2., 3.])"),
        (ConFIG(), "ConFIG(pref_vector=None)", "ConFIG"),
        (ConFIG(pref_vector=T123), "ConFIG(pref_vector=tensor([1., 2., 3.]))",
         "ConFIG([1., 2., 3.])"),
        (Constant(weights=torch.tensor([1.0, 2.0])), "Constant(weights=tensor([1., 2.]))",
         "Constant([1., 2.])"),
        (CAGrad(c=0.5, norm_eps=0.0001), "CAGrad(c=0.5, norm_eps=0.0001)", "CAGrad0.5"),
        (IMTLG(), "IMTLG()", "IMTLG"),
        (Krum(n_byzantine=1, n_selected=2), "Krum(n_byzantine=1, n_selected=2)", "Krum1-2"),
        (Mean(), "Mean()", "Mean"),
        (NashMTL(n_tasks=2, max_norm=1.5, update_weights_every=2, optim_niter=5),
         "NashMTL(n_tasks=2, max_norm=1.5, update_weights_every=2, optim_niter=5)", "NashMTL"),
        (PCGrad(), "PCGrad()", "PCGrad"),
        (Random(), "Random()", "Random"),
        (Sum(), "Sum()", "Sum"),
        (TrimmedMean(trim_number=2), "TrimmedMean(trim_number=2)", "TM2"),
        # jacobite spells MGDA's iteration limit max_iter (max_iters= still accepted, deprecated)
        (MGDA(epsilon=0.001, max_iter=100), "MGDA(epsilon=0.001, max_iter=100, solver='exact')",
         "MGDA"),
    ]
    for agg, rep, short in cases:
        assert repr(agg) == rep
        assert str(agg) == short


def test_graddrop_representation() -> None:
    agg = GradDrop(leak=torch.tensor([0.0, 1.0]))
    assert re.fullmatch(r"GradDrop\(f=<function _identity at 0x[0-9a-fA-F]+>, "
                        r"leak=tensor\(\[0\., 1\.\]\)\)", repr(agg))
    assert str(agg) == "GradDrop([0., 1.])"
    assert re.fullmatch(r"GradDrop\(f=<function _identity at 0x[0-9a-fA-F]+>, leak=None\)",
                        repr(GradDrop()))
    assert str(GradDrop()) == "GradDrop"


@pytest.mark.parametrize(("shape", "expect"), [
    ([], _raises), ([1], _raises), ([1, 2], None), ([1, 2, 3], _raises), ([1, 2, 3, 4], _raises)])
def test_the_jacobian_must_be_a_matrix(shape, expect) -> None:
    with expect() if expect else OK:
        Mean()(torch.randn(shape))


@pytest.mark.parametrize(("c", "expect"), [(-5.0, _raises), (-1.0, _raises), (0.0, None),
                                           (1.0, None), (50.0, None)])
def test_cagrad_c(c, expect) -> None:
    with expect() if expect else OK:
        CAGrad(c=c)


VECTOR_SHAPES = [([], _raises), ([0], None), ([1], None), ([10], None), ([0, 0], _raises),
                 ([0, 1], _raises), ([1, 1], _raises), ([1, 1, 1], _raises),
                 ([1, 1, 1, 1], _raises), ([1, 1, 1, 1, 1], _raises)]


@pytest.mark.parametrize(("shape", "expect"), VECTOR_SHAPES)
def test_constant_weights_shape(shape, expect) -> None:
    with expect() if expect else OK:
        Constant(weights=torch.ones(shape))


@pytest.mark.parametrize(("shape", "expect"), VECTOR_SHAPES)
def test_graddrop_leak_shape(shape, expect) -> None:
    with expect() if expect else OK:
        GradDrop(leak=torch.ones(shape))


@pytest.mark.parametrize(("shape", "expect"), [
    (None, None), ([], _raises), ([0], None), ([1], None), ([5], None), ([1, 1], _raises),
    ([1, 1, 1], _raises)])
@pytest.mark.parametrize("cls", [UPGrad, DualProj, AlignedMTL, ConFIG])
def test_pref_vector_shape(cls, shape, expect) -> None:
    with expect() if expect else OK:
        cls(pref_vector=None if shape is None else torch.ones(shape))


# TorchJD accepts a Jacobian with no rows (m = 0) when the weights / leak have no entries either;
# jacobite refuses m = 0 for every aggregator ("an aggregator needs at least one objective"), so
# those two cases expect a ShapeError here.
MATCHING = [([0], 0, _raises), ([1], 1, None), ([5], 5, None), ([0], 1, _raises),
            ([1], 0, _raises), ([4], 5, _raises), ([5], 4, _raises)]


@pytest.mark.parametrize(("shape", "m", "expect"), MATCHING)
def test_constant_weights_match_the_rows(shape, m, expect) -> None:
    agg = Constant(torch.ones(shape))
    with expect() if expect else OK:
        agg(torch.ones(m, 5))


@pytest.mark.parametrize(("shape", "m", "expect"), MATCHING)
def test_graddrop_leak_matches_the_rows(shape, m, expect) -> None:
    agg = GradDrop(leak=torch.ones(shape))
    with expect() if expect else OK:
        agg(torch.ones(m, 5))


@pytest.mark.parametrize(("value", "expect"), [(-5, _raises), (-1, _raises), (0, None),
                                               (1, None), (5, None)])
def test_krum_n_byzantine(value, expect) -> None:
    with expect() if expect else OK:
        Krum(n_byzantine=value, n_selected=1)


@pytest.mark.parametrize(("value", "expect"), [(-5, _raises), (-1, _raises), (0, _raises),
                                               (1, None), (5, None)])
def test_krum_n_selected(value, expect) -> None:
    with expect() if expect else OK:
        Krum(n_byzantine=1, n_selected=value)


@pytest.mark.parametrize(("f", "k", "m", "expect"), [
    (1, 1, 3, _raises), (1, 1, 4, None), (1, 4, 4, None), (12, 4, 14, _raises),
    (12, 4, 15, None), (12, 15, 15, None), (12, 16, 15, _raises)])
def test_krum_needs_enough_rows(f, k, m, expect) -> None:
    agg = Krum(n_byzantine=f, n_selected=k)
    with expect() if expect else OK:
        agg(torch.ones(m, 5))


@pytest.mark.parametrize(("value", "expect"), [(-5, _raises), (-1, _raises), (0, None),
                                               (1, None), (5, None)])
def test_trimmed_mean_trim_number(value, expect) -> None:
    with expect() if expect else OK:
        TrimmedMean(trim_number=value)


@pytest.mark.parametrize(("m", "k", "expect"), [(1, 0, None), (1, 1, _raises), (10, 0, None),
                                                (10, 4, None), (10, 5, _raises)])
def test_trimmed_mean_needs_enough_rows(m, k, expect) -> None:
    agg = TrimmedMean(trim_number=k)
    with expect() if expect else OK:
        agg(torch.ones(m, 5))


def test_invalid_scale_mode_is_refused_at_construction() -> None:
    # TorchJD refuses it at the first call ("Invalid scale_mode=..."); jacobite at construction
    with pytest.raises(JacobiteError, match="scale_mode must be one of"):
        AlignedMTL(scale_mode="test")
