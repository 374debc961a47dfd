"""jacobian_plan: the mode rule, chunk sizes under the memory budget, logging, chunked results."""

from __future__ import annotations

import itertools
import logging
import math

import pytest
import torch
from torch.func import jacrev

import jacobite
from jacobite.errors import JacobianTooLarge

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _linear_tanh(m: int, n: int, seed: int = 0):
    """A fresh function R^n -> R^m (fresh object: nothing cached for it) and a point."""
    g = _gen(seed)
    A = torch.randn(m, n, generator=g, dtype=DT)
    x = torch.randn(n, generator=g, dtype=DT)

    def f(v: torch.Tensor) -> torch.Tensor:
        return torch.tanh(A @ v)

    return f, x


@pytest.mark.parametrize(("n", "m"), list(itertools.product((1, 2, 3, 5, 8),
                                                            (1, 3, 8, 65, 66, 67, 81, 200))))
def test_auto_mode_is_forward_iff_its_estimated_cost_is_lower(n: int, m: int) -> None:
    f, x = _linear_tanh(m, n, seed=n * 10 + m)
    plan = jacobite.jacobian_plan(f, x)
    assert (plan.n, plan.m) == (n, m)
    fwd = 2 * n + 64 < m  # the documented cost rule (jacobite.dense._plan.auto_mode)
    assert plan.mode == ("forward" if fwd else "reverse")
    assert plan.result_bytes == m * n * 8
    assert plan.num_chunks == 1  # tiny problem, default 1 GiB budget
    assert plan.chunk_size == (n if fwd else m)
    J = jacobite.jacobian(f, x)
    torch.testing.assert_close(J, jacrev(f)(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("in_shape", "out_shape"), [
    ((2, 3), (7,)), ((7,), (2, 3)), ((2, 2), (2, 2)), ((), (3,)), ((4,), ()), ((1, 1, 3), (2, 2)),
])
def test_auto_mode_counts_entries_not_dimensions(in_shape, out_shape) -> None:
    g = _gen(1)
    n, m = math.prod(in_shape), math.prod(out_shape)
    A = torch.randn(m, n, generator=g, dtype=DT)
    x = torch.randn(in_shape, generator=g, dtype=DT)

    def f(v: torch.Tensor) -> torch.Tensor:
        return torch.sin(A @ v.reshape(-1)).reshape(out_shape)

    plan = jacobite.jacobian_plan(f, x)
    assert (plan.n, plan.m) == (n, m)
    assert plan.mode == ("forward" if 2 * n + 64 < m else "reverse")


def test_auto_mode_counts_pytree_leaves() -> None:
    g = _gen(2)
    p = {"a": torch.randn(2, generator=g, dtype=DT), "b": torch.randn(3, generator=g, dtype=DT)}
    y = torch.randn(4, generator=g, dtype=DT)

    def f(p, y):  # n = 5 + 4 (argnums=(0, 1)), m = 3 + 4 + 1
        return p["b"] * p["a"].sum(), (y * p["a"][0], y.sum())

    plan = jacobite.jacobian_plan(f, p, y, argnums=(0, 1))
    assert (plan.n, plan.m, plan.mode) == (9, 8, "reverse")
    plan = jacobite.jacobian_plan(f, p, y, argnums=0)
    assert (plan.n, plan.m, plan.mode) == (5, 8, "reverse")  # 2·5 + 64 >= 8

    def g(p):  # n = 5, m = 3 · 40 = 120 > 2·5 + 64: forward
        return (p["b"] * p["a"].sum()).repeat(40)

    plan = jacobite.jacobian_plan(g, p)
    assert (plan.n, plan.m, plan.mode) == (5, 120, "forward")


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_explicit_mode_is_kept(mode: str) -> None:
    f, x = _linear_tanh(2, 6)
    plan = jacobite.jacobian_plan(f, x, mode=mode)
    assert plan.mode == mode
    assert "requested" in plan.reason


@pytest.mark.parametrize(("chunk_size", "mode", "expect_chunks"), [
    (None, "forward", 1), (None, "reverse", 1), (1, "forward", 6), (4, "forward", 2),
    (5, "reverse", 2), (3, "reverse", 3), (100, "reverse", 1),
])
def test_fixed_chunk_sizes(chunk_size, mode, expect_chunks) -> None:
    f, x = _linear_tanh(9, 6)  # n = 6, m = 9
    plan = jacobite.jacobian_plan(f, x, mode=mode, chunk_size=chunk_size)
    basis = 6 if mode == "forward" else 9
    assert plan.num_chunks == expect_chunks
    assert plan.chunk_size == min(chunk_size or basis, basis)
    assert plan.chunk_size * plan.num_chunks >= basis > plan.chunk_size * (plan.num_chunks - 1)


def test_auto_chunk_keeps_the_estimated_peak_under_the_budget() -> None:
    f, x = _linear_tanh(40, 40)
    big = jacobite.jacobian_plan(f, x, chunk_size=None)
    work = big.work_bytes_per_vector - (big.n + big.m) * 8  # the probe's working set
    smallest = big.result_bytes + work + big.work_bytes_per_vector  # one vector per chunk
    basis = big.m  # reverse (n == m)
    for budget in range(smallest, smallest + 45 * big.work_bytes_per_vector, 997):
        plan = jacobite.jacobian_plan(f, x, memory_budget=budget)
        assert plan.budget == budget
        assert plan.estimated_peak_bytes <= budget, plan
        assert 1 <= plan.chunk_size <= basis
        assert plan.num_chunks == -(-basis // plan.chunk_size)
        if plan.chunk_size < basis:  # the largest chunk that fits: one more would not
            assert plan.estimated_peak_bytes + plan.work_bytes_per_vector > budget, plan


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("how", ["argument", "context", "string"])
def test_small_budget_forces_several_chunks_and_is_still_right(mode: str, how: str) -> None:
    calls = []

    g = _gen(3)
    W = torch.randn(40, 40, generator=g, dtype=DT)
    x = torch.randn(40, generator=g, dtype=DT)

    def f(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.tanh(W @ v) * v

    budget = 20_000  # bytes; the result alone is 12_800
    if how == "argument":
        kw = {"memory_budget": budget}
        plan = jacobite.jacobian_plan(f, x, mode=mode, **kw)
        calls.clear()
        J = jacobite.jacobian(f, x, mode=mode, **kw)
    elif how == "string":
        kw = {"memory_budget": "19.53125 KiB"}
        plan = jacobite.jacobian_plan(f, x, mode=mode, **kw)
        assert plan.budget == budget
        calls.clear()
        J = jacobite.jacobian(f, x, mode=mode, **kw)
    else:
        with jacobite.config.memory_budget(budget):
            plan = jacobite.jacobian_plan(f, x, mode=mode)
            calls.clear()
            J = jacobite.jacobian(f, x, mode=mode)
        assert jacobite.config.get_memory_budget() == 2**30
    assert plan.budget == budget
    assert plan.num_chunks > 1
    assert plan.estimated_peak_bytes <= budget
    if plan.mode == "forward":  # one vmapped evaluation of f per chunk actually ran
        assert len(calls) >= plan.num_chunks
    expected = jacrev(f)(x)
    torch.testing.assert_close(J, expected, rtol=1e-12, atol=1e-12)
    whole = jacobite.jacobian(f, x, mode=mode, chunk_size=None)
    torch.testing.assert_close(J, whole, rtol=1e-14, atol=1e-14)


def test_result_over_budget_is_refused_by_the_plan() -> None:
    f, x = _linear_tanh(40, 40)
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        jacobite.jacobian_plan(f, x, memory_budget=12_799)
    with pytest.raises(JacobianTooLarge, match="linearize"):
        jacobite.jacobian(f, x, memory_budget=12_799)
    plan = jacobite.jacobian_plan(f, x, memory_budget=12_800 + 10_000)
    assert plan.result_bytes == 12_800


@pytest.mark.parametrize(("m", "n", "mode"), [(80, 2, "forward"), (2, 7, "reverse"),
                                              (4, 4, "reverse")])
def test_debug_log_names_the_mode(caplog, m: int, n: int, mode: str) -> None:
    f, x = _linear_tanh(m, n)
    with caplog.at_level(logging.DEBUG, logger="jacobite.dense"):
        J = jacobite.jacobian(f, x)
    records = [r for r in caplog.records if r.name == "jacobite.dense"]
    assert records, "no DEBUG record on the jacobite.dense logger"
    text = " ".join(r.getMessage() for r in records)
    assert f"{mode} mode" in text
    other = "reverse" if mode == "forward" else "forward"
    assert f"{other} mode" not in text
    assert all(r.levelno == logging.DEBUG for r in records)
    torch.testing.assert_close(J, jacrev(f)(x), rtol=1e-12, atol=1e-12)


def test_plan_str_is_readable() -> None:
    f, x = _linear_tanh(70, 2)
    plan = jacobite.jacobian_plan(f, x)
    text = str(plan)
    assert "forward mode" in text and "70×2" in text and "budget" in text


def test_plan_does_not_evaluate_more_than_once() -> None:
    """The probe is cached: planning twice evaluates f once; clear_cache forgets it."""
    calls = []
    g = _gen(4)
    A = torch.randn(3, 3, generator=g, dtype=DT)
    x = torch.randn(3, generator=g, dtype=DT)

    def f(v):
        calls.append(1)
        return A @ v

    p1 = jacobite.jacobian_plan(f, x)
    p2 = jacobite.jacobian_plan(f, x)
    assert len(calls) == 1 and p1 == p2
    jacobite.clear_cache()
    jacobite.jacobian_plan(f, x)
    assert len(calls) == 2
