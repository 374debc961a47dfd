"""The randomised Gauss–Newton diagonals against the exact one: unbiased over many seeds, a
standard error whose square is the variance on average (Hutchinson) or does not understate it
(XDiag), exact where XDiag's test vectors outnumber ``G``'s rank, the same draws whatever the
chunking, and refusals that name the fix."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from jacobite.config import memory_budget
from jacobite.curvature import diagonal_estimate, ggn, ggn_diagonal
from jacobite.errors import InvalidOptionError, UnsupportedOperationError

from ._oracle import batches, dense_ggn

F64 = torch.float64
DRAWS = 300


def _problem(classes: int = 6, n: int = 6) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, classes)).double()
    return model, torch.randn(n, 3, dtype=F64), torch.randint(0, classes, (n,))


def _draws(method: str, model: nn.Module, loss: nn.Module, data: list
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and stderrs ``(DRAWS, P)`` of independent runs with 8 probes each."""
    runs = [diagonal_estimate(model, loss, data, method=method, nprobe=8, seed=s)
            for s in range(DRAWS)]
    return torch.stack([r.value for r in runs]), torch.stack([r.stderr for r in runs])


@pytest.mark.parametrize(("method", "loss"), [("hutchinson", nn.CrossEntropyLoss()),
                                             ("hutchinson", nn.CrossEntropyLoss(reduction="sum")),
                                             ("xdiag", nn.CrossEntropyLoss())])
def test_estimates_are_unbiased_and_their_stderr_is_calibrated(method, loss):
    model, X, y = _problem()
    data = batches(X, y, (4, 2))
    exact = dense_ggn(model, loss, X, y).diagonal()
    value, stderr = _draws(method, model, loss, data)
    err = value - exact
    live = exact > 1e-8 * exact.max()  # entries of G's diagonal that are not zero
    # unbiased: the mean over the draws within four of its standard errors, entry by entry
    sem = err.std(0) / DRAWS ** 0.5
    assert (err.mean(0).abs()[live] <= 4 * sem[live] + 1e-12).all()
    # the reported variance against the spread, pooled over the entries (each scaled by its
    # exact value); the tolerance is four standard errors of the ratio from the same draws
    sq_err, sq_se = (err / exact)[:, live].square(), (stderr / exact)[:, live].square()
    a, b = sq_err.mean(1), sq_se.mean(1)  # one pooled number per draw
    ratio = a.mean() / b.mean()
    tol = 4 * ratio * (a.std() / a.mean() + b.std() / b.mean()) / DRAWS ** 0.5
    if method == "hutchinson":
        assert abs(ratio - 1) <= tol, (float(ratio), float(tol))
    else:  # the covariance term, clipped at 0, errs on the safe side
        assert 0.3 <= ratio <= 1 + tol, (float(ratio), float(tol))


@pytest.mark.parametrize("method", ["hutchinson", "xdiag"])
def test_student_t_intervals_cover_the_exact_diagonal(method):
    model, X, y = _problem()
    loss = nn.CrossEntropyLoss()
    exact = ggn_diagonal(model, loss, (X, y))
    runs = [diagonal_estimate(model, loss, (X, y), method=method, nprobe=12, seed=s)
            for s in range(150)]
    q = stats.t.ppf(0.975, runs[0].dof)
    cover = torch.stack([((r.value - exact).abs() <= q * r.stderr) for r in runs]).double()
    # nominal 0.95 per entry; the squares' skew and few probes cost some points
    assert cover.mean() >= 0.85, float(cover.mean())


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss(), nn.MSELoss(), nn.HuberLoss()])
def test_xdiag_is_exact_where_its_test_vectors_outnumber_the_rank(loss):
    model, X, y = _problem(classes=3, n=4)  # rank of G at most 4 · 3 = 12 < 20 test vectors
    if not isinstance(loss, nn.CrossEntropyLoss):
        y = torch.randn(4, 3, dtype=F64)
    exact = dense_ggn(model, loss, X, y).diagonal()
    est = diagonal_estimate(model, loss, batches(X, y, (3, 1)), method="xdiag", nprobe=40)
    torch.testing.assert_close(est.value, exact, rtol=1e-9, atol=1e-12)
    assert float(est.stderr.max()) <= 1e-9 * float(exact.abs().max())
    assert est.nprobe <= 40 and est.dof == 19


def test_mse_hutchinson_against_the_exact_diagonal():
    model, X, _ = _problem(classes=4)
    y = torch.randn(6, 4, dtype=F64)
    loss = nn.MSELoss()
    exact = ggn_diagonal(model, loss, (X, y))
    est = diagonal_estimate(model, loss, (X, y), nprobe=4000)
    assert ((est.value - exact).abs() <= 5 * est.stderr + 1e-12).all()
    assert float(est.stderr.max() / exact.max()) < 0.05


def test_the_same_draws_whatever_the_chunking_and_seed_none_uses_the_global_generator():
    model, X, y = _problem()
    loss = nn.CrossEntropyLoss()
    P = sum(p.numel() for p in model.parameters())
    one = diagonal_estimate(model, loss, (X, y), nprobe=6, seed=7)
    with memory_budget(4 * 8 * P * 2):  # two probes per chunk
        chunked = diagonal_estimate(model, loss, (X, y), nprobe=6, seed=7)
    torch.testing.assert_close(one.value, chunked.value, rtol=1e-12, atol=0)
    # the chunks' squares merged into a running mean and spread: the spread of all at once
    torch.testing.assert_close(one.stderr, chunked.stderr, rtol=1e-12, atol=0)
    torch.manual_seed(1)
    a = diagonal_estimate(model, loss, (X, y), seed=None)
    torch.manual_seed(1)
    b = diagonal_estimate(model, loss, (X, y), seed=None)
    assert torch.equal(a.value, b.value)
    assert not torch.equal(a.value, one.value)


def test_refusals_name_the_fix():
    model, X, y = _problem()
    with pytest.raises(UnsupportedOperationError, match="xdiag"):
        diagonal_estimate(model, nn.HuberLoss(), (X, torch.zeros(6, 6, dtype=F64)))
    with pytest.raises(InvalidOptionError, match="hutchinson"):
        diagonal_estimate(model, nn.CrossEntropyLoss(), (X, y), method="exact")
    with pytest.raises(InvalidOptionError):
        diagonal_estimate(model, nn.CrossEntropyLoss(), (X, y), method="xdiag", nprobe=3)


def test_xdiag_uses_the_ggn_products():
    model, X, y = _problem()
    loss = nn.CrossEntropyLoss()
    G = ggn(model, loss, (X, y)).to_dense()
    est = diagonal_estimate(model, loss, (X, y), method="xdiag", nprobe=200)  # P = 46
    torch.testing.assert_close(est.value, G.diagonal(), rtol=1e-9, atol=1e-12)
