"""The ``jacobite`` command line: every worked example of the reference texts, by command.

Run ``jacobite --help``. Every subcommand takes ``--json`` (one JSON object alone on stdout); bad
input prints one line to stderr and exits with status 2, never a traceback. Every subcommand runs
within ``--time-limit`` (120 s by default) and ``--memory-limit`` (2 GiB beyond what is loaded);
work that would exceed them is stopped with one line and status 2.
"""

from .main import main

__all__ = ["main"]
