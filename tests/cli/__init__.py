"""Tests of the jacobite command line."""

from __future__ import annotations

from typing import Any


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``jacobite ARGV`` in-process: ``(exit status, stdout, stderr)``."""
    from jacobite.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
