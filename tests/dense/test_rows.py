"""jacobite.dense._rows: per-sample Jacobian rows and columns from products on the whole batch,
against torch.func.jacrev / jacfwd of one sample at a time."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import forward_ad

from jacobite.dense import _rows
from tests.dense._functions import ReadingCube

F64 = torch.float64


def _field(D: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    W1, W2 = torch.randn(7, D, generator=g, dtype=F64), torch.randn(D, 7, generator=g, dtype=F64)
    return lambda z: z + torch.tanh(z @ W1.T) @ W2.T


def _jacobians(f: Any, x: torch.Tensor) -> torch.Tensor:
    """The oracle: jacrev of one sample at a time, ``(B, D, D)``."""
    return torch.stack([torch.func.jacrev(lambda v: f(v.unsqueeze(0))[0])(xb) for xb in x])


def _basis(D: int, B: int) -> torch.Tensor:
    return torch.eye(D, dtype=F64)[:, None, :].expand(D, B, D)


@settings(max_examples=15, deadline=None)
@given(D=st.integers(1, 5), B=st.integers(1, 4), size=st.integers(1, 6), seed=st.integers(0, 99))
def test_func_pullback_rows_match_jacrev_in_any_chunking(D: int, B: int, size: int,
                                                        seed: int) -> None:
    f = _field(D, seed)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)
    out, back = _rows.pullback(f, x)
    rows = _rows.vjps(back, x, size)(_basis(D, B)).movedim(0, 1)
    torch.testing.assert_close(out, f(x))
    torch.testing.assert_close(rows, _jacobians(f, x), rtol=1e-12, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(D=st.integers(1, 5), B=st.integers(1, 4), size=st.integers(1, 6), seed=st.integers(0, 99),
       create_graph=st.booleans())
def test_graph_pullback_rows_match_jacrev(D: int, B: int, size: int, seed: int,
                                          create_graph: bool) -> None:
    f = _field(D, seed)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)
    leaf = x.clone().requires_grad_()
    back, batched = _rows.graph_pullback(f(leaf), leaf, create_graph)
    rows = _rows.vjps(back, x, size, batched=batched)(_basis(D, B)).movedim(0, 1)
    torch.testing.assert_close(rows, _jacobians(f, x), rtol=1e-12, atol=1e-12)
    assert (rows.grad_fn is not None) == create_graph


def test_a_backward_without_a_vmap_rule_runs_one_product_at_a_time() -> None:
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=F64)
    _, back = _rows.pullback(ReadingCube.apply, x)
    with pytest.raises(RuntimeError, match="vmap"):
        torch.func.vmap(back)(_basis(4, 3))
    rows = _rows.vjps(back, x, 4)(_basis(4, 3)).movedim(0, 1)
    torch.testing.assert_close(rows, torch.diag_embed(3 * x * x), rtol=0, atol=1e-12)


def test_products_without_a_graph_have_the_same_values() -> None:
    f = _field(3, 1)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    _, back = _rows.pullback(f, x.clone().requires_grad_())
    kept = _rows.vjps(back, x, 2)(_basis(3, 2))
    dropped = _rows.vjps(back, x, 2, graph=False)(_basis(3, 2))
    assert kept.grad_fn is not None and dropped.grad_fn is None
    assert torch.equal(kept.detach(), dropped)
    torch.testing.assert_close(dropped.movedim(0, 1), _jacobians(f, x), rtol=1e-12, atol=1e-12)


def test_unused_inputs_give_zero_rows() -> None:
    x = torch.randn(2, 3, dtype=F64)
    leaf = x.clone().requires_grad_()
    back, batched = _rows.graph_pullback(torch.ones(2, 3, dtype=F64, requires_grad=True) * 2,
                                         leaf, False)
    rows = _rows.vjps(back, x, 3, batched=batched)(_basis(3, 2))
    assert torch.equal(rows, torch.zeros(3, 2, 3, dtype=F64))


def test_needs_graph_exactly_where_something_requires_grad() -> None:
    x = torch.randn(2, 3, dtype=F64)
    w = torch.randn(3, dtype=F64, requires_grad=True)
    assert not _rows.needs_graph(x, 2 * x)
    assert _rows.needs_graph(x, x * w)  # a closed-over tensor requiring grad
    xr = x.clone().requires_grad_()
    assert _rows.needs_graph(xr, 2 * xr)  # a tracked point
    assert not _rows.needs_graph(xr, 2 * xr, leaf=xr)  # a private leaf: its grad is not asked
    assert _rows.needs_graph(xr, xr * w, leaf=xr)
    with torch.no_grad():
        assert not _rows.needs_graph(xr, x * w)
    seen: list[bool] = []

    def inside(v: torch.Tensor) -> torch.Tensor:
        seen.append(_rows.needs_graph(x, 2 * x))
        return v.sum()

    torch.func.grad(inside)(x)
    with forward_ad.dual_level():
        seen.append(_rows.needs_graph(x, 2 * x))
    assert seen == [True, True]


@settings(max_examples=10, deadline=None)
@given(D=st.integers(1, 5), B=st.integers(1, 4), size=st.integers(1, 6), seed=st.integers(0, 99))
def test_repeated_jvps_give_the_columns(D: int, B: int, size: int, seed: int) -> None:
    f = _field(D, seed)
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(seed), dtype=F64)

    def push(rep: torch.Tensor, tan: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(f, (rep,), (tan,))[1]

    cols = _rows.repeated(push, x, size)(_basis(D, B))  # (D, B, D): column j of every J
    torch.testing.assert_close(cols.permute(1, 2, 0), _jacobians(f, x), rtol=1e-12, atol=1e-12)


def test_recorded_products_of_a_function_that_runs_autograd_itself() -> None:
    def f(z: torch.Tensor) -> torch.Tensor:  # z³ through a gradient: torch.func refuses it
        with torch.enable_grad():
            zc = z.clone().requires_grad_()
            (g,) = torch.autograd.grad((zc ** 4).sum(), zc, create_graph=True)
        return g / 4

    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    with pytest.raises(RuntimeError) as info:
        torch.func.vjp(f, x)
    assert _rows.runs_autograd(info.value)
    out, back, batched = _rows.recorded(f, x)
    rows = _rows.vjps(back, x, 3, batched=batched)(_basis(3, 2)).movedim(0, 1)
    torch.testing.assert_close(out, x ** 3)
    torch.testing.assert_close(rows, torch.diag_embed(3 * x * x), rtol=0, atol=1e-12)
    assert rows.grad_fn is None  # nothing requires grad
    _, back, batched = _rows.recorded(lambda z: torch.ones(2, 3, dtype=F64), x)
    assert torch.equal(_rows.vjps(back, x, 3, batched=batched)(_basis(3, 2)),
                       torch.zeros(3, 2, 3, dtype=F64))
    assert torch.equal(back(torch.ones(2, 3, dtype=F64)), torch.zeros(2, 3, dtype=F64))
