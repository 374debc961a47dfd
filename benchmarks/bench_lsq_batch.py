"""Many small least-squares fits at once: jacobite ``batch=True`` vs a SciPy loop vs Theseus.

B exponential fits ``y = a·e^(−kt) + c`` (50 points on ``t ∈ [0, 4]``; a ∈ [1, 3],
k ∈ [0.5, 2], c ∈ [0, 1] and the noise (σ = 0.01) drawn from a seeded generator; start
(1, 1, 0) for every fit), float64, 1 thread, for B = 1, 100, 1000 and 100 000:

- jacobite: ``jacobite.least_squares(fun, x0, args=(y,), batch=True)`` at its defaults,
  ``fun(p, y)`` mapping ``(B, 3)`` to ``(B, 50)`` with the per-fit data ``y`` passed through
  ``args`` (AD Jacobians per problem; data passed this way let a large batch run in chunks
  within the memory budget);
- SciPy LM: a Python loop of ``scipy.optimize.least_squares(method="lm")`` with the analytic
  Jacobian, over at most ``SCIPY_CAP`` fits (the time per fit is extrapolated to B; the
  section says where);
- Theseus (``theseus-ai`` 0.2.3, when it imports): ``LevenbergMarquardt`` on one
  ``AutoDiffCostFunction`` (``autograd_mode="vmap"``: per-fit Jacobians; its default
  "dense" mode differentiates across the batch) at its defaults otherwise (20 iterations).

Each cell runs in a fresh interpreter (``benchmarks/_memory.py``) after a warm-up solve of up to
100 fits: ms per fit (median of repeats for B ≤ 1000, one solve above), the share of fits whose
cost is within 1e-6 (relative) of SciPy LM's (over the fits SciPy solved), how many fits are
reported successful while not at that optimum, and the peak resident memory the solve added.
Targets: jacobite B = 1000 ≤ 0.10 ms per fit, B = 1 ≤ 1 ms, time linear in B.

    python -m benchmarks.bench_lsq_batch [--quick]
    python -m benchmarks.run --only lsq_batch --output /tmp/lsq_batch.md
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path

from . import _memory
from ._common import Section

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 100, 1000, 100_000)
QUICK_SIZES = (1, 100, 1000)
SCIPY_CAP = 2000
COST_RTOL = 1e-6
TARGET_B1000_MS = 0.10
TARGET_B1_MS = 1.0
TIMEOUT_S = 900.0

_DATA = """
import sys, time, statistics
sys.path.insert(0, {root!r})
import numpy as np
import torch
torch.set_num_threads(1)
B, M = {B}, 50
gen = torch.Generator().manual_seed(1234)
a = 1 + 2 * torch.rand(B, 1, generator=gen, dtype=torch.float64)
k = 0.5 + 1.5 * torch.rand(B, 1, generator=gen, dtype=torch.float64)
c = torch.rand(B, 1, generator=gen, dtype=torch.float64)
t = torch.linspace(0, 4, M, dtype=torch.float64)
y = a * torch.exp(-k * t) + c + 0.01 * torch.randn(B, M, generator=gen, dtype=torch.float64)
x0 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64).expand(B, 3).clone()
REPS = 5 if B <= 1000 else 1
"""

_SETUP = {
    "jacobite": """
import jacobite

def residuals(p, yb):
    return p[:, 0:1] * torch.exp(-p[:, 1:2] * t) + p[:, 2:3] - yb

def solve(rows):
    out = jacobite.least_squares(residuals, x0[rows], args=(y[rows],), batch=True)
    return out.cost, out.success

solve(slice(0, min(B, 100)))
""",
    "scipy": """
from scipy.optimize import least_squares
tn, yn = t.numpy(), y.numpy()
CAP = min(B, {cap})

def one(i):
    yi = yn[i]
    r = lambda p: p[0] * np.exp(-p[1] * tn) + p[2] - yi
    def jac(p):
        e = np.exp(-p[1] * tn)
        return np.stack([e, -p[0] * tn * e, np.ones_like(tn)], axis=1)
    res = least_squares(r, x0[i].numpy(), jac=jac, method="lm")
    return res.cost, res.success

