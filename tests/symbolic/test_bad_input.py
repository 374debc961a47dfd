"""Malformed arguments to the symbolic tools raise typed errors that name the fix."""

from __future__ import annotations

import pytest

pytest.importorskip("sympy")

from jacobite.errors import ArgumentTypeError, ExpressionError
from jacobite.symbolic import (
    determinant,
    parse,
    resolve_point,
    resolve_variables,
)


def test_resolve_variables_needs_parsed_expressions() -> None:
    with pytest.raises(ExpressionError, match="parse"):
        resolve_variables("x*y")
    with pytest.raises(ExpressionError, match="parse"):
        resolve_variables([object()])


def test_resolve_point_checks_variables_parameters_and_names() -> None:
    (x,) = resolve_variables(parse("x"), "x")
    with pytest.raises(ExpressionError, match="resolve_variables"):
        resolve_point({"x": 1}, None)  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="parameters must map"):
        resolve_point({"x": 1}, (x,), parameters=3)  # type: ignore[arg-type]
    with pytest.raises(ExpressionError, match="use only the variables x"):
        resolve_point({"q": 1}, (x,))
    with pytest.raises(ExpressionError, match="give a number"):
        resolve_point({"x": object()}, (x,))


def test_determinant_factor_is_a_flag() -> None:
    with pytest.raises(ArgumentTypeError, match="factor must be True or False"):
        determinant(["x*y", "x + y"], "x y", factor="yes")  # type: ignore[arg-type]
