"""jacobite.logdet(method="exact"): every route of the exact rows (batched, one at a time, under
a small budget, plain autograd where f runs autograd itself, recorded only where something
requires grad) against torch.linalg.slogdet of torch.func.jacrev or a closed form."""

from __future__ import annotations

import pytest
import torch

from jacobite.analysis import logdet
from jacobite.errors import NotSquareError
from tests.dense._functions import ReadingPlusCube

from .test_logdet import F64, _gen, _reference, _residual


def test_exact_records_the_products_only_where_something_requires_grad() -> None:
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))
    net = net.double().requires_grad_(False)
    x = torch.randn(5, 4, generator=_gen(4), dtype=F64)
    sign, want = _reference(net, x)
    frozen = logdet(net, x, method="exact")  # nothing requires grad: no graph, same values
    assert frozen.value.grad_fn is None
    torch.testing.assert_close(frozen.value, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(frozen.sign, sign)
    net.requires_grad_(True)
    trained = logdet(net, x, method="exact")
    assert trained.value.grad_fn is not None
    assert torch.equal(trained.value.detach(), frozen.value)
    w = net[0].weight
    assert isinstance(w, torch.Tensor)
    (g,) = torch.autograd.grad(trained.value.sum(), w)
    (g_ref,) = torch.autograd.grad(_reference(net, x)[1].sum(), w)
    torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_exact_under_a_budget_below_one_batched_product_takes_the_rows_one_by_one() -> None:
    f, x = _residual(3, 7), torch.randn(4, 3, generator=_gen(7), dtype=F64)
    sign, want = _reference(f, x)
    row = 4 * 3 * 8  # one VJP of the batch; the Jacobians (3 rows) fit, 4 rows of slack do not
    r = logdet(f, x, method="exact", memory_budget=3 * row)
    torch.testing.assert_close(r.value, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(r.sign, sign)


def test_exact_loops_the_rows_where_the_backward_pass_does_not_batch() -> None:
    x = torch.randn(3, 4, generator=_gen(8), dtype=F64)
    with pytest.raises(RuntimeError, match="vmap"):
        torch.func.vmap(torch.func.vjp(ReadingPlusCube.apply, x)[1])(torch.ones(2, 3, 4, dtype=F64))
    r = logdet(ReadingPlusCube.apply, x, method="exact")
    torch.testing.assert_close(r.value, torch.log1p(x * x).sum(1), rtol=0, atol=1e-12)


def test_exact_refuses_an_output_that_is_not_one_tensor_per_sample() -> None:
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(NotSquareError, match="tuple"):
        logdet(lambda z: (z, z), x, method="exact")


def _self_differentiating(z: torch.Tensor) -> torch.Tensor:
    """``z ↦ z + z²`` with the square computed as a gradient, as zuko's NAF computes its
    log-det: autograd inside ``f``, which ``torch.func`` transforms refuse."""
    with torch.enable_grad():
        zc = z.clone().requires_grad_()
        (g,) = torch.autograd.grad((zc ** 3).sum(), zc, create_graph=True)
    return z + g / 3


def test_exact_takes_plain_autograd_where_f_runs_autograd_itself() -> None:
    x = torch.rand(3, 4, generator=_gen(9), dtype=F64)
    with pytest.raises(RuntimeError, match="functorch transform"):
        torch.func.vjp(_self_differentiating, x)
    want = torch.log1p(2 * x).sum(1)  # J = diag(1 + 2z)
    r = logdet(_self_differentiating, x, method="exact")
    assert r.value.grad_fn is None
    torch.testing.assert_close(r.value, want, rtol=0, atol=1e-12)
    xr = x.clone().requires_grad_()
    tracked = logdet(_self_differentiating, xr, method="exact")
    torch.testing.assert_close(tracked.value.detach(), want, rtol=0, atol=1e-12)
    (g,) = torch.autograd.grad(tracked.value.sum(), xr)
    torch.testing.assert_close(g, 2 / (1 + 2 * x), rtol=1e-12, atol=1e-12)
