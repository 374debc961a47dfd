"""The constant route (one recorded forward pass, one batched backward pass): the same Jacobian
as ``torch.func``, differentiable wherever ``torch.func``'s is, and no ``torch._dynamo``."""

from __future__ import annotations

import json
import subprocess
import sys

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch import nn
from torch.func import jacrev

import jacobite
from jacobite.dense import _constant

DT = torch.float64


def _exp_fit(t: torch.Tensor) -> torch.Tensor:
    return torch.tensor([1.3, 0.7, -0.2], dtype=DT)[0] * torch.exp(-0.7 * t) - 0.2


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 300), n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_matches_jacrev_on_small_maps(m: int, n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(m, n, generator=gen, dtype=DT)
    t = torch.linspace(0, 4, m, dtype=DT)

    def f(p: torch.Tensor) -> torch.Tensor:
        return torch.tanh(W @ p) * torch.exp(-p[0] * t) + p.square().sum()

    x = torch.randn(n, generator=gen, dtype=DT)
    ref = jacrev(f)(x)
    for _ in range(2):  # the first call plans, the second takes the express lane
        J = jacobite.jacobian(f, x)
        torch.testing.assert_close(J, ref, rtol=1e-13, atol=1e-13)
        assert not J.requires_grad


def test_the_constant_route_is_what_runs_for_a_plain_function() -> None:
    x = torch.tensor([0.5, -1.0], dtype=DT)
    assert _constant.available(x)
    value, J = _constant.reverse(lambda v: torch.stack([v[0] * v[1], v[1] ** 3]), x, 2**20, "f")
    assert value.tolist() == [-0.5, -1.0]
    assert J.tolist() == [[-1.0, 0.5], [0.0, 3.0]]


def test_not_taken_under_a_transform_or_for_an_x_that_requires_grad() -> None:
    x = torch.ones(2, dtype=DT)
    assert not _constant.available(x.clone().requires_grad_())
    with torch.no_grad():
        assert _constant.available(x.clone().requires_grad_())  # no graph is wanted
    seen: list[bool] = []
    torch.func.vmap(lambda v: seen.append(_constant.available(x)) or v)(x)
    assert seen == [False]


def test_jacobian_stays_differentiable_in_closed_over_parameters() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(3, 4).to(DT)
    x = torch.tensor([0.3, -0.2, 0.9], dtype=DT)
    f = lambda v: torch.tanh(lin(v))  # noqa: E731
    J = jacobite.jacobian(f, x)
    assert J.requires_grad
    (g,) = torch.autograd.grad(J.square().sum(), lin.weight)
    (ref,) = torch.autograd.grad(jacrev(f)(x).square().sum(), lin.weight)
    torch.testing.assert_close(g, ref, rtol=1e-13, atol=1e-13)
    with torch.no_grad():  # no graph wanted: a constant
        assert not jacobite.jacobian(f, x).requires_grad


def test_second_derivative_through_x_still_works() -> None:
    x = torch.tensor([0.3, -0.2], dtype=DT, requires_grad=True)
    f = lambda v: torch.stack([v[0] ** 3 * v[1], torch.sin(v[1])])  # noqa: E731
    (g,) = torch.autograd.grad(jacobite.jacobian(f, x).sum(), x)
    (ref,) = torch.autograd.grad(jacrev(f)(x).sum(), x)
    torch.testing.assert_close(g, ref, rtol=1e-14, atol=1e-14)


def test_cdist_is_taken_one_row_at_a_time() -> None:
    Y = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=DT)
    f = lambda v: torch.cdist(v.reshape(1, 2), Y, p=1.5).reshape(-1)  # noqa: E731
    x = torch.tensor([0.3, 0.1], dtype=DT)
    res = _constant.reverse(f, x, 2**20, "f")
    assert res is not None
    J = res[1]
    rows = [torch.autograd.functional.jacobian(lambda v, i=i: f(v)[i], x) for i in range(3)]
    torch.testing.assert_close(J, torch.stack(rows), rtol=1e-14, atol=1e-14)


def test_a_function_of_other_leaves_only_gives_zeros() -> None:
    w = torch.ones(3, dtype=DT, requires_grad=True)
    with torch.no_grad():
        J = jacobite.jacobian(lambda v: w * 2.0, torch.zeros(2, dtype=DT))
    assert J.tolist() == [[0.0, 0.0]] * 3


def test_first_reverse_jacobian_does_not_load_torch_dynamo() -> None:
    code = ("import sys, torch, jacobite\n"
            "jacobite.jacobian(lambda v: v.exp() * v[0], torch.ones(3, dtype=torch.float64))\n"
            "print(__import__('json').dumps('torch._dynamo' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    assert json.loads(out.splitlines()[-1]) is False


@pytest.mark.parametrize("m", [1, 50])
def test_exponential_fit_jacobian_matches_the_analytic_one(m: int) -> None:
    t = torch.linspace(0, 4, m, dtype=DT)
    y = _exp_fit(t)
    f = lambda p: p[0] * torch.exp(-p[1] * t) + p[2] - y  # noqa: E731
    p = torch.tensor([1.0, 1.0, 0.0], dtype=DT)
    e = torch.exp(-p[1] * t)
    exact = torch.stack([e, -p[0] * t * e, torch.ones_like(t)], dim=1)
    torch.testing.assert_close(jacobite.jacobian(f, p), exact, rtol=1e-15, atol=1e-15)


class _Repeats:
    def __init__(self, k: int) -> None:
        self.k = k

    def f(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat(self.k)


def test_a_cached_plan_is_not_found_again_through_a_reused_owner_id() -> None:
    x = torch.ones(2, dtype=DT)
    first = _Repeats(3)
    assert jacobite.jacobian_plan(first.f, x).m == 6
    old = id(first)
    del first
    for k in range(4, 400):  # CPython hands a freed object's address to the next one
        other = _Repeats(k)
        if id(other) == old:
            break
    assert jacobite.jacobian_plan(other.f, x).m == 2 * other.k
    torch.testing.assert_close(jacobite.jacobian(other.f, x), torch.eye(2, dtype=DT).repeat(
        other.k, 1))


class _Wrapper:
    """A per-call wrapper of a user's function, as a solver makes one for each solve."""

    calls = 0

    def __init__(self, fun: object, scale: float) -> None:
        self.fun, self.scale = fun, scale

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        _Wrapper.calls += 1
        return self.scale * self.fun(x)  # type: ignore[operator]

    def jacobian_identity(self) -> tuple[object, tuple[float]]:
        return self.fun, (self.scale,)


def test_a_wrapper_naming_its_identity_shares_one_probe_across_instances() -> None:
    fun = lambda v: torch.stack([v[0] * v[1], v[1].exp()])  # noqa: E731
    x = torch.tensor([0.3, -0.4], dtype=DT)
    ref = jacrev(fun)(x)
    jacobite.jacobian(_Wrapper(fun, 2.0).flat, x)  # probes once
    before = _Wrapper.calls
    for _ in range(3):  # new wrappers: the probe is found, only the Jacobian evaluates f
        torch.testing.assert_close(jacobite.jacobian(_Wrapper(fun, 2.0).flat, x), 2.0 * ref)
    assert _Wrapper.calls - before == 3
    other = _Wrapper(fun, 3.0)  # other state: probed again, and right
    torch.testing.assert_close(jacobite.jacobian(other.flat, x), 3.0 * ref)
    assert _Wrapper.calls - before == 5
