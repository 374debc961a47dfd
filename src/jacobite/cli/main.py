"""Entry point of the ``jacobite`` console script."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import JacobiteError
from ._app import Parser, fail

if TYPE_CHECKING:
    from .commands import Command


def _register() -> dict[str, Command]:
    from . import commands

    return commands.REGISTRY


def build_parser() -> Parser:
    from .. import __version__

    parser = Parser(prog="jacobite", description="The Jacobian toolkit for PyTorch — worked "
                    "examples of Jacobians from the command line. Every subcommand takes --json.")
    parser.add_argument("--version", action="version", version=f"jacobite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, cmd in _register().items():
        p = sub.add_parser(name, help=cmd.HELP, description=cmd.HELP)
        cmd.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args_list:
        fail("no command given; try `jacobite --help` or `jacobite tour`")
    args = parser.parse_args(args_list)
    if getattr(args, "command", None) is None:
        fail("no command given; try `jacobite --help` or `jacobite tour`")
    try:
        return int(args.run(args) or 0)
    except JacobiteError as exc:
        fail(str(exc))
    except (ValueError, TypeError, ArithmeticError) as exc:
        if os.environ.get("JACOBITE_DEBUG"):
            raise
        fail(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
