"""The ``jacobite`` command line: every worked example of the reference texts, by command.

Run ``jacobite --help``. Every subcommand takes ``--json`` (one JSON object alone on stdout); bad
input prints one line to stderr and exits with status 2, never a traceback.
"""

from .main import main

__all__ = ["main"]
