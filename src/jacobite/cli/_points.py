"""Parsing ``--at x=1,y=2`` style points."""

from __future__ import annotations

from ..errors import ExpressionError


def parse_point(text: str | None) -> dict[str, str] | None:
    """``"x=1,y=1/2"`` -> ``{"x": "1", "y": "1/2"}`` (values are parsed exactly later).

    >>> parse_point("x=1, y=1/2")
    {'x': '1', 'y': '1/2'}
    """
    if text is None:
        return None
    out: dict[str, str] = {}
    if not text.strip():
        raise ExpressionError("--at is empty; write e.g. --at x=1,y=2")
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ExpressionError(f"--at {text!r} has an empty item (a stray or trailing "
                                  "comma); write e.g. --at x=1,y=2")
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ExpressionError(f"cannot read {part!r} in --at; write the point as "
                                  "name=value pairs separated by commas, e.g. --at x=1,y=2")
        if name.strip() in out:
            raise ExpressionError(f"--at gives {name.strip()!r} twice; give each variable once")
        out[name.strip()] = value.strip()
    return out


def check_list_text(text: str, what: str) -> None:
    """Refuse a comma-separated list with an empty item (``"x, y,"``, ``"x,,y"``).

    >>> check_list_text("x**2 + y, atan2(y, x)", "the expressions")
    >>> check_list_text("x, y,", "the expressions")
    Traceback (most recent call last):
    ...
    jacobite.errors.ExpressionError: the expressions 'x, y,' have an empty item (a stray ...
    """
    stripped = text.strip()
    if not stripped or stripped[0] == "," or stripped[-1] == "," or _has_empty_item(stripped):
        raise ExpressionError(f"{what} {text!r} have an empty item (a stray or trailing "
                              "comma); remove it")


def _has_empty_item(text: str) -> bool:
    import re

    return re.search(r",\s*,", text) is not None
