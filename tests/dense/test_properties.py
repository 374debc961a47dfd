"""Property tests: random shapes and random pytrees of inputs and outputs.

For every drawn problem: each block of the result has shape ``out_shape + in_shape``, the
structure is torch.func's (output tree of input trees), ``flat=True`` gives the ``(m, n)``
concatenation of those blocks in pytree order, and the values match ``torch.func.jacrev``.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.func import jacrev
from torch.utils._pytree import tree_flatten, tree_unflatten

import jacobite
from tests.battery import DT, assert_tree_close, flat_jacobian

SHAPES = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
OPS = ("sin", "square", "tanh", "sum", "mean_last", "cumsum0", "flip0", "softmax_last", "exp")


def _apply(op: str, x: torch.Tensor) -> torch.Tensor:
    if op == "sin":
        return torch.sin(x)
    if op == "square":
        return 0.5 * x ** 2
    if op == "tanh":
        return torch.tanh(x)
    if op == "exp":
        return torch.exp(0.3 * x)
    if op == "sum":
        return x.sum()
    if x.ndim == 0:  # the remaining ops need a dimension
        return 3.0 * x
    if op == "mean_last":
        return x.mean(-1)
    if op == "cumsum0":
        return torch.cumsum(x, 0)
    if op == "flip0":
        return torch.flip(x, (0,))
    return torch.softmax(x, -1)  # softmax_last


@st.composite
def containers(draw, n_leaves: int, depth: int = 0) -> Any:
    """A pytree skeleton with ``n_leaves`` slots (ints 0..n-1 mark the leaves, in order)."""
    kind = draw(st.sampled_from(["leaf", "tuple", "list", "dict"] if depth < 2 and n_leaves > 0
                                else ["leaf"]))
    if kind == "leaf" or (n_leaves == 1 and depth > 0):
        return "LEAF"
    # split the leaves into 1..3 children
    k = draw(st.integers(1, min(3, n_leaves)))
    cuts = sorted(draw(st.lists(st.integers(1, n_leaves - 1), min_size=k - 1, max_size=k - 1,
                                unique=True))) if n_leaves > 1 and k > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n_leaves], strict=True)]
    children = [draw(containers(s, depth + 1)) for s in sizes]
    if kind == "tuple":
        return tuple(children)
    if kind == "list":
        return list(children)
    return {f"k{i}": c for i, c in enumerate(children)}


def _count(skel: Any) -> int:
    return len(tree_flatten(skel)[0]) if skel != "LEAF" else 1


def _fill(skel: Any, leaves: list[Any]) -> Any:
    """Put ``leaves`` into the skeleton's slots, in pytree order."""
    if skel == "LEAF":
        return leaves[0]
    slots, spec = tree_flatten(skel)
    assert all(s == "LEAF" for s in slots) and len(slots) == len(leaves)
    return tree_unflatten(list(leaves), spec)


@st.composite
def problems(draw) -> dict[str, Any]:
    """Random arguments (pytrees), argnums, and an output program over the input leaves."""
    nargs = draw(st.integers(1, 3))
    arg_skeletons, arg_shapes = [], []
    for _ in range(nargs):
        n_leaves = draw(st.integers(1, 3))
        skel = draw(containers(n_leaves))
        skel_leaves = _count(skel)
        arg_skeletons.append(skel)
        arg_shapes.append([draw(SHAPES) for _ in range(skel_leaves)])
    diff = draw(st.lists(st.integers(0, nargs - 1), min_size=1, max_size=nargs, unique=True))
    argnums: Any = diff[0] if draw(st.booleans()) and len(diff) == 1 else tuple(diff)
    all_leaves = [(a, j) for a in range(nargs) for j in range(len(arg_shapes[a]))]
    n_out = draw(st.integers(1, 4))
    program = [(draw(st.sampled_from(OPS)), draw(st.sampled_from(all_leaves)),
                draw(st.none() | st.sampled_from(all_leaves))) for _ in range(n_out)]
    out_skel = draw(containers(n_out))
    if _count(out_skel) != n_out:  # containers() may collapse a single slot
        out_skel = "LEAF" if n_out == 1 else tuple("LEAF" for _ in range(n_out))
    return {
        "skeletons": arg_skeletons, "shapes": arg_shapes, "argnums": argnums,
        "program": program, "out_skel": out_skel, "seed": draw(st.integers(0, 2**31 - 1)),
        "mode": draw(st.sampled_from(["forward", "reverse", "auto"])),
        "chunk_size": draw(st.sampled_from([None, 1, 2, "auto"])),
    }


