"""backward / mtl_backward: against a hand computation (J by torch.func, the aggregator applied)
on every path, against TorchJD 0.18 (autojac.backward / mtl_backward + jac_to_grad), accumulation,
per-example training and the typed errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

import jacobite
from jacobite.errors import (
    ArgnumsError,
    DtypeError,
    InvalidOptionError,
    JacobianTooLarge,
    NonFiniteInputError,
    ShapeError,
)
from jacobite.multiobjective.aggregators import Mean, UPGrad
from jacobite.multiobjective.backward import backward, mtl_backward, per_example_backward


class Doubled:
    """An aggregator that needs J itself (no ``weights``): twice the sum of the rows."""

    def __call__(self, J: torch.Tensor) -> torch.Tensor:
        return 2 * J.sum(0)


AGGREGATORS = [UPGrad(), Mean(), Doubled()]
PATHS = {"jacobian": "1 GiB", "gramian": 1000}  # budget: J stored, or only G (plus one VJP)


def _mlp(m: int, seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, m)).to(dtype)


def _data(m: int, batch: int = 16, dtype=torch.float64):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(batch, 4, generator=g, dtype=dtype)
    y = torch.randn(batch, m, generator=g, dtype=dtype) * torch.arange(1, m + 1, dtype=dtype)
    return x, y


def _losses(model, x, y, params=None):
    out = model(x) if params is None else functional_call(model, params, (x,))
    return ((out - y) ** 2).mean(0)


def _expected(model, x, y, aggregator):
    params = {k: v.detach() for k, v in model.named_parameters()}
    Jd = jacrev(lambda p: _losses(model, x, y, p))(params)
    J = torch.cat([v.reshape(y.shape[1], -1) for v in Jd.values()], dim=1)
    d = aggregator(J)
    return list(d.split([p.numel() for p in params.values()]))


def _close(a, b, rtol=1e-10):
    for u, v in zip(a, b, strict=True):
        assert (u - v.reshape(u.shape)).norm() <= rtol * max(1.0, v.norm())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("aggregator", AGGREGATORS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("chunk_size", [None, 1])
def test_backward_matches_hand_computation(path, aggregator, chunk_size):
    model = _mlp(3)
    x, y = _data(3)
    expected = _expected(model, x, y, aggregator)
    if path == "gramian" and not hasattr(aggregator, "weights"):
        with jacobite.config.memory_budget(PATHS[path]), pytest.raises(JacobianTooLarge):
            backward(_losses(model, x, y), model.parameters(), aggregator)
        return
    with jacobite.config.memory_budget(PATHS[path]):
        w = backward(_losses(model, x, y), model.parameters(), aggregator, chunk_size=chunk_size)
    _close([p.grad for p in model.parameters()], expected)
    assert (w is None) == (not hasattr(aggregator, "weights"))


def test_default_params_and_aggregator():
    model = _mlp(3)
    x, y = _data(3)
    expected = _expected(model, x, y, UPGrad())
    backward([loss for loss in _losses(model, x, y)])  # a sequence of scalars, every leaf
    _close([p.grad for p in model.parameters()], expected)


def test_accumulates_into_grad():
    model = _mlp(3)
    x, y = _data(3)
    expected = _expected(model, x, y, UPGrad())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    backward(_losses(model, x, y), model.parameters())
    backward(_losses(model, x, y), model.parameters())
    _close([p.grad for p in model.parameters()], [1 + 2 * e for e in expected])


@pytest.mark.parametrize("path", PATHS)
def test_one_loss_is_plain_backward(path):
    """m = 1: every aggregator here returns the gradient itself, as loss.backward() does."""
    a, b = _mlp(1), _mlp(1)
    x, y = _data(1)
    ((a(x) - y) ** 2).mean().backward()
    with jacobite.config.memory_budget(PATHS[path]):
        backward(((b(x) - y) ** 2).mean(0), b.parameters(), UPGrad())
    _close([p.grad for p in b.parameters()], [p.grad for p in a.parameters()], rtol=1e-6)


def test_retain_graph():
    model = _mlp(2)
    x, y = _data(2)
    losses = _losses(model, x, y)
    backward(losses, model.parameters(), Mean(), retain_graph=True)
    backward(losses, model.parameters(), Mean())
    with pytest.raises(RuntimeError):
        backward(losses, model.parameters(), Mean())


@pytest.mark.parametrize("path", PATHS)
def test_per_example(path):
    """One objective per example (m = batch): J rows are the per-example gradients."""
    model = _mlp(1)
    x, y = _data(1, batch=10)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, xi, yi):
        return ((functional_call(model, p, (xi[None],)) - yi) ** 2).sum()

    per = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(params, x, y)
    J = torch.cat([v.reshape(10, -1) for v in per.values()], dim=1)
    expected = UPGrad()(J).split([p.numel() for p in params.values()])
    with jacobite.config.memory_budget(PATHS[path]):
        backward(((model(x) - y) ** 2).sum(1), model.parameters(), UPGrad())
    _close([p.grad for p in model.parameters()], expected)


@pytest.mark.parametrize("aggregator", [UPGrad(), Doubled()], ids=lambda a: type(a).__name__)
def test_per_example_backward_equals_backward(aggregator):
    """Per-sample gradients by vmap give the .grad of backward on the B per-example losses."""
    a, b = _mlp(2), _mlp(2)
    x, y = _data(2, batch=10)
    for p in a.parameters():
        p.grad = torch.ones_like(p)  # accumulated into, like backward
    losses = per_example_backward(a, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y,
                                  aggregator=aggregator, chunk_size=4)
    backward(((b(x) - y) ** 2).sum(1), b.parameters(), aggregator)
    _close([p.grad - 1 for p in a.parameters()], [p.grad for p in b.parameters()])
    assert torch.allclose(losses, ((b(x) - y) ** 2).sum(1))
    with pytest.raises(ShapeError):
        per_example_backward(a, lambda f, xi, yi: f(xi), x, y)
    with pytest.raises(ShapeError):
        per_example_backward(a, lambda f, xi, yi: ((f(xi) - yi) ** 2).sum(), x, y[:3])
    with pytest.raises(ArgnumsError):
        per_example_backward(lambda v: v, lambda f, xi: f(xi).sum(), x)


def _mtl(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    trunk = nn.Sequential(nn.Linear(4, 10), nn.Tanh(), nn.Linear(10, 6), nn.Tanh()).to(dtype)
    heads = [nn.Linear(6, 1).to(dtype) for _ in range(3)]
    return trunk, heads


def _mtl_losses(trunk, heads, x, y, shared=None):
    z = trunk(x) if shared is None else functional_call(trunk, shared, (x,))
    return z, [((h(z).squeeze(1) - y[:, i]) ** 2).mean() for i, h in enumerate(heads)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("aggregator", [UPGrad(), Doubled()], ids=lambda a: type(a).__name__)
def test_mtl_backward_matches_hand_computation(path, aggregator):
    trunk, heads = _mtl()
    x, y = _data(3)
    shared = {k: v.detach() for k, v in trunk.named_parameters()}
    Jd = jacrev(lambda p: torch.stack(_mtl_losses(trunk, heads, x, y, p)[1]))(shared)
    J = torch.cat([v.reshape(3, -1) for v in Jd.values()], dim=1).detach()
    expected = aggregator(J).split([p.numel() for p in shared.values()])
    head_grads = []
    for i, h in enumerate(heads):
        loss = _mtl_losses(trunk, heads, x, y)[1][i]
        head_grads.append(torch.autograd.grad(loss, list(h.parameters())))
    z, losses = _mtl_losses(trunk, heads, x, y)
    if path == "gramian" and not hasattr(aggregator, "weights"):
        with jacobite.config.memory_budget(PATHS[path]), pytest.raises(JacobianTooLarge):
            mtl_backward(losses, z, aggregator)
        return
    with jacobite.config.memory_budget(PATHS[path]):
        mtl_backward(losses, z, aggregator)
    _close([p.grad for p in trunk.parameters()], expected)
    for h, g in zip(heads, head_grads, strict=True):
        _close([p.grad for p in h.parameters()], g)


def test_mtl_two_feature_tensors_gramian_path():
    """Features as a tuple of tensors, J over the budget: G by blocks, then one VJP."""
    trunk, heads = _mtl()
    x, y = _data(3)
    trunk2 = nn.Linear(4, 6).double()

    def run(shared=None, shared2=None):
        z1 = trunk(x) if shared is None else functional_call(trunk, shared, (x,))
        z2 = trunk2(x) if shared2 is None else functional_call(trunk2, shared2, (x,))
        return (z1, z2), [((h(z1 * z2).squeeze(1) - y[:, i]) ** 2).mean()
                          for i, h in enumerate(heads)]

    s1 = {k: v.detach() for k, v in trunk.named_parameters()}
    s2 = {k: v.detach() for k, v in trunk2.named_parameters()}
    Jd = jacrev(lambda p, q: torch.stack(run(p, q)[1]), argnums=(0, 1))(s1, s2)
    J = torch.cat([v.reshape(3, -1) for d in Jd for v in d.values()], dim=1).detach()
    expected = UPGrad()(J).split([p.numel() for p in [*s1.values(), *s2.values()]])
    feats, losses = run()
    with jacobite.config.memory_budget(1000):
        mtl_backward(losses, feats, UPGrad(), chunk_size=1)
    _close([p.grad for p in [*trunk.parameters(), *trunk2.parameters()]], expected)


def test_mtl_explicit_params_and_1d_losses():
    trunk, heads = _mtl()
    x, y = _data(3)
    z, losses = _mtl_losses(trunk, heads, x, y)
    mtl_backward(torch.stack(losses), [z], Mean(), retain_graph=True,
                 tasks_params=[list(h.parameters()) for h in heads],
                 shared_params=trunk.parameters())
    first = [p.grad.clone() for p in [*trunk.parameters(), *heads[0].parameters()]]
    mtl_backward(losses, z, Mean())
    _close([p.grad for p in [*trunk.parameters(), *heads[0].parameters()]],
           [2 * g for g in first])


def test_errors():
    model = _mlp(2)
    x, y = _data(2)
    losses = _losses(model, x, y)
    with pytest.raises(ShapeError):
        backward(losses[None], model.parameters())
    with pytest.raises(ShapeError):
        backward(losses[:0], model.parameters())
    with pytest.raises(NonFiniteInputError):
        backward(losses * float("nan"), model.parameters())
    with pytest.raises(ArgnumsError):
        backward(losses, [torch.ones(3)])
    with pytest.raises(ArgnumsError):
        backward(losses, [next(model.parameters()) * 2])
    with pytest.raises(ArgnumsError):
        backward(losses.detach(), model.parameters())
    with pytest.raises(DtypeError):
        backward(torch.ones(2, dtype=torch.long), model.parameters())
    with pytest.raises(InvalidOptionError):
        backward(losses, model.parameters(), chunk_size=0)
    trunk, heads = _mtl()
    z, ls = _mtl_losses(trunk, heads, x, _data(3)[1])
    with pytest.raises(ArgnumsError):
        mtl_backward(ls, z, shared_params=trunk.parameters(),
                     tasks_params=[list(trunk.parameters())] * 3)
    with pytest.raises(ShapeError):
        mtl_backward(ls, z, tasks_params=[list(heads[0].parameters())])
    with pytest.raises(ArgnumsError):
        mtl_backward(ls, z.detach())


@pytest.mark.cuda
def test_gpu_follows_the_tensors():
    model = _mlp(3).cuda()
    x, y = (t.cuda() for t in _data(3))
    expected = _expected(model, x, y, UPGrad())
    backward(_losses(model, x, y), model.parameters())
    assert all(p.grad.is_cuda for p in model.parameters())
    _close([p.grad for p in model.parameters()], expected, rtol=1e-8)


# --- against TorchJD 0.18 (test-only dependency) ------------------------------------------


def _torchjd():
    tjd = pytest.importorskip("torchjd")
    from torchjd import aggregation, autojac

    return tjd, aggregation, autojac


def _rel(a, b):
    return max(((u - v).norm() / v.norm().clamp_min(1e-30)).item()
               for u, v in zip(a, b, strict=True))


@pytest.mark.parametrize("name", ["UPGrad", "Mean"])
@pytest.mark.parametrize("m", [2, 5])
def test_backward_vs_torchjd(name, m):
    _, aggregation, autojac = _torchjd()
    ours = {"UPGrad": UPGrad, "Mean": Mean}[name]()
    theirs = getattr(aggregation, name)()
    x, y = _data(m, dtype=torch.float32)
    a, b = _mlp(m, seed=3, dtype=torch.float32), _mlp(m, seed=3, dtype=torch.float32)
    autojac.backward(_losses(a, x, y))
    autojac.jac_to_grad(list(a.parameters()), theirs)
    backward(_losses(b, x, y), b.parameters(), ours)
    assert _rel([p.grad for p in b.parameters()], [p.grad for p in a.parameters()]) < 1e-6


@pytest.mark.parametrize("name", ["UPGrad", "Mean"])
def test_mtl_backward_vs_torchjd(name):
    _, aggregation, autojac = _torchjd()
    ours = {"UPGrad": UPGrad, "Mean": Mean}[name]()
    theirs = getattr(aggregation, name)()
    x, y = _data(3, dtype=torch.float32)
    (ta, ha), (tb, hb) = _mtl(5, torch.float32), _mtl(5, torch.float32)
    z, losses = _mtl_losses(ta, ha, x, y)
    autojac.mtl_backward(losses, z)
    autojac.jac_to_grad(list(ta.parameters()), theirs)
    z, losses = _mtl_losses(tb, hb, x, y)
    mtl_backward(losses, z, ours)
    pa = [*ta.parameters(), *(p for h in ha for p in h.parameters())]
    pb = [*tb.parameters(), *(p for h in hb for p in h.parameters())]
    assert _rel([p.grad for p in pb], [p.grad for p in pa]) < 1e-6
