"""The analysis spectra on curvature operators (``P × P`` symmetric, float32): ``eigenvalues``,
``spectral_density``, ``logabsdet``, ``frobenius_norm``, ``spectral_norm`` and the Hutchinson /
XTrace trace estimators against the dense matrix of the same operator (float64 linear algebra),
and on a cached GGN whose traced JVP has not run yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from jacobite.analysis import _trace_est as te
from jacobite.analysis import (
    eigenvalues,
    frobenius_norm,
    logabsdet,
    spectral_density,
    spectral_norm,
)
from jacobite.curvature import fisher, ggn, hessian
from jacobite.operators import JacobianOperator

F64 = torch.float64
LOSS = torch.nn.CrossEntropyLoss()


def _operator(kind: str, cache: bool = False) -> JacobianOperator:
    """A float32 curvature operator of a small MLP over 40 samples: 38 parameters, full rank."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    X, y = torch.randn(40, 3), torch.randint(0, 3, (40,))
    if kind == "ggn":
        return ggn(model, LOSS, (X, y), cache=cache)
    builds: dict[str, Callable[..., Any]] = {"hessian": hessian, "fisher": fisher}
    return builds[kind](model, LOSS, (X, y))


CALLS: dict[str, Callable[[JacobianOperator], Any]] = {
    "eigenvalues": lambda G: eigenvalues(G, k=2, tol=1e-4).values,
    "spectral_density": lambda G: spectral_density(G, probes=2, steps=3).nodes,
    "logabsdet": lambda G: logabsdet(G).value,
    "logabsdet slq": lambda G: logabsdet(G, method="slq", nprobe=2, steps=3).value,
    "frobenius_norm": lambda G: frobenius_norm(G, nproj=4, seed=0).value,
    "spectral_norm": lambda G: spectral_norm(G, tol=1e-4),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_fresh_cached_ggn_is_accepted(name: str) -> None:
    """The cached GGN's traced JVP stores torch.fx's folded constants on its first run; that
    run inside an analysis call is not a change of the model's state."""
    G = _operator("ggn", cache=True)
    out = CALLS[name](G)
    assert bool(torch.isfinite(torch.as_tensor(out)).all())
    again = CALLS[name](G)  # and the operator still works after it
    torch.testing.assert_close(torch.as_tensor(again), torch.as_tensor(out))
    v = torch.ones(G.shape[0])
    torch.testing.assert_close(G.mv(v), _operator("ggn").mv(v), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["ggn", "hessian", "fisher"])
def test_logabsdet_and_norms_match_the_dense_matrix(kind: str) -> None:
    op = _operator(kind)
    assert op.dtype == torch.float32 and op.is_symmetric()
    D = op.to_dense().to(F64)
    sign, lad = torch.linalg.slogdet(D)
    exact = logabsdet(op)
    assert exact.exact and exact.sign == float(sign)
    assert float(exact.value) == pytest.approx(float(lad), rel=1e-4)
    slq = logabsdet(op, method="slq", nprobe=16, steps=38)
    assert abs(float(slq.value) - float(lad)) <= 4 * slq.stderr
    assert float(frobenius_norm(op, nproj=-1).value) == pytest.approx(float(D.norm()), rel=1e-5)
    est = frobenius_norm(op, nproj=200, seed=0)
    assert abs(float(est.squared) - float(D.square().sum())) <= 4 * est.stderr
    assert float(spectral_norm(op, tol=1e-6)) == pytest.approx(
        float(torch.linalg.matrix_norm(D, 2)), rel=1e-5)


@pytest.mark.parametrize("estimator", ["hutchinson", "xtrace"])
@pytest.mark.parametrize("kind", ["ggn", "hessian"])
def test_trace_estimators_through_mm(kind: str, estimator: str) -> None:
    """The analysis trace estimators take products ``(k, 1, P)``; a curvature operator's
    ``mm`` gives them, and the estimate lies within 4 standard errors of the dense trace."""
    op = _operator(kind)
    exact = float(op.to_dense().to(F64).trace())

    def apply(V: torch.Tensor) -> torch.Tensor:
        return op.mm(V[:, 0, :].T).T[:, None, :]

    fn = {"hutchinson": te.hutchinson, "xtrace": te.xtrace}[estimator]
    value, stderr, used = fn(apply, 32, (1, op.shape[0]), op.dtype, "cpu",
                             torch.Generator().manual_seed(0))
    assert used == 32
    assert abs(float(value[0]) - exact) <= 4 * float(stderr[0]) + 1e-5 * abs(exact)
    sd = spectral_density(op, probes=32, steps=4, seed=0).trace(lambda t: t)
    assert abs(sd.value - exact) <= 4 * sd.stderr


def test_hessian_eigenvalues_at_both_ends_in_float32() -> None:
    op = _operator("hessian")
    D = op.to_dense().to(F64)
    exact = torch.linalg.eigvalsh(D)
    r = eigenvalues(op, k=2, which="both_ends", tol=1e-5)
    big = float(exact.abs().max())
    torch.testing.assert_close(r.values, torch.stack([exact[-1], exact[0]]), atol=1e-5 * big,
                               rtol=0)
    true = torch.linalg.norm(D @ r.vectors - r.vectors * r.values, dim=0) / big
    assert float(true.max()) <= 1e-5