def solve(rows):
    out = [one(i) for i in range(*rows.indices(B))]
    return torch.tensor([o[0] for o in out]), torch.tensor([o[1] for o in out])

solve(slice(0, min(B, 100)))
""",
    "theseus": """
import warnings
warnings.simplefilter("ignore")
import theseus as th

def solve(rows):
    yy = y[rows]
    n = yy.shape[0]
    p = th.Vector(3, name="p", dtype=torch.float64)
    tv, yv = th.Variable(t.expand(n, M).clone(), name="t"), th.Variable(yy, name="y")

    def err(optim_vars, aux_vars):
        q, tt, ys = optim_vars[0].tensor, aux_vars[0].tensor, aux_vars[1].tensor
        return q[:, 0:1] * torch.exp(-q[:, 1:2] * tt) + q[:, 2:3] - ys

    weight = th.ScaleCostWeight(torch.ones(1, 1, dtype=torch.float64))
    cost = th.AutoDiffCostFunction([p], err, M, aux_vars=[tv, yv], name="exp",
                                   autograd_mode="vmap", cost_weight=weight)
    objective = th.Objective(dtype=torch.float64)
    objective.add(cost)
    layer = th.TheseusLayer(th.LevenbergMarquardt(objective))
    with torch.no_grad():
        sol, info = layer.forward({{"p": x0[rows], "t": tv.tensor, "y": yy}},
                                  optimizer_kwargs={{"verbose": False}})
        q = sol["p"]
        r = q[:, 0:1] * torch.exp(-q[:, 1:2] * t) + q[:, 2:3] - yy
    ok = torch.tensor([s == th.NonlinearOptimizerStatus.CONVERGED for s in info.status])
    return 0.5 * r.square().sum(1), ok

solve(slice(0, min(B, 100)))
""",
}

_WORK = """
rows = slice(0, CAP) if "CAP" in globals() else slice(0, B)
times = []
for _ in range(REPS):
    t0 = time.perf_counter()
    cost, ok = solve(rows)
    times.append(time.perf_counter() - t0)
