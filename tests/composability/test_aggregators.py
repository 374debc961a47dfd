"""Aggregators of :mod:`jacobite.multiobjective` under autograd, torch.func and compile.

Contract (decided here, per aggregator; the update ``A(J)`` as a function of ``J``):

* closed-form aggregators (Mean, Sum, Constant, IMTLG, AlignedMTL, ConFIG, PCGrad) are
  differentiable in ``J``: autograd, torch.func ``grad``/``jacrev``/``jacfwd`` agree with each
  other and with central differences (Mean, Sum and Constant with their exact linear maps too);
* aggregators whose weights come from a solver outside autograd (UPGrad, DualProj, MGDA,
  CAGrad, NashMTL) raise :class:`~jacobite.errors.UnsupportedOperationError` when asked for a
  derivative — never a partial gradient;
* under ``vmap`` every aggregator equals a loop or raises a typed error naming the loop.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jacfwd, jacrev

from jacobite.errors import JacobiteError, UnsupportedOperationError
from jacobite.multiobjective import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    Constant,
    DualProj,
    Mean,
    NashMTL,
    PCGrad,
    Sum,
    UPGrad,
)

from ._harness import DEVICES, autograd_grad, check, to, weights_like

DT = torch.float64
W = torch.tensor([0.3, 0.5, 0.2], dtype=DT)
SMOOTH = {"Mean": Mean, "Sum": Sum, "Constant": lambda: Constant(W), "IMTLG": IMTLG,
          "AlignedMTL": AlignedMTL, "ConFIG": ConFIG, "PCGrad": PCGrad}
EXACT = {"Mean": lambda J: J.mean(0), "Sum": lambda J: J.sum(0), "Constant": lambda J: W @ J}
SOLVER = {"UPGrad": UPGrad, "DualProj": DualProj, "MGDA": MGDA,
          "CAGrad": lambda: CAGrad(c=0.5), "NashMTL": lambda: NashMTL(n_tasks=3)}

# ----------------------------------------------------------------------------- known failures
KNOWN: dict[str, str] = {}


def _one_draw(agg):
    """The aggregator with its random draws (PCGrad's orders) fixed, so that central differences
    compare the same map at J ± h."""
    def run(J: torch.Tensor) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return agg(J)

    return run


def _J(device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)  # mild conflict between the three objectives
    return to(torch.randn(3, 4, generator=g, dtype=DT) + torch.tensor([1.0, 0.5, 0, 0]), device)


def _numeric_grad(agg, J: torch.Tensor, w: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """Central differences of ``w · A(J)``: the oracle for the closed-form aggregators."""
    out = torch.zeros_like(J)
    for i in range(J.numel()):
        E = torch.zeros_like(J).view(-1)
        E[i] = h
        E = E.view_as(J)
        out.view(-1)[i] = ((w * agg(J + E)).sum() - (w * agg(J - E)).sum()) / (2 * h)
    return out


def _mark(name: str) -> list:
    return [pytest.mark.xfail(strict=True, reason=KNOWN[name])] if name in KNOWN else []


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("transform", ["autograd", "grad", "jacrev", "jacfwd"])
@pytest.mark.parametrize("name", [pytest.param(n, marks=_mark(n)) for n in SMOOTH])
def test_closed_form_is_differentiable(name, transform, device):
    agg = _one_draw(SMOOTH[name]())
    J = _J(device)
    if name in EXACT:
        check(transform, agg, EXACT[name], J, what=name)
        return
    w = weights_like(agg(J))
    if name == "PCGrad" and transform == "jacfwd":  # random orders cannot be drawn under vmap
        with pytest.raises(UnsupportedOperationError, match="jacrev"):
            jacfwd(agg)(J)
        return
    if transform == "autograd":
        got = autograd_grad(agg, J, w)
    elif transform == "grad":
        got = grad(lambda t: (w * agg(t)).sum())(J)
    elif transform == "jacrev":
        got = torch.einsum("i,ijk->jk", w, jacrev(agg)(J))
    else:
        got = torch.einsum("i,ijk->jk", w, jacfwd(agg)(J))
    torch.testing.assert_close(got, _numeric_grad(agg, J, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("transform", ["autograd", "grad", "jacrev", "jacfwd"])
@pytest.mark.parametrize("name", list(SOLVER))
def test_solver_weighted_refuses_derivatives(name, transform):
    agg = SOLVER[name]()
    J = _J("cpu")
    with pytest.raises(UnsupportedOperationError, match="differentiable"):
        if transform == "autograd":
            agg(J.clone().requires_grad_(True)).sum().backward()
        else:
            {"grad": grad(lambda t: agg(t).sum()), "jacrev": jacrev(agg),
             "jacfwd": jacfwd(agg)}[transform](J)


@pytest.mark.parametrize("name", [*SMOOTH, *SOLVER])
def test_vmap_matches_a_loop_or_names_it(name):
    agg = {**SMOOTH, **SOLVER}[name]()
    Js = torch.stack([_J("cpu"), 1.1 * _J("cpu") - 0.05])
    try:
        got = torch.func.vmap(agg)(Js)
    except JacobiteError as exc:
        assert "loop" in str(exc), exc
        return
    torch.testing.assert_close(got, torch.stack([agg(J) for J in Js]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["Mean", "UPGrad"])
def test_compile(name):
    agg = {**SMOOTH, **SOLVER}[name]()
    J = _J("cpu")
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(agg, backend="eager")(J), agg(J), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("name", ["Random", "GradDrop", "PCGrad"])
def test_random_aggregators_under_jacfwd_name_the_alternatives(name):
    from jacobite.multiobjective import GradDrop, Random

    agg = {"Random": Random, "GradDrop": GradDrop, "PCGrad": PCGrad}[name]()
    with pytest.raises(UnsupportedOperationError, match="jacrev"):
        jacfwd(agg)(_J("cpu"))
    J = _J("cpu")
    assert jacrev(_one_draw(agg))(J).shape == (4, 3, 4)  # reverse mode: one draw, fine
