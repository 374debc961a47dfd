"""batch_jacobian against vmap(jacrev) on the battery's per-sample ("batched") cases."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.func import jacrev, vmap
from torch.utils._pytree import tree_flatten

import jacobite
from jacobite.errors import ArgnumsError, JacobianTooLarge, NonFiniteInputError, ShapeError
from tests.battery import DT, Case, by_kind, flat_function, ids, sample_args

BATCHED = by_kind("batched")


def _oracle(case: Case, args: tuple[Any, ...], argnums: Any = None) -> Any:
    argnums = case.argnums if argnums is None else argnums
    return vmap(jacrev(case.fn, argnums=argnums), in_dims=case.in_dims)(*args)


def _batch_size(case: Case, args: tuple[Any, ...]) -> int:
    dims = case.in_dims if isinstance(case.in_dims, tuple) else (case.in_dims,) * len(args)
    return next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)


@pytest.mark.parametrize("flat", [False, True], ids=["tree", "flat"])
@pytest.mark.parametrize("chunk_size", [None, 1, "auto", 3], ids=lambda c: f"chunk{c}")
@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
@pytest.mark.parametrize("case", BATCHED, ids=ids)
def test_batch_jacobian_matches_vmap_jacrev(case: Case, mode: str, chunk_size: Any,
                                            flat: bool) -> None:
    args = case.args()
    J = jacobite.batch_jacobian(case.fn, *args, argnums=case.argnums, in_dims=case.in_dims,
                                mode=mode, chunk_size=chunk_size, flat=flat)
    ref = _oracle(case, args).detach()
    B = _batch_size(case, args)
    if flat:
        out0 = case.fn(*sample_args(case, args, 0))
        m = out0.numel()
        n = sample_args(case, args, 0)[case.argnums].numel()
        assert J.shape == (B, m, n)
        torch.testing.assert_close(J.detach(), ref.reshape(B, m, n), rtol=1e-12, atol=1e-12)
    else:
        assert J.shape == ref.shape
        torch.testing.assert_close(J.detach(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", BATCHED, ids=ids)
def test_batch_jacobian_is_the_per_sample_jacobian(case: Case) -> None:
    """Second oracle: each sample through jacobite.jacobian, and the numeric Jacobian."""
    args = case.args()
    value, J = jacobite.batch_jacobian(case.fn, *args, argnums=case.argnums,
                                       in_dims=case.in_dims, return_value=True)
    torch.testing.assert_close(value.detach(), vmap(case.fn, in_dims=case.in_dims)(*args).detach(),
                               rtol=1e-14, atol=1e-14)
    for b in range(_batch_size(case, args)):
        sample = sample_args(case, args, b)
        Jb = jacobite.jacobian(case.fn, *sample, argnums=case.argnums)
        torch.testing.assert_close(J[b].detach(), Jb.detach(), rtol=1e-13, atol=1e-13)
    g, v0 = flat_function(case, sample_args(case, args, 0))
    num = jacobite.numeric.jacobian(g, v0.detach(), method="richardson")
    flat0 = J[0].detach().reshape(num.jacobian.shape)
    assert bool(((flat0 - num.jacobian).abs() <= 1e-6 + 4 * num.error).all())


@pytest.mark.parametrize("case", BATCHED, ids=ids)
def test_batch_jacobian_small_budget(case: Case) -> None:
    args = case.args()
    ref = _oracle(case, args).detach()
    per_sample = ref[0].numel() * 8
    B = _batch_size(case, args)
    budget = B * per_sample + 2 * per_sample + 64  # just above the stack of results
    J = jacobite.batch_jacobian(case.fn, *args, argnums=case.argnums, in_dims=case.in_dims,
                                memory_budget=budget)
    torch.testing.assert_close(J.detach(), ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(JacobianTooLarge, match="memory_budget"):
        jacobite.batch_jacobian(case.fn, *args, argnums=case.argnums, in_dims=case.in_dims,
                                memory_budget=B * per_sample - 1)


def test_batch_jacobian_wrt_a_shared_argument() -> None:
    case = next(c for c in BATCHED if c.name == "batched_shared")
    args = case.args()
    J = jacobite.batch_jacobian(case.fn, *args, argnums=1, in_dims=case.in_dims)
    ref = _oracle(case, args, argnums=1)
    assert J.shape == (5, 3, 3, 3)
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)
    J2 = jacobite.batch_jacobian(case.fn, *args, argnums=(0, 1), in_dims=case.in_dims)
    ref2 = _oracle(case, args, argnums=(0, 1))
    assert isinstance(J2, tuple) and len(J2) == 2
    for a, b in zip(J2, ref2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_batch_jacobian_does_not_mix_samples() -> None:
    """normalize(x) mixes all entries of what it is given: the whole-batch Jacobian is wrong."""
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(40), dtype=DT)

    def f(v):
        return v / v.norm()

    J = jacobite.batch_jacobian(f, x)
    for b in range(3):
        r = x[b].norm()
        u = x[b] / r
        torch.testing.assert_close(J[b], (torch.eye(4, dtype=DT) - torch.outer(u, u)) / r,
                                   rtol=1e-12, atol=1e-12)


def test_batch_jacobian_pytree_sample() -> None:
    g = torch.Generator().manual_seed(41)
    p = {"a": torch.randn(4, 2, generator=g, dtype=DT), "b": torch.randn(4, 3, generator=g,
                                                                         dtype=DT)}

    def f(s):
        return torch.cat([torch.sin(s["a"]), s["b"] * s["a"].sum()])

    J = jacobite.batch_jacobian(f, p)
    ref = vmap(jacrev(f))(p)
    assert tree_flatten(J)[1] == tree_flatten(ref)[1]
    for k in ("a", "b"):
        torch.testing.assert_close(J[k], ref[k], rtol=1e-12, atol=1e-12)


def test_batch_jacobian_non_differentiated_arguments() -> None:
    """Integer labels and Python numbers that are not differentiated are allowed, like in
    jacobite.jacobian (only the arguments at argnums must be floating-point tensors)."""
    g = torch.Generator().manual_seed(42)
    x = torch.randn(4, 3, generator=g, dtype=DT)
    labels = torch.tensor([0, 2, 1, 1])

    def nll(v, label):
        return -torch.log_softmax(v, -1).gather(0, label.unsqueeze(0)).squeeze(0)

    J = jacobite.batch_jacobian(nll, x, labels)
    torch.testing.assert_close(J, vmap(jacrev(nll))(x, labels), rtol=1e-12, atol=1e-12)

    def scaled(v, s):
        return v * s

    J = jacobite.batch_jacobian(scaled, x, 3.0, in_dims=(0, None))
    torch.testing.assert_close(J, 3.0 * torch.eye(3, dtype=DT).expand(4, 3, 3))


def test_batch_jacobian_bad_inputs() -> None:
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(43), dtype=DT)
    with pytest.raises(ShapeError, match="batch size"):
        jacobite.batch_jacobian(lambda a, b: a * b, x, torch.ones(5, 3, dtype=DT))
    with pytest.raises(ShapeError, match="empty"):
        jacobite.batch_jacobian(torch.sin, x[:0])
    with pytest.raises(ArgnumsError, match="one per argument"):
        jacobite.batch_jacobian(lambda a, b: a * b, x, x, in_dims=(0,))
    bad = x.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(NonFiniteInputError, match="nan_to_num"):
        jacobite.batch_jacobian(torch.sin, bad)
