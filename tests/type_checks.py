"""Checked by ``make typecheck`` (mypy): the public overloads give the precise result types.

Importing it also runs every call once on small inputs, so the calls stay valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from typing_extensions import assert_type

import jacobite
from jacobite.operators import SparseOperator

x = torch.tensor([1.0, 2.0], dtype=torch.float64)


def f(v: torch.Tensor) -> torch.Tensor:
    return v.sin()


def f_aux(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return v.sin(), v.sum()


assert_type(jacobite.jacobian(f, x, flat=True), torch.Tensor)
assert_type(jacobite.jacobian(f_aux, x, has_aux=True, flat=True), tuple[torch.Tensor, Any])
assert_type(jacobite.jacobian(f_aux, x, has_aux=True), tuple[Any, Any])
assert_type(jacobite.jacobian(f, x, sparse=True), SparseOperator)
assert_type(jacobite.jacobian(f, x, mode="reverse"), Any)
assert_type(jacobite.value_and_jacobian(f, x, flat=True), tuple[Any, torch.Tensor])
assert_type(jacobite.value_and_jacobian(f_aux, x, has_aux=True), tuple[Any, Any, Any])
assert_type(jacobite.value_and_jacobian(f, x), tuple[Any, Any])
assert_type(jacobite.vjp(f, x), tuple[Any, Callable[..., Any]])
assert_type(jacobite.vjp(f_aux, x, has_aux=True), tuple[Any, Callable[..., Any], Any])
assert_type(jacobite.jvp(f, (x,), (x,)), tuple[Any, Any])
assert_type(jacobite.jvp(f_aux, (x,), (x,), has_aux=True), tuple[Any, Any, Any])
