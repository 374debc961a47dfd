"""The Gramian JJᵀ without storing J, against the dense J @ J.T (J by torch.func.jacrev)."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, jacrev

import jacobite
from jacobite.errors import ArgnumsError, InvalidOptionError, NonFiniteInputError, ShapeError
from jacobite.multiobjective.gramian import gramian

TOL = 1e-10


def _problem(m: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(),
                                torch.nn.Linear(7, m)).double()
    x = torch.randn(9, 5, dtype=torch.float64)

    def fn(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return (functional_call(model, p, (x,)) ** 2).mean(0)

    detached = {k: v.detach() for k, v in model.named_parameters()}
    J = jacrev(fn)(detached)
    J = torch.cat([v.reshape(m, -1) for v in J.values()], dim=1)
    return model, fn, detached, J @ J.T


def _graph_losses(model, fn):
    return fn(dict(model.named_parameters()))


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_graph_matches_dense(chunk_size):
    model, fn, _, G0 = _problem()
    G = gramian(_graph_losses(model, fn), model.parameters(), chunk_size=chunk_size)
    assert (G - G0).abs().max() < TOL


@pytest.mark.parametrize("budget", [2000, 300, 1])
def test_graph_under_tiny_budgets(budget):
    """Parameters grouped, then single parameters in row blocks: same G."""
    model, fn, _, G0 = _problem(m=5)
    with jacobite.config.memory_budget(budget):
        G = gramian(_graph_losses(model, fn), list(model.parameters()))
    assert (G - G0).abs().max() < TOL


def test_graph_default_params_and_sequence_of_losses():
    model, fn, _, G0 = _problem()
    losses = _graph_losses(model, fn)
    G = gramian([losses[i] for i in range(4)], retain_graph=True)
    assert (G - G0).abs().max() < TOL
    assert (gramian(losses) - G0).abs().max() < TOL  # the graph was kept for this second call


def test_graph_freed_unless_retained():
    model, fn, _, _ = _problem()
    losses = _graph_losses(model, fn)
    gramian(losses, model.parameters())
    with pytest.raises(RuntimeError):
        gramian(losses, model.parameters())


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_functional_matches_dense(chunk_size):
    _, fn, params, G0 = _problem()
    G = gramian(fn, params, chunk_size=chunk_size)
    assert (G - G0).abs().max() < TOL
    assert torch.equal(G, G.T)


def test_functional_tuple_and_tensor_params():
    torch.manual_seed(1)
    A = torch.randn(3, 6, dtype=torch.float64)
    w = torch.randn(6, dtype=torch.float64)
    J = jacrev(lambda v: torch.sin(A @ v))(w)
    G = gramian(lambda v: torch.sin(A @ v), w)
    assert (G - J @ J.T).abs().max() < TOL
    G2 = gramian(lambda p: torch.sin(A[:, :2] @ p[0] + A[:, 2:] @ p[1]), (w[:2], w[2:]))
    assert (G2 - J @ J.T).abs().max() < TOL


def test_unused_parameter_contributes_nothing():
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    u = torch.ones(3, dtype=torch.float64, requires_grad=True)
    G = gramian(torch.stack([w.sum(), (w ** 2).sum()]), [w, u])
    assert torch.equal(G, torch.tensor([[2.0, 6.0], [6.0, 20.0]], dtype=torch.float64))


def test_errors():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ShapeError):
        gramian(torch.outer(w, w), [w])
    with pytest.raises(NonFiniteInputError):
        gramian(w * float("nan"), [w])
    with pytest.raises(ArgnumsError):
        gramian(w * 2, [torch.ones(2)])
    with pytest.raises(ArgnumsError):
        gramian(torch.ones(2), [w])
    with pytest.raises(InvalidOptionError):
        gramian(w * 2, [w], chunk_size=0)
    with pytest.raises(ArgnumsError):
        gramian(lambda p: p * 2)
    with pytest.raises(ShapeError):
        gramian(lambda p: p.sum(), torch.ones(2))


@pytest.mark.parametrize("m", [2, 10, 40])
def test_folded_gram_product(m):
    """The wide-block Gram product (K folded into a batch for 4 <= m < 32) equals f @ f.T."""
    from jacobite.multiobjective._params import gram

    f = torch.randn(m, 5000, dtype=torch.float64, generator=torch.Generator().manual_seed(m))
    assert (gram(f) - f @ f.T).abs().max() < 1e-10 * (f @ f.T).abs().max()
