"""Malformed transforms and regions raise typed errors that name the fix."""

from __future__ import annotations

import pytest
import torch

from jacobite.errors import ArgumentTypeError, InvalidOptionError, ShapeError
from jacobite.transforms import Affine, Polar, Transform


def test_affine_checks_its_matrix_offset_and_names() -> None:
    with pytest.raises(ArgumentTypeError, match="array of numbers"):
        Affine("abc")
    with pytest.raises(ArgumentTypeError, match="array of numbers"):
        Affine(torch.eye(2), b="abc")
    with pytest.raises(ShapeError, match="needs 2 variable names"):
        Affine(torch.eye(2), variables=["u"])


def test_transform_checks_variables_coordinates_and_name() -> None:
    with pytest.raises(ShapeError, match="at least one variable"):
        Transform(lambda u: u, -1)
    with pytest.raises(ArgumentTypeError, match="coordinates must be"):
        Transform(lambda u: u, 2, coordinates=3)
    with pytest.raises(ArgumentTypeError, match="name must be a string"):
        Transform(lambda u: u, 2, name=3)


def test_unknown_region_variables_name_the_known_ones() -> None:
    with pytest.raises(InvalidOptionError, match="use only the variables"):
        Polar({"q": (0, 1)})
