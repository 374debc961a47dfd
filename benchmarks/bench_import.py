"""Start-up cost: ``import jacobite``, ``jacobite --help``, the first Jacobian; fresh processes.

Every sample is a new Python process (nothing cached in memory, modules already compiled to
bytecode), and each row is the median of several. Imports and first calls are timed inside the
process with ``time.perf_counter`` (interpreter start-up left out); ``jacobite --help`` is the
wall time of the whole console-script process, as a user waits for it.

Targets: ``import torch, jacobite`` at most 0.3 s beyond ``import torch``; ``jacobite --help``
at most 1 s; the first ``jacobite.jacobian`` call at most 0.5 s after the import. The first
call's rows come with torch.func's own first call on the same function: ``torch.func.vjp``
(reverse mode) imports ``torch._dynamo`` the first time it runs, about a second that any user of
torch.func pays once, so the overhead column is what jacobite adds to it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._common import Section

ROOT = Path(__file__).resolve().parents[1]

_TIMED = """
import time
t0 = time.perf_counter()
{setup}
t1 = time.perf_counter()
{call}
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

_F = "f = lambda v: torch.stack([v[0] ** 2 + v[1], v[0] * v[1], v[1].sin()])\n"
_X = "x = torch.tensor([1.0, 2.0], dtype=torch.float64)\n"


def _child(setup: str, call: str = "pass") -> tuple[float, float]:
    """(seconds of ``setup``, seconds of ``call``) in a fresh interpreter."""
    code = _TIMED.format(setup=setup, call=call)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=ROOT).stdout.split()
    return float(out[0]), float(out[1])


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("jacobite")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jacobite.cli"]


def _help_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([*_cli(), "--help"], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def _medians(probes: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Median seconds of each probe, sampled round-robin so that a busy moment hits all."""
    samples: dict[str, list[float]] = {k: [] for k in probes}
    for _ in range(runs):
        for k, fn in probes.items():
            samples[k].append(fn())
    return {k: statistics.median(v) for k, v in samples.items()}


def _first_call(setup: str, call: str) -> Callable[[], float]:
    return lambda: _child(setup, call)[1]


def run(quick: bool = False) -> Section:
    runs = 3 if quick else 7
    sec = Section(f"Start-up: import, --help and the first Jacobian (fresh processes, median of "
                  f"{runs})", ["what", "seconds", "compared with", "difference (s)", "target",
                               "met"])
    setup = "import torch\nimport jacobite\n" + _F + _X
    t = _medians({
        "torch": lambda: _child("import torch")[0],
        "alone": lambda: _child("import jacobite")[0],
        "both": lambda: _child("import torch\nimport jacobite")[0],
        "help": _help_seconds,
        "auto": _first_call(setup, "jacobite.jacobian(f, x)"),
        "jacrev": _first_call(setup, "torch.func.jacrev(f)(x)"),
        "forward": _first_call(setup, "jacobite.jacobian(f, x, mode='forward')"),
        "jacfwd": _first_call(setup, "torch.func.jacfwd(f)(x)"),
    }, runs)

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    extra = t["both"] - t["torch"]
    sec.rows += [
        ["`import torch`", t["torch"], "", "", "", ""],
        ["`import jacobite` (alone)", t["alone"], "", "", "", ""],
        ["`import torch, jacobite`", t["both"], "`import torch`", extra, "≤ +0.3",
         met(extra <= 0.3)],
        ["`jacobite --help` (whole process)", t["help"], "", "", "≤ 1", met(t["help"] <= 1.0)],
    ]
    for mode, peer, label in (("auto", "jacrev", "auto (reverse here)"),
                              ("forward", "jacfwd", "forward")):
        sec.rows.append([f"first `jacobite.jacobian`, mode {label}", t[mode],
                         f"first `torch.func.{peer}`: {t[peer]:.3g}", t[mode] - t[peer],
                         "≤ 0.5", met(t[mode] <= 0.5)])

    sec.notes.append("Run alone with `python -m benchmarks.run --only import --output PATH` (or "
                     "`--quick`). `import jacobite` loads its subpackages on first use; the "
                     "first call pays for loading `jacobite.dense` (with `jacobite.operators`, "
                     "no SciPy) and for torch.func's own first-call work.")
    sec.notes.append("torch.func.vjp imports torch._dynamo on its first call (torch's cost, "
                     "in both columns of the reverse row): a first reverse-mode Jacobian cannot "
                     "take less than that.")
    return sec
