"""Peak resident memory of a piece of code, measured in a fresh Python subprocess.

A benchmark's own process has already held (and the allocator may still hold) whatever earlier
benchmarks allocated, so peaks are measured in a child process: it runs ``setup``, records its
resident set size, runs and times ``work``, and reports ``ru_maxrss`` (the kernel's exact
high-water mark of its resident memory). The same child run without ``work`` is the baseline:
``peak_over_baseline`` is what ``work`` added on top of the setup (imports, weights, inputs).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

_MARK = "__MEMORY_RESULT__"

_TEMPLATE = """\
import json, os, resource, sys, time

def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def _hwm():
    # this process image's own high-water mark: ru_maxrss survives execve on Linux and so
    # carries the parent's resident size at fork time (a large benchmark runner's)
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

RESULT = {{}}
{threads}
{setup}
_start = _rss()
_t0 = time.perf_counter()
{work}
_seconds = time.perf_counter() - _t0
_peak = _hwm()
print({mark!r} + json.dumps({{"peak": _peak, "start": _start, "seconds": _seconds,
                               "result": RESULT}}, default=str))
"""


@dataclass
class Measurement:
    """One child run: peak and starting resident memory (bytes), time of ``work`` (seconds)."""

    peak_bytes: int
    start_bytes: int
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)

    def over(self, baseline: Measurement | None = None) -> int:
        """Peak resident memory that ``work`` added.

        The peak minus the lower of the baseline run's peak and this run's own resident size
        just before ``work``: the conservative choice (never understates what ``work`` added)
        should either reference have been pushed up by something else, such as a transient
        allocation during imports.
        """
        ref = self.start_bytes if baseline is None else min(baseline.peak_bytes, self.start_bytes)
        return self.peak_bytes - ref


def child_script(setup: str, work: str = "", *, threads: int | None = None) -> str:
    """The Python source a child runs; ``work`` may store JSON-able values in ``RESULT``."""
    return _TEMPLATE.format(
        threads=f"import torch; torch.set_num_threads({int(threads)})" if threads else "",
        setup=textwrap.dedent(setup), work=textwrap.dedent(work) or "pass", mark=_MARK)


def start(setup: str, work: str = "", *, threads: int | None = None) -> subprocess.Popen[str]:
    """Launch a child without waiting (see :func:`finish`)."""
    return subprocess.Popen([sys.executable, "-c", child_script(setup, work, threads=threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], *, timeout: float = 120.0) -> Measurement:
    """Wait for a child from :func:`start` and read its measurement."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"memory measurement ran over {timeout:.0f} s") from None
    for line in out.splitlines():
        if line.startswith(_MARK):
            d = json.loads(line[len(_MARK):])
            return Measurement(int(d["peak"]), int(d["start"]), float(d["seconds"]), d["result"])
    tail = "\n".join(err.strip().splitlines()[-5:])
    raise RuntimeError(f"memory measurement failed (exit {proc.returncode}):\n{tail}")


def measure(setup: str, work: str = "", *, threads: int | None = None,
            timeout: float = 120.0) -> Measurement:
    """Run ``setup`` then ``work`` in a fresh interpreter and return its measurement."""
    return finish(start(setup, work, threads=threads), timeout=timeout)


def self_peak_bytes() -> int:
    """This process's own resident high-water mark so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":  # pragma: no cover - manual check
    base = measure("import numpy as np")
    m = measure("import numpy as np", "a = np.ones(2**27); RESULT['sum'] = float(a.sum())")
    print(f"1 GiB of ones: {m.over(base) / 2**30:.2f} GiB over baseline in {m.seconds:.2f} s")
