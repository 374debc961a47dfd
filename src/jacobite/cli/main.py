"""Entry point of the ``jacobite`` console script."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import JacobiteError
from ._app import EXIT_USAGE, Parser, cli_words, fail
from ._limits import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIME_LIMIT,
    parse_bytes,
    parse_seconds,
    run_limited,
)

if TYPE_CHECKING:
    from .commands import Command


def _register() -> dict[str, Command]:
    from . import commands

    return commands.REGISTRY


def build_parser(only: Collection[str] | None = None) -> Parser:
    """The parser; with ``only``, just those subcommands get their arguments (the others keep
    their name and help line), so that ``jacobite --help`` loads no command's dependencies."""
    from .. import __version__

    parser = Parser(prog="jacobite", description="The Jacobian toolkit for PyTorch — worked "
                    "examples of Jacobians from the command line. Every subcommand takes --json, "
                    "--time-limit and --memory-limit.")
    parser.add_argument("--version", action="version", version=f"jacobite {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, cmd in _register().items():
        p = sub.add_parser(name, help=cmd.HELP, description=cmd.HELP)
        if only is not None and name not in only:
            continue
        cmd.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.add_argument("--time-limit", metavar="SECONDS", default=None,
                       help=f"stop with an error after this many seconds (default "
                            f"{DEFAULT_TIME_LIMIT:g})")
        p.add_argument("--memory-limit", metavar="SIZE", default=None,
                       help=f"refuse work that needs more memory than this, e.g. 512MiB "
                            f"(default {DEFAULT_MEMORY_LIMIT.replace(' ', '')})")
        p.set_defaults(run=cmd.run)
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    text = " ".join(str(message).split())
    print(f"jacobite: warning: {text}", file=sys.stderr)


def _memory_error(memory: str) -> NoReturn:
    fail(f"this needs more memory than the memory limit ({memory}) allows; ask for less (a "
         "smaller power, shape or point), or raise it with --memory-limit SIZE")


def _run(args: argparse.Namespace, memory: str) -> int:
    """Run the subcommand; every failure becomes one line on stderr and exit status 2."""
    debug = bool(os.environ.get("JACOBITE_DEBUG"))
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return int(args.run(args) or 0)
        except BrokenPipeError:
            from ._limits import _quiet_stdout

            _quiet_stdout()
            return 0
        except JacobiteError as exc:
            fail(cli_words(str(exc)))
        except MemoryError:
            _memory_error(memory)
        except RecursionError:
            fail("the expression is nested too deeply to evaluate (a number or power with too "
                 "many digits, or a very deep tower); simplify it")
        except (ValueError, TypeError, ArithmeticError, RuntimeError, OverflowError) as exc:
            if debug:
                raise
            text = str(exc)
            if "integer string conversion" in text:
                fail("an exact number in the result has more than 4300 digits, too many to "
                     "print; ask for a smaller power or a numeric point")
            if "allocate" in text.lower() or "out of memory" in text.lower():
                _memory_error(memory)
            fail(cli_words(f"{type(exc).__name__}: {text}"))
        except KeyboardInterrupt:
            fail("interrupted")
        except Exception as exc:  # a command line answers in one line
            if debug:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (run again with JACOBITE_DEBUG=1 "
                 "for the traceback)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a tour example failed). Bad input
    prints one line on stderr and raises ``SystemExit(2)``."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # the command is the first word that is not an option (the top level has only options)
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(only=() if chosen is None else (chosen,))
    if not args_list:
        fail("no command given; try `jacobite --help` or `jacobite tour`")
    args = parser.parse_args(args_list)
    if getattr(args, "command", None) is None:
        fail("no command given; try `jacobite --help` or `jacobite tour`")
    try:
        seconds = parse_seconds(args.time_limit or str(DEFAULT_TIME_LIMIT))
        memory_text = args.memory_limit or DEFAULT_MEMORY_LIMIT
        memory = parse_bytes(memory_text)
    except JacobiteError as exc:
        fail(str(exc))

    def on_timeout() -> int:
        fail(f"`jacobite {args.command}` stopped at the time limit of {seconds:g} s; ask for "
             "less (a smaller expression, a looser tolerance, a smaller model) or raise it with "
             "--time-limit SECONDS")

    # called from Python (argv given), the caller may have used torch's thread pool already
    status = run_limited(lambda: _run(args, memory_text), seconds, memory, on_timeout,
                         one_thread=argv is not None)
    if status < 0:
        import signal

        fail(f"`jacobite {args.command}` was stopped by signal "
             f"{signal.Signals(-status).name}, most often because it needed more memory than "
             f"the memory limit ({memory_text}); ask for less or raise --memory-limit SIZE")
    if status == EXIT_USAGE:  # the child has printed its one line; exit as fail() does
        raise SystemExit(status)
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
