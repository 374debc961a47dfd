"""Plumbing shared by the subcommands: the parser, one-line errors, JSON and rich output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np
import torch

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``jacobite: error: …`` on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")


def fail(message: str) -> NoReturn:
    line = " ".join(str(message).split())
    print(f"jacobite: error: {line}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def plain(obj: Any) -> Any:
    """Convert tensors, arrays and numbers into JSON-friendly lists and floats."""
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
