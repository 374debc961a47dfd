"""One module per subcommand; each defines HELP, add_arguments(parser) and run(args)."""

from __future__ import annotations

import argparse
from typing import Protocol

from . import extrema, inspect, integrate, jacobian, softmax, tour


class Command(Protocol):
    """What the console script needs of a subcommand module."""

    HELP: str

    def add_arguments(self, p: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


REGISTRY: dict[str, Command] = {
    "jacobian": jacobian,
    "softmax": softmax,
    "extrema": extrema,
    "integrate": integrate,
    "inspect": inspect,
    "tour": tour,
}
