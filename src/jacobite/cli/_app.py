"""Plumbing shared by the subcommands: the parser, one-line errors, JSON and rich output."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_USAGE = 2


# what starts like a negative number (-2, -.5, -2e3, -1:1, -inf) is a value, never an option
_NEGATIVE_NUMBER = re.compile(r"^-\.?\d|^-(?i:inf|nan)")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``jacobite: error: …`` on stderr, exit status 2; negative
    numbers such as ``-2e3`` are values.

    >>> p = Parser(prog="demo")
    >>> _ = p.add_argument("z", nargs="+", type=float)
    >>> p.parse_args(["1", "-2e3", "-.5", "-inf"]).z
    [1.0, -2000.0, -0.5, -inf]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        hint = ""
        if "unrecognized arguments: -" in message or "expected one argument" in message:
            hint = "; an expression that starts with '-' goes after `--`, e.g. -- \"-x*y\""
        fail(f"{message} (see `{self.prog} --help`){hint}")


# the Python API's argument names, as the command line spells them
_CLI_WORDS = (
    (re.compile(r"method=['\"]newton['\"]"), "--method newton"),
    (re.compile(r"method=['\"]symbolic['\"]"), "--method symbolic"),
    (re.compile(r"\bx0=(\[[^\]]*\]|\.\.\.)?"), "--x0 X,Y,..."),
    (re.compile(r"\bbox=(\[[^\]]*\]|\.\.\.)?"), "--box LO:HI,..."),
    (re.compile(r"\bvariables=(\.\.\.|'[^']*'|\[[^\]]*\])?"), "--vars x,y,..."),
    (re.compile(r"\bproperties\(\)"), "the analysis of the Jacobian"),
    (re.compile(r"\btol="), "--tol "),
)


def cli_words(message: str) -> str:
    """Rewrite a Python API message in the command line's flags.

    >>> cli_words("pass variables=..., e.g. variables='x, y'")
    'pass --vars x,y,..., e.g. --vars x,y,...'
    >>> cli_words("use method='newton' with x0=... or box=...")
    'use --method newton with --x0 X,Y,... or --box LO:HI,...'
    """
    for pattern, words in _CLI_WORDS:
        message = pattern.sub(words, message)
    return message


def split_list(text: str, flag: str, example: str) -> list[str]:
    """The items of a comma-separated option value; an empty item (``"x,,y"``, a trailing
    comma) is refused.

    >>> split_list("x, y", "--vars", "x,y")
    ['x', 'y']
    """
    from ..errors import InvalidOptionError

    items = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in items):
        raise InvalidOptionError(f"{flag} {text!r} has an empty item (a stray or trailing "
                                 f"comma); write e.g. {flag} {example}")
    return items


def fail(message: str) -> NoReturn:
    line = " ".join(str(message).split())
    print(f"jacobite: error: {line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def plain(obj: Any) -> Any:
    """Convert tensors, arrays and numbers into JSON-friendly lists and floats."""
    import numpy as np  # loaded on use: `jacobite --help` needs neither NumPy nor torch
    import torch

    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def emit_json(obj: dict[str, Any]) -> None:
    print(json.dumps(plain(obj), indent=None))


def console() -> Any:
    from ..errors import require

    Console = require("rich.console", "cli").Console

    return Console(highlight=False, soft_wrap=True)


def matrix_table(title: str, rows: Any, fmt: Callable[[Any], str] = lambda v: f"{v:.6g}") -> Any:
    """A rich table for a matrix (list of lists of numbers or strings)."""
    from ..errors import require

    Table = require("rich.table", "cli").Table
    rows = plain(rows)
    if rows and not isinstance(rows[0], list):
        rows = [rows]
    table = Table(title=title, show_header=False, box=None, pad_edge=False)
    width = max((len(r) for r in rows), default=0)
    for _ in range(width):
        table.add_column(justify="right")
    for r in rows:
        table.add_row(*[v if isinstance(v, str) else fmt(v) for v in r])
    return table


def esc(text: Any) -> str:
    """Escape square brackets so rich prints user text (``[x, y]``) literally."""
    return str(text).replace("[", "\\[")
