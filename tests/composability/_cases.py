"""Battery cases bound to their point: ``fn(x)`` of the differentiated input alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.battery import CASES, Case, diff_inputs

from ._harness import Tree, to

BY_NAME: dict[str, Case] = {c.name: c for c in CASES}


def bind(case: Case, device: str = "cpu", seed: int = 0
         ) -> tuple[Callable[..., Any], Callable[[Tree], tuple[Any, ...]], Tree]:
    """``(case.fn, args_at, x)``: ``args_at(x)`` rebuilds the argument tuple around ``x``."""
    args = to(case.args(seed), device)
    x = diff_inputs(case, args)

    def args_at(new: Tree) -> tuple[Any, ...]:
        full = list(args)
        if isinstance(case.argnums, tuple):
            for i, sub in zip(case.argnums, new, strict=True):
                full[i] = sub
        else:
            full[case.argnums] = new
        return tuple(full)

    return case.fn, args_at, x
