"""The composability harness: run one jacobite path under every torch transform.

A *path* is wrapped as ``fn(x)``: the jacobite call as a function of the differentiated input
``x`` (a tensor or a pytree of tensors) returning a tensor or a pytree of tensors. Its oracle
``ref(x)`` computes the same quantity with ``torch.func`` alone. :func:`check` then asserts, for
one transform, that jacobite composes like the oracle:

* ``autograd`` — ``torch.autograd.grad`` of a fixed random contraction of ``fn(x)``;
* ``grad`` — ``torch.func.grad`` of the same contraction;
* ``jacrev`` / ``jacfwd`` — the full derivative of ``fn`` (pytree out, pytree in);
* ``vmap`` — over a leading batch of three points, against a Python loop of ``ref``;
* ``compile`` — ``torch.compile`` (``backend="eager"``, graph breaks allowed), value only.

Everything is compared with :func:`tests.battery.assert_tree_close` at 1e-10 (float64).
Known failures of jacobite are declared per test file as :class:`Known` rules and turned into
strict ``xfail`` marks by :func:`params`, so each rule disappears with the fix it names.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.func import grad, jacfwd, jacrev, vmap
from torch.utils._pytree import tree_flatten, tree_map, tree_unflatten

from tests.battery import assert_tree_close

TRANSFORMS = ("autograd", "grad", "jacrev", "jacfwd", "vmap", "compile")
DIFF_TRANSFORMS = TRANSFORMS[:4]
MODES = ("forward", "reverse", "auto")
CHUNKS = (None, "auto", 1, 2)
CONFIGS = tuple(itertools.product(MODES, CHUNKS))
TOL = 1e-10

HAS_CUDA = torch.cuda.is_available()
DEVICES = (
    pytest.param("cpu", id="cpu"),
    pytest.param("cuda", id="cuda", marks=(pytest.mark.cuda,
                                           pytest.mark.skipif(not HAS_CUDA, reason="no CUDA"))),
)

Tree = Any


@dataclass(frozen=True)
class Known:
    """A known failure: every given field must match the test's parameters (None = any)."""

    reason: str
    path: str | tuple[str, ...] | None = None
    transform: str | tuple[str, ...] | None = None
    mode: str | tuple[str, ...] | None = None
    chunk: Any = ...  # ... = any; otherwise a value or a tuple of values
    case: str | tuple[str, ...] | None = None
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None

    def matches(self, path: str, transform: str, mode: Any, chunk: Any, case: str) -> bool:
        def hit(rule: Any, value: Any, any_: Any = None) -> bool:
            if rule is any_:
                return True
            return value in rule if isinstance(rule, tuple) else value == rule

        return (hit(self.path, path) and hit(self.transform, transform)
                and hit(self.mode, mode) and hit(self.chunk, chunk, ...)
                and hit(self.case, case))


def params(path: str, transforms: Iterable[str], configs: Iterable[tuple[Any, Any]],
           cases: Iterable[str], known: Sequence[Known]) -> list[Any]:
    """``pytest.param(transform, mode, chunk, case)`` for the product, xfail-marked by ``known``."""
    out = []
    for t, (mode, chunk), case in itertools.product(transforms, configs, cases):
        marks = [pytest.mark.xfail(strict=True, reason=k.reason, raises=k.raises)
                 for k in known if k.matches(path, t, mode, chunk, case)][:1]
        out.append(pytest.param(t, mode, chunk, case, marks=marks,
                                id=f"{t}-{mode}-{chunk}-{case}"))
    return out


# ----------------------------------------------------------------------------- helpers


def to(tree: Tree, device: str) -> Tree:
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, tree)


def weights_like(tree: Tree, seed: int = 7) -> Tree:
    """Fixed random weights shaped like ``tree`` (same dtypes and devices)."""
    g = torch.Generator().manual_seed(seed)
    return tree_map(lambda t: torch.randn(t.shape, generator=g, dtype=t.dtype).to(t.device),
                    tree)


