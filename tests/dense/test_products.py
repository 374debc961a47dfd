"""jvp and vjp against torch.func and against the battery's Jacobians (J v, uᵀ J)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.func as tf
from torch.utils._pytree import tree_flatten, tree_map

import jacobite
from jacobite.errors import NonFiniteInputError, ShapeError
from tests.battery import (
    DT,
    Case,
    assert_tree_close,
    by_kind,
    dense_oracle,
    diff_inputs,
    flat_jacobian,
    ids,
)

PLAIN = by_kind("all", exclude=("batched",))


def _like(tree: Any, g: torch.Generator) -> Any:
    return tree_map(lambda t: torch.randn(t.shape, generator=g, dtype=t.dtype), tree)


def _flat(tree: Any) -> torch.Tensor:
    leaves = tree_flatten(tree)[0]
    return torch.cat([t.detach().reshape(-1) for t in leaves])


def _positions(case: Case) -> tuple[int, ...]:
    return case.argnums if isinstance(case.argnums, tuple) else (case.argnums,)


@pytest.mark.parametrize("case", PLAIN, ids=ids)
def test_jvp(case: Case) -> None:
    args = case.args()
    g = torch.Generator().manual_seed(11)
    tangents = _like(args, g)
    out, jv = jacobite.jvp(case.fn, args, tangents)
    ref_out, ref_jv = tf.jvp(case.fn, args, tangents)
    assert_tree_close(out, ref_out, what="jvp primal")
    assert_tree_close(jv, ref_jv, what="jvp tangent")
    # Second oracle: tangents only on the differentiated arguments give J @ v.
    pos = _positions(case)
    only = tuple(t if i in pos else tree_map(torch.zeros_like, t) for i, t in enumerate(tangents))
    _, jv_only = jacobite.jvp(case.fn, args, only)
    J = flat_jacobian(dense_oracle(case, args), out, diff_inputs(case, args)).detach()
    v = _flat(tuple(tangents[i] for i in pos))
    torch.testing.assert_close(_flat(jv_only), J @ v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", PLAIN, ids=ids)
def test_vjp(case: Case) -> None:
    args = case.args()
    g = torch.Generator().manual_seed(12)
    out, fn = jacobite.vjp(case.fn, *args)
    ref_out, ref_fn = tf.vjp(case.fn, *args)
    assert_tree_close(out, ref_out, what="vjp primal")
    u = _like(out, g)
    grads = fn(u)
    assert_tree_close(grads, ref_fn(u), what="vjp cotangent")
    assert_tree_close(fn(u), grads, rtol=0, atol=0, what="vjp_fn called twice")
    pos = _positions(case)
    J = flat_jacobian(dense_oracle(case, args), out, diff_inputs(case, args)).detach()
    torch.testing.assert_close(_flat(tuple(grads[i] for i in pos)), J.T @ _flat(u),
                               rtol=1e-12, atol=1e-12)


def test_jvp_has_aux() -> None:
    x = torch.tensor([0.5, -1.0], dtype=DT)

    def f(v):
        return torch.sin(v), {"sq": v ** 2}

    out, jv, aux = jacobite.jvp(f, (x,), (torch.ones_like(x),), has_aux=True)
    torch.testing.assert_close(jv, torch.cos(x))
    torch.testing.assert_close(aux["sq"], x ** 2)
    out, fn, aux = jacobite.vjp(f, x, has_aux=True)
    torch.testing.assert_close(out, torch.sin(x))
    torch.testing.assert_close(fn(torch.ones_like(x))[0], torch.cos(x))
    torch.testing.assert_close(aux["sq"], x ** 2)


def test_jvp_validates() -> None:
    x = torch.tensor([0.5, -1.0], dtype=DT)
    with pytest.raises(ShapeError, match="tuples"):
        jacobite.jvp(torch.sin, x, x)
    with pytest.raises(ShapeError, match="match"):
        jacobite.jvp(torch.sin, (x,), (torch.ones(3, dtype=DT),))
    with pytest.raises(ShapeError, match="one tangent per primal"):
        jacobite.jvp(torch.sin, (x,), (x, x))
    with pytest.raises(NonFiniteInputError, match="nan_to_num"):
        jacobite.jvp(torch.sin, (x * float("nan"),), (x,))
    with pytest.raises(NonFiniteInputError):
        jacobite.vjp(torch.sin, x * float("inf"))
    out, jv = jacobite.jvp(torch.sin, (x * float("nan"),), (x,), check_finite=False)
    assert bool(torch.isnan(out).all()) and bool(torch.isnan(jv).all())


def test_products_compose_to_the_jacobian() -> None:
    """Stacking jvp over the basis gives J; stacking vjp gives J too (independent of jacobian)."""
    g = torch.Generator().manual_seed(13)
    A = torch.randn(3, 4, generator=g, dtype=DT)
    x = torch.randn(4, generator=g, dtype=DT)

    def f(v):
        return torch.tanh(A @ v) * v[:3]

    cols = [jacobite.jvp(f, (x,), (e,))[1] for e in torch.eye(4, dtype=DT)]
    _, fn = jacobite.vjp(f, x)
    rows = [fn(e)[0] for e in torch.eye(3, dtype=DT)]
    J = jacobite.jacobian(f, x)
    torch.testing.assert_close(torch.stack(cols, 1), J, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(torch.stack(rows, 0), J, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(J, tf.jacrev(f)(x), rtol=1e-12, atol=1e-12)
