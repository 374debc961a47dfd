"""A progress bar for long fits of :class:`~jacobite.nn.JENNRegressor` (rich, loaded lazily).

``progress=None`` (auto) shows the bar only on an interactive terminal, outside pytest, and
only once a fit has run for :data:`DELAY` seconds, so short fits, tests and doctests print
nothing; ``True`` shows it from the start wherever rich can draw, ``False`` never.

>>> with FitProgress(False, total=10) as bar:
...     bar.update(1, 0.5)
>>> bar.shown
False
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any

__all__ = ["DELAY", "FitProgress"]

#: seconds a fit runs before the automatic bar appears
DELAY = 2.0


def _interactive() -> bool:
    """An interactive terminal, not a test run."""
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class FitProgress:
    """Context manager around a fit: ``update(iteration, loss)`` after each iteration."""

    def __init__(self, progress: bool | None, total: int, description: str = "fit") -> None:
        self.mode = progress
        self.total = total
        self.description = description
        self.start = time.perf_counter()
        self.shown = False
        self._bar: Any = None
        self._task: Any = None
        self._allowed = progress is True or (progress is None and _interactive())

    def __enter__(self) -> FitProgress:
        if self.mode is True:
            self._open()
        return self

    def _open(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("loss {task.fields[loss]:.3e}"), TimeElapsedColumn(),
                             transient=True)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, loss=float("nan"))
        self.shown = True

    def update(self, iteration: int, loss: float) -> None:
        """Record that ``iteration`` iterations are done and the loss is ``loss``."""
        if not self._allowed:
            return
        if self._bar is None:
            if time.perf_counter() - self.start < DELAY:
                return
            self._open()
        self._bar.update(self._task, completed=iteration, loss=loss)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