RESULT["seconds"] = statistics.median(times)
RESULT["fits"] = int(cost.numel())
RESULT["cost"] = cost.tolist()
RESULT["ok"] = [bool(v) for v in ok.tolist()]
"""


@dataclass
class Cell:
    """One solver at one B: seconds per fit, costs and success flags, peak memory added."""

    per_fit: float
    fits: int
    cost: list[float]
    ok: list[bool]
    peak: int


def _cell(solver: str, B: int) -> Cell:
    setup = _DATA.format(root=str(ROOT), B=B) + _SETUP[solver].format(cap=SCIPY_CAP)
    m = _memory.measure(setup, _WORK, timeout=TIMEOUT_S)
    r = m.result
    return Cell(r["seconds"] / r["fits"], r["fits"], r["cost"], r["ok"], m.over())


def jacobite_batch_why() -> str | None:
    """None when ``jacobite.least_squares`` takes ``batch``, else why the column is skipped."""
    import jacobite

    if "batch" not in inspect.signature(jacobite.least_squares).parameters:
        return "skipped: jacobite.least_squares has no batch parameter yet"
    return None


def theseus_why() -> str | None:
    """None when Theseus imports, else why its column is empty."""
    if importlib.util.find_spec("theseus") is None:
        return ("skipped: theseus-ai is not installed (`pip install --no-deps "
                "--no-build-isolation theseus-ai==0.2.3 torchlie torchkin urdf_parser_py`)")
    try:
        _memory.measure("import warnings\nwarnings.simplefilter('ignore')\nimport theseus")
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1]
        return f"skipped: theseus does not import ({last[:160]})"
    return None


def _quality(cell: Cell, ref: list[float]) -> tuple[float, int]:
    """(% of the fits SciPy solved that are within COST_RTOL of its cost, how many of those
    not at it are reported successful)."""
    k = min(len(ref), len(cell.cost))
    at = [cell.cost[i] <= ref[i] * (1 + COST_RTOL) + 1e-300 for i in range(k)]
    false_ok = sum(cell.ok[i] and not at[i] for i in range(k))
    return 100.0 * sum(at) / max(k, 1), false_ok


def run(quick: bool = False) -> Section:
    sizes = QUICK_SIZES if quick else SIZES
    skip = {"jacobite": jacobite_batch_why(), "scipy": None, "theseus": theseus_why()}
    sec = Section("Many exponential fits at once: jacobite batch=True vs a SciPy LM loop vs "
                  "Theseus",
                  ["B", "solver", "ms per fit", "% at SciPy LM's optimum",
                   "successful but not at it", "peak memory added (MiB)"])
    per_fit: dict[str, dict[int, float]] = {s: {} for s in skip}
    for B in sizes:
        cells: dict[str, Cell | str] = {}
        for solver, why in skip.items():
            if why is not None:
                cells[solver] = why
                continue
            try:
                cells[solver] = _cell(solver, B)
            except RuntimeError as exc:
                cells[solver] = "failed: " + " ".join(str(exc).split())[-200:]
        scipy = cells["scipy"]
        ref = scipy.cost if isinstance(scipy, Cell) else []
        for solver, cell in cells.items():
            name = {"jacobite": "jacobite batch=True", "scipy": "SciPy LM loop",
                    "theseus": "Theseus LM (vmap)"}[solver]
            if isinstance(cell, str):
                sec.rows.append([B, name, cell, "", "", ""])
                continue
            per_fit[solver][B] = cell.per_fit
            pct, false_ok = _quality(cell, ref)
            time_txt = f"{1e3 * cell.per_fit:.3g}"
            if solver == "scipy" and cell.fits < B:
                time_txt += f" (loop over {cell.fits} fits, extrapolated)"
            sec.rows.append([B, name, time_txt, f"{pct:.1f}" if ref else "–",
                             false_ok if ref else "–", f"{cell.peak / 2**20:.1f}"])
    jb = per_fit["jacobite"]
    notes = [
        f"Fits at SciPy LM's optimum: final cost ≤ SciPy LM's × (1 + {COST_RTOL:g}), over the "
        f"fits SciPy solved (at most {SCIPY_CAP}, the first ones); 'successful but not at it' "
        "counts the fits a solver reports successful (jacobite `success`, Theseus CONVERGED, "
        "SciPy `success`) whose cost is above that.",
        "Each cell is a fresh interpreter after a warm-up solve of up to 100 fits; times are "
        "medians of 5 solves for B ≤ 1000 and one solve above; peak memory is the resident "
        "high-water mark over the interpreter's size before the timed solves.",
    ]
    if quick:
        notes.append("**Quick run: B ≤ 1000 only.**")
    if jb:
        if 1000 in jb:
            v = 1e3 * jb[1000]
            notes.append(f"Target B = 1000 ≤ {TARGET_B1000_MS:g} ms per fit: "
                         + ("met" if v <= TARGET_B1000_MS else "**MISSED**") + f" ({v:.3g} ms).")
        if 1 in jb:
            v = 1e3 * jb[1]
            notes.append(f"Target B = 1 ≤ {TARGET_B1_MS:g} ms: "
                         + ("met" if v <= TARGET_B1_MS else "**MISSED**") + f" ({v:.3g} ms).")
        big = max(jb)
        if big >= 1000 and 1000 in jb and big != 1000:
            growth = jb[big] / jb[1000]
            notes.append(f"Linear in B: time per fit at B = {big} is {growth:.2f}× that at "
                         "B = 1000 (1 = linear): " + ("met" if growth <= 1.5 else "**MISSED**")
                         + ".")
    for solver, why in skip.items():
        if why is not None:
            notes.append(f"{solver}: {why}.")
    sec.notes += notes
    return sec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_lsq_batch",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="B ≤ 1000 only")
    args = ap.parse_args(argv)
    print(run(quick=args.quick).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
