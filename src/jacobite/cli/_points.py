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
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ExpressionError(f"cannot read {part!r} in --at; write the point as "
                                  "name=value pairs separated by commas, e.g. --at x=1,y=2")
        if name.strip() in out:
            raise ExpressionError(f"--at gives {name.strip()!r} twice; give each variable once")
        out[name.strip()] = value.strip()
    if not out:
        raise ExpressionError("--at is empty; write e.g. --at x=1,y=2")
    return out