def contract(tree: Tree, weights: Tree) -> torch.Tensor:
    """``Σ_leaves Σ w ⊙ leaf``: a scalar that depends on every entry of ``tree``."""
    leaves, _ = tree_flatten(tree)
    wl, _ = tree_flatten(weights)
    assert len(leaves) == len(wl), "output structure changed"
    return sum((a * w).sum() for a, w in zip(leaves, wl, strict=True))


def batch_of(x: Tree, size: int = 3) -> Tree:
    """``size`` nearby points stacked on a new leading dimension (kinks stay away)."""
    scales = (1.0, 0.9, 1.1, 0.95)[:size]
    shifts = (0.0, 0.05, -0.03, 0.02)[:size]
    return tree_map(lambda t: torch.stack([t * a + b for a, b in zip(scales, shifts,
                                                                      strict=True)]), x)


def point(X: Tree, i: int) -> Tree:
    return tree_map(lambda t: t[i], X)


def stack(trees: list[Tree]) -> Tree:
    leaves = [tree_flatten(t)[0] for t in trees]
    spec = tree_flatten(trees[0])[1]
    return tree_unflatten([torch.stack(col) for col in zip(*leaves, strict=True)], spec)


def autograd_grad(fn: Callable[[Tree], Tree], x: Tree, weights: Tree) -> Tree | None:
    """``torch.autograd.grad`` of ``contract(fn(x))`` w.r.t. every leaf of ``x``; ``None`` when
    the result is not connected to ``x`` at all (no ``grad_fn``)."""
    leaves, spec = tree_flatten(x)
    leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    s = contract(fn(tree_unflatten(leaves, spec)), weights)
    if not s.requires_grad:
        return None
    gs = torch.autograd.grad(s, leaves, allow_unused=True)
    gs = [torch.zeros_like(t) if g is None else g for g, t in zip(gs, leaves, strict=True)]
    return tree_unflatten(gs, spec)


def check(transform: str, fn: Callable[[Tree], Tree], ref: Callable[[Tree], Tree], x: Tree,
          *, what: str = "", tol: float = TOL) -> None:
    """Assert that ``transform`` of ``fn`` equals the same transform of the oracle ``ref``."""
    what = what or transform
    if transform in ("autograd", "grad"):
        w = weights_like(ref(x))
        expected = grad(lambda t: contract(ref(t), w))(x)
        if transform == "autograd":
            actual = autograd_grad(fn, x, w)
            if actual is None:  # fine only where torch's own result is constant in x too
                assert autograd_grad(ref, x, w) is None, f"{what}: result cut from x's graph"
                return
        else:
            actual = grad(lambda t: contract(fn(t), w))(x)
    elif transform == "jacrev":
        actual, expected = jacrev(fn)(x), jacrev(ref)(x)
    elif transform == "jacfwd":
        actual, expected = jacfwd(fn)(x), jacrev(ref)(x)
    elif transform == "vmap":
        X = batch_of(x)
        actual = vmap(fn)(X)
        expected = stack([ref(point(X, i)) for i in range(3)])
    elif transform == "compile":
        torch._dynamo.reset()
        actual = torch.compile(fn, backend="eager")(x)
        expected = ref(x)
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(f"unknown transform {transform!r}")
    assert_tree_close(actual, expected, rtol=tol, atol=tol, what=what)


def check_or_refuses(transform: str, fn: Callable[[Tree], Tree], ref: Callable[[Tree], Tree],
                     x: Tree, *, hints: tuple[str, ...], what: str = "",
                     tol: float = TOL) -> None:
    """:func:`check`, or a typed :class:`~jacobite.errors.JacobiteError` whose message names one
    of ``hints`` (the alternative to use) — the contract's two allowed outcomes."""
    from jacobite.errors import JacobiteError

    try:
        check(transform, fn, ref, x, what=what, tol=tol)
    except JacobiteError as exc:
        assert any(h in str(exc) for h in hints), f"{what}: {exc!r} names none of {hints}"
