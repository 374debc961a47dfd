"""condition_number / logabsdet choose exact or iterative by cost (memory budget, products)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jacobite
from jacobite.analysis import condition_number, logabsdet
from jacobite.errors import JacobianTooLarge
from jacobite.operators import DenseOperator

F64 = torch.float64


def _mat(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _choices(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [r.getMessage().split(": ", 1)[1].split(" ")[0] for r in caplog.records
            if r.name == "jacobite.analysis" and r.getMessage().startswith(what)]


@pytest.mark.parametrize("n", [257, 300, 1000])
def test_dense_tensor_is_exact(n: int, caplog: pytest.LogCaptureFixture) -> None:
    A = _mat(n, n)
    caplog.set_level(logging.DEBUG, logger="jacobite.analysis")
    r = logabsdet(A)
    ref = torch.linalg.slogdet(A)
    assert r.exact and r.stderr == 0 and r.method == "dense"
    assert r.sign == float(ref.sign)
    assert float(r.value) == pytest.approx(float(ref.logabsdet), rel=1e-12)
    s = torch.linalg.svdvals(A)
    assert float(condition_number(A)) == pytest.approx(float(s[0] / s[-1]), rel=1e-10)
    assert _choices(caplog, "logabsdet") == ["exact"]
    assert _choices(caplog, "condition_number") == ["exact"]


def test_dense_operator_is_exact() -> None:
    A = _mat(300, 1)
    r = logabsdet(DenseOperator(A))
    ref = torch.linalg.slogdet(A)
    assert r.exact and r.sign == float(ref.sign)
    assert float(r.value) == pytest.approx(float(ref.logabsdet), rel=1e-12)


def test_singular_jacobian_has_sign_zero() -> None:
    x = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=F64)
    r = logabsdet(lambda v: torch.softmax(v, 0), x)  # J 1 = 0
    assert r.exact and r.sign == 0 and float(r.value) == -math.inf
    W = _mat(300, 2)
    W[:, -1] = W[:, 0] - 2 * W[:, 1]  # rank 299
    assert int(torch.linalg.matrix_rank(W)) == 299
    r = logabsdet(W)
    assert r.exact and r.sign == 0 and float(r.value) == -math.inf


def test_function_over_the_budget_is_iterative(caplog: pytest.LogCaptureFixture) -> None:
    n = 300  # J and its factorisation: 16 n² bytes = 1.44 MB
    d = torch.tensor([1.0, 2.0, 4.0], dtype=F64).repeat(n // 3)
    f = lambda v: d * v  # noqa: E731  (three distinct singular values: Lanczos is quick)
    x = torch.ones(n, dtype=F64)
    caplog.set_level(logging.DEBUG, logger="jacobite.analysis")
    assert logabsdet(f, x).exact  # within the default budget: 300 products < 1280 of SLQ
    r = logabsdet(f, x, memory_budget="1 MiB")
    assert not r.exact and r.method == "slq" and math.isnan(r.sign)
    with jacobite.config.memory_budget("1 MiB"):
        assert not logabsdet(f, x).exact
    assert float(condition_number(f, x, memory_budget="1 MiB")) == pytest.approx(4.0, rel=1e-8)
    assert float(condition_number(f, x)) == pytest.approx(4.0, rel=1e-12)
    assert _choices(caplog, "logabsdet") == ["exact", "iterative", "iterative"]
    assert _choices(caplog, "condition_number") == ["iterative", "exact"]
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        logabsdet(f, x, method="exact", memory_budget="256 KiB")
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        condition_number(f, x, exact=True, memory_budget="256 KiB")


def test_held_matrix_over_the_budget_is_iterative() -> None:
    A = _mat(300, 3) + 30 * torch.eye(300, dtype=F64)
    r = logabsdet(A, memory_budget="1 MiB", nprobe=4, steps=10)
    assert not r.exact
    assert logabsdet(A, nprobe=4, steps=10).exact  # held: no products to pay for


def test_products_decide_for_a_function() -> None:
    A = _mat(300, 4) + 30 * torch.eye(300, dtype=F64)
    f = lambda v: A @ v  # noqa: E731
    x = torch.zeros(300, dtype=F64)
    assert not logabsdet(f, x, nprobe=2, steps=5).exact  # 300 products > 2 · 2 · 5
    r = logabsdet(f, x, nprobe=20, steps=10)  # 300 products <= 400: forming J is cheaper
    assert r.exact and float(r.value) == pytest.approx(float(torch.linalg.slogdet(A)[1]),
                                                       rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_auto_on_a_tensor_matches_torch(n: int, seed: int) -> None:
    A = _mat(n, seed)
    ref = torch.linalg.slogdet(A)
    r = logabsdet(A)
    assert r.exact and r.sign == float(ref.sign)
    assert float(r.value) == pytest.approx(float(ref.logabsdet), rel=1e-10, abs=1e-10)
    s = torch.linalg.svdvals(A)
    assert float(condition_number(A)) == pytest.approx(float(s[0] / s[-1]), rel=1e-8)


def test_a_small_max_iter_does_not_push_a_small_function_to_lanczos() -> None:
    A = _mat(30, 5) + 8 * torch.eye(30, dtype=F64)
    s = torch.linalg.svdvals(A)
    got = condition_number(lambda v: A @ v, torch.zeros(30, dtype=F64), max_iter=8)
    assert float(got) == pytest.approx(float(s[0] / s[-1]), rel=1e-10)
