"""Pytree plumbing shared by the dense transforms: argnums, leaves, validation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from .. import _validate
from ..errors import ArgnumsError, DtypeError, NonFiniteInputError, OutputTypeError
from ._probe import own_read

Argnums = int | tuple[int, ...]


def normalize_argnums(argnums: Argnums, nargs: int) -> tuple[tuple[int, ...], bool]:
    """Return (positions, is_tuple) with negative positions resolved; raise ArgnumsError."""
    if nargs == 0:
        raise ArgnumsError(
            "no arguments to differentiate with respect to; call e.g. jacobian(f, x) with x a "
            "tensor"
        )
    return _validate.argnums(argnums, nargs), isinstance(argnums, (tuple, list))


@dataclass(frozen=True)
class Flat:
    """Leaves of a pytree of tensors with the bookkeeping to rebuild it."""

    leaves: tuple[torch.Tensor, ...]
    spec: TreeSpec
    shapes: tuple[torch.Size, ...] = field(init=False)
    sizes: tuple[int, ...] = field(init=False)
    numel: int = field(init=False)

    def __post_init__(self) -> None:  # computed once: these are read on every hot path
        object.__setattr__(self, "shapes", tuple(t.shape for t in self.leaves))
        sizes = tuple(t.numel() for t in self.leaves)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "numel", sum(sizes))

    def unflatten(self, leaves: Sequence[Any]) -> Any:
        if self.spec is LEAF_SPEC:
            return leaves[0]
        return tree_unflatten(list(leaves), self.spec)


LEAF_SPEC = tree_flatten(0)[1]


def flatten(tree: Any) -> tuple[list[Any], TreeSpec]:
    """``tree_flatten`` with a fast path for a bare tensor (the common case)."""
    if isinstance(tree, torch.Tensor):
        return [tree], LEAF_SPEC
    return tree_flatten(tree)


under_vmap = _validate.under_vmap


def all_finite(t: torch.Tensor) -> bool:
    """True when every entry is finite: one reduction, exact check only if the sum overflows.

    Under ``vmap`` no value can be read, so the check cannot run there and passes: a NaN then
    flows into the result as NaN, never as a wrong finite number. A tensor on the ``meta``
    device has no values at all and passes too (its Jacobian is a meta tensor of the right shape).
    """
    if t.numel() == 0 or t.is_meta or under_vmap(t):
        return True
    with own_read():
        if math.isfinite(t.sum().item()):  # a NaN or Inf entry always makes the sum non-finite
            return True
        return bool(torch.isfinite(t).all())


def flatten_inputs(tree: Any, what: str, *, check_finite: bool) -> Flat:
    """Flatten differentiable inputs, checking they are finite floating-point tensors."""
    leaves, spec = flatten(tree)
    if not leaves:
        raise ArgnumsError(
            f"{what} holds no tensors; differentiate with respect to a tensor argument")
    for i, t in enumerate(leaves):
        where = what if len(leaves) == 1 else f"{what} (leaf {i})"
        if not isinstance(t, torch.Tensor):
            raise ArgnumsError(
                f"{where} is a {type(t).__name__}, not a tensor; wrap it with torch.tensor(..., "
                "dtype=torch.float64) or leave it out of argnums"
            )
        if not (t.is_floating_point() or t.is_complex()):
            raise DtypeError(
                f"{where} has dtype {t.dtype}, which cannot be differentiated; convert it with "
                "x.double() (or x.float())"
            )
        if t.is_complex():
            raise DtypeError(
                f"{where} is complex ({t.dtype}); jacobite's dense Jacobians are real — split it "
                "into real and imaginary parts with torch.view_as_real"
            )
        if check_finite and not all_finite(t):
            raise NonFiniteInputError(
                f"{where} contains NaN or Inf; a Jacobian there is meaningless — clean the input "
                "(torch.nan_to_num) or pass check_finite=False to skip this check"
            )
    return Flat(tuple(leaves), spec)


def flatten_outputs(out: Any, fname: str) -> Flat:
    """Flatten f's output, checking it is a (pytree of) differentiable tensor(s)."""
    leaves, spec = flatten(out)
    if not leaves:
        raise OutputTypeError(
            f"{fname} returned {type(out).__name__} with no tensors; return a tensor")
    for i, t in enumerate(leaves):
        where = f"{fname} returned" if len(leaves) == 1 else f"{fname}'s output leaf {i} is"
        if not isinstance(t, torch.Tensor):
            raise OutputTypeError(
                f"{where} a {type(t).__name__}, not a tensor; return torch tensors "
                "(e.g. torch.stack([...]) instead of a Python list of numbers)"
            )
        if not t.is_floating_point():
            raise DtypeError(
                f"{where} a tensor of dtype {t.dtype}, which has no derivative; return a "
                "floating-point tensor (integer outputs come from rounding, argmax or comparisons)"
            )
    return Flat(tuple(leaves), spec)


def function_name(f: Callable[..., Any]) -> str:
    name = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__
    return "f" if name == "<lambda>" else name


def substitute(args: tuple[Any, ...], positions: tuple[int, ...], is_tuple: bool,
               spec: TreeSpec, leaves: Sequence[torch.Tensor]) -> tuple[Any, ...]:
    """Rebuild the positional arguments with the differentiated leaves replaced."""
    if not is_tuple and spec is LEAF_SPEC:
        new = list(args)
        new[positions[0]] = leaves[0]
        return tuple(new)
    tree = tree_unflatten(list(leaves), spec)
    new = list(args)
    if is_tuple:
        for p, sub in zip(positions, tree, strict=True):
            new[p] = sub
    else:
        new[positions[0]] = tree
    return tuple(new)