def _build(pb: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    g = torch.Generator().manual_seed(pb["seed"])
    args = []
    for skel, shapes in zip(pb["skeletons"], pb["shapes"], strict=True):
        leaves = [torch.randn(s, generator=g, dtype=DT) for s in shapes]
        args.append(_fill(skel, leaves))

    def f(*a: Any) -> Any:
        leaves_of = [tree_flatten(x)[0] for x in a]
        outs = []
        for op, (ai, li), other in pb["program"]:
            y = _apply(op, leaves_of[ai][li])
            if other is not None:
                y = y * (1 + 0.1 * leaves_of[other[0]][other[1]].sum())
            outs.append(y)
        return _fill(pb["out_skel"], outs)

    return f, tuple(args)


@given(problems())
def test_structure_shapes_and_values(pb: dict[str, Any]) -> None:
    f, args = _build(pb)
    argnums = pb["argnums"]
    J = jacobite.jacobian(f, *args, argnums=argnums, mode=pb["mode"],
                          chunk_size=pb["chunk_size"])
    ref = jacrev(f, argnums=argnums)(*args)
    assert_tree_close(J, ref, what="jacobian vs jacrev")  # same structure, values to 1e-12

    out = f(*args)
    x = tuple(args[i] for i in argnums) if isinstance(argnums, tuple) else args[argnums]
    out_leaves, in_leaves = tree_flatten(out)[0], tree_flatten(x)[0]
    blocks = tree_flatten(J)[0]
    assert len(blocks) == len(out_leaves) * len(in_leaves)
    for k, o in enumerate(out_leaves):
        for j, t in enumerate(in_leaves):
            assert blocks[k * len(in_leaves) + j].shape == o.shape + t.shape

    Jflat = jacobite.jacobian(f, *args, argnums=argnums, mode=pb["mode"],
                              chunk_size=pb["chunk_size"], flat=True)
    m = sum(o.numel() for o in out_leaves)
    n = sum(t.numel() for t in in_leaves)
    assert Jflat.shape == (m, n)
    torch.testing.assert_close(Jflat, flat_jacobian(J, out, x), rtol=1e-14, atol=1e-14)


@given(problems())
def test_value_and_jacobian_value_is_f(pb: dict[str, Any]) -> None:
    f, args = _build(pb)
    value, J = jacobite.value_and_jacobian(f, *args, argnums=pb["argnums"], mode=pb["mode"],
                                           chunk_size=pb["chunk_size"], flat=True)
    assert_tree_close(value, f(*args), rtol=1e-14, atol=1e-14, what="value")
    x = tuple(args[i] for i in pb["argnums"]) if isinstance(pb["argnums"], tuple) \
        else args[pb["argnums"]]
    ref = flat_jacobian(jacrev(f, argnums=pb["argnums"])(*args), value, x)
    torch.testing.assert_close(J, ref, rtol=1e-12, atol=1e-12)


@given(SHAPES, SHAPES, st.integers(0, 2**31 - 1), st.sampled_from(["forward", "reverse"]))
def test_linear_map_jacobian_is_the_matrix(in_shape, out_shape, seed, mode) -> None:
    """f(x) = reshape(A @ vec(x)): the flat Jacobian is exactly A (no oracle needed)."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.tensor(in_shape).prod()) if in_shape else 1
    m = int(torch.tensor(out_shape).prod()) if out_shape else 1
    A = torch.randn(m, n, generator=g, dtype=DT)
    x = torch.randn(in_shape, generator=g, dtype=DT)
    J = jacobite.jacobian(lambda v: (A @ v.reshape(-1)).reshape(out_shape), x, mode=mode,
                          flat=True)
    torch.testing.assert_close(J, A, rtol=1e-15, atol=1e-15)
    J = jacobite.jacobian(lambda v: (A @ v.reshape(-1)).reshape(out_shape), x, mode=mode)
    assert J.shape == tuple(out_shape) + tuple(in_shape)
    torch.testing.assert_close(J.reshape(m, n), A, rtol=1e-15, atol=1e-15)
