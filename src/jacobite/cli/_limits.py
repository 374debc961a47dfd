"""Every subcommand runs within a time limit and a memory limit.

Where the platform allows it (``os.fork`` and ``/proc``), the command runs in a child process
whose address space is capped with ``RLIMIT_AS`` at what it already uses plus the memory limit;
the parent relays the child's output and stops it at the time limit. Symbolic work (a huge
power, a tower of exponentials) runs in C for minutes without returning to Python, so only a
separate process can be stopped reliably. Elsewhere the command runs in the calling process
without limits.

>>> parse_bytes("512 MiB"), parse_bytes("2G"), parse_bytes("100MB")
(536870912, 2147483648, 100000000)
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import selectors
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import TextIO

from ..errors import InvalidOptionError

__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_TIME_LIMIT", "parse_bytes", "parse_seconds",
           "run_limited"]

#: Seconds a command may run (``--time-limit``).
DEFAULT_TIME_LIMIT = 120.0
#: Memory a command may allocate beyond what the command line itself has loaded
#: (``--memory-limit``).
DEFAULT_MEMORY_LIMIT = "2 GiB"
#: The smallest memory limit accepted.
MIN_MEMORY_LIMIT = 64 * 1024**2

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "k": 1024, "kib": 1024,
          "m": 1024**2, "mib": 1024**2, "g": 1024**3, "gib": 1024**3}


def parse_bytes(text: str) -> int:
    """``"512 MiB"`` -> 536870912 (``K``, ``M``, ``G`` are binary; ``KB``, ``MB``, ``GB``
    decimal)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise InvalidOptionError(f"cannot read --memory-limit {text!r}; write a positive size "
                                 "such as 512MiB or 2GiB")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < MIN_MEMORY_LIMIT:
        raise InvalidOptionError(f"--memory-limit {text!r} is below 64MiB, too little for the "
                                 "interpreter to work in; give a positive size of at least "
                                 "64MiB, e.g. --memory-limit 512MiB")
    return size


def parse_seconds(text: str) -> float:
    """``"2.5"`` -> 2.5: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise InvalidOptionError(f"cannot read --time-limit {text!r}; give a positive number of "
                                 "seconds, e.g. --time-limit 30")
    return value


def _cap_memory(extra: int) -> None:
    import resource

    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child(work: Callable[[], int], w_out: int, w_err: int, memory_limit: int,
           one_thread: bool, columns: int | None) -> None:
    code = 70
    try:
        if columns is not None:  # the output goes to the parent's terminal: keep its colours
            os.environ["FORCE_COLOR"] = "1"
            os.environ["COLUMNS"] = str(columns)
        if one_thread:  # OpenMP threads the parent started do not survive the fork
            import torch

            torch.set_num_threads(1)
        sys.stdout = io.TextIOWrapper(io.FileIO(w_out, "w"), encoding="utf-8",
                                      line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(w_err, "w"), encoding="utf-8",
                                      line_buffering=True)
        _cap_memory(memory_limit)
        code = work()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # work() reports its own errors, or re-raises for JACOBITE_DEBUG
        import traceback

        with contextlib.suppress(BaseException):
            traceback.print_exc(file=sys.stderr)
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # the reader may be gone
                stream.flush()
        os._exit(code)


class _Relay:
    """Copies a child's pipe into a text stream as it arrives."""

    def __init__(self, fd: int, target: TextIO) -> None:
        self.fd, self.target = fd, target
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pump(self) -> bool:
        """Copy what is available; False at the end of the stream."""
        chunk = os.read(self.fd, 65536)
        text = self.decoder.decode(chunk, final=not chunk)
        if text:
            self.target.write(text)
            self.target.flush()
        return bool(chunk)


def run_limited(work: Callable[[], int], time_limit: float, memory_limit: int,
                on_timeout: Callable[[], int], *, one_thread: bool = False) -> int:
    """``work()`` in a child process within the limits; its exit status (``-N`` when a signal
    ``N`` ended it).

    At the time limit the child is killed and ``on_timeout()`` gives the status. A closed
    output pipe (``jacobite tour | head``) stops the child quietly. ``one_thread``: torch
    computes on one thread in the child — needed when this process may already have run
    torch's OpenMP thread pool, which a forked child cannot use.
    """
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/statm"):
        return work()
    try:
        columns = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    except (AttributeError, ValueError, OSError):
        columns = None
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with warnings.catch_warnings():  # the child runs no thread of the parent's (see _child)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through its exit status
        os.close(r_out)
        os.close(r_err)
        _child(work, w_out, w_err, memory_limit, one_thread, columns)
    os.close(w_out)
    os.close(w_err)
    relays = {r_out: _Relay(r_out, sys.stdout), r_err: _Relay(r_err, sys.stderr)}
    deadline = time.monotonic() + time_limit
    sel = selectors.DefaultSelector()
    for fd in relays:
        sel.register(fd, selectors.EVENT_READ)
    timed_out = broken = interrupted = False
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(left, 1.0)):
                if not relays[key.fd].pump():
                    sel.unregister(key.fd)
    except BrokenPipeError:
        broken = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        sel.close()
        if timed_out or broken or interrupted:
            _kill(pid)
        _, status = os.waitpid(pid, 0)
        for fd in relays:
            os.close(fd)
    if broken:
        _quiet_stdout()
        return 0
    if interrupted:
        print("jacobite: interrupted", file=sys.stderr)
        return 130
    if timed_out:
        return on_timeout()
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
        os.kill(pid, signal.SIGKILL)


def _quiet_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush is
    silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass
