"""Small least-squares fits, one at a time: jacobite.least_squares against SciPy's, warm and cold.

Problems: the 27 NIST StRD nonlinear regressions from both starts (54 runs; skipped cleanly
without the data, see ``benchmarks/nist.py``) and the exponential fit
``y = a·e^(−kt) + c`` (3 parameters, 50 points on ``t ∈ [0, 4]``, a = 2.5, k = 1.3, c = 0.5,
noise 0.01 seeded, start (1, 1, 0)). Solvers, each at its defaults, float64, 1 thread:

- jacobite AD: ``jacobite.least_squares(r, x0)`` (the AD Jacobian ``jac="auto"``);
- jacobite analytic: the same with ``jac=`` the analytic Jacobian (the loop's own overhead);
- SciPy LM / TRF analytic: ``scipy.optimize.least_squares(method="lm" | "trf")`` on NumPy
  residuals with the analytic Jacobian (NumPy, derived symbolically from the model with SymPy);
- SciPy LM / TRF AD: the torch residual and ``torch.func.jacrev`` of it, wrapped for NumPy.

Warm time: the median of repeated solves after a warm-up; the totals sum the medians over
every run. First call: a fresh interpreter imports torch and jacobite, then times its first
``least_squares`` call on the exponential fit (median of 3 processes). Targets: the warm total
of jacobite AD ≤ 2× SciPy LM's (analytic), and the first call ≤ 150 ms.

    python -m benchmarks.bench_lsq_small [--quick] [--data DIR]
    python -m benchmarks.run --only lsq_small --output /tmp/lsq_small.md
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import nist
from ._common import Section

ROOT = Path(__file__).resolve().parent.parent
QUICK = ("Misra1a", "Chwirut2", "Lanczos3", "MGH09", "Bennett5")
SOLVERS = ("jac_ad", "jac_an", "lm_an", "lm_ad", "trf_an", "trf_ad")
LABELS = {"jac_ad": "jacobite AD", "jac_an": "jacobite analytic", "lm_an": "SciPy LM analytic",
          "lm_ad": "SciPy LM AD", "trf_an": "SciPy TRF analytic", "trf_ad": "SciPy TRF AD"}
TARGET_RATIO = 2.0
TARGET_FIRST_MS = 150.0
COST_RTOL = 1e-6


@dataclass
class Fit:
    """One least-squares problem in the forms each solver takes."""

    name: str
    start: int
    x0: np.ndarray
    r_torch: Callable[[torch.Tensor], torch.Tensor]
    r_np: Callable[[np.ndarray], np.ndarray]
    J_np: Callable[[np.ndarray], np.ndarray]
    m: int
    times: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    nfev: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Problems

def exponential_data(m: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(t, y)`` of the exponential fit: y = 2.5 e^(−1.3 t) + 0.5 + 0.01 N(0, 1), seeded."""
    t = np.linspace(0.0, 4.0, m)
    y = 2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * np.random.default_rng(seed).standard_normal(m)
    return t, y


def exponential_fit() -> Fit:
    t, y = exponential_data()
    tt, yt = torch.from_numpy(t), torch.from_numpy(y)

    def r_torch(p: torch.Tensor) -> torch.Tensor:
        return p[0] * torch.exp(-p[1] * tt) + p[2] - yt

    def r_np(p: np.ndarray) -> np.ndarray:
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    def J_np(p: np.ndarray) -> np.ndarray:
        e = np.exp(-p[1] * t)
        return np.stack([e, -p[0] * t * e, np.ones_like(t)], axis=1)

    return Fit("exponential", 1, np.array([1.0, 1.0, 0.0]), r_torch, r_np, J_np, t.size)


class _SymTorch:
    """The torch functions the NIST models call, on SymPy expressions."""

    def __init__(self, sympy: Any) -> None:
        self.exp, self.cos, self.sin, self.atan = sympy.exp, sympy.cos, sympy.sin, sympy.atan


class _Columns:
    """``x[:, k]`` of a two-column predictor (Nelson) as SymPy symbols."""

    def __init__(self, symbols: Any) -> None:
        self.symbols = symbols

    def __getitem__(self, key: Any) -> Any:
        return self.symbols[key[1]]


def _analytic(problem: nist.Problem) -> tuple[Callable[[np.ndarray], np.ndarray],
                                              Callable[[np.ndarray], np.ndarray]]:
    """NumPy residual and Jacobian of a NIST model, differentiated symbolically (SymPy)."""
    import sympy

    p = problem.n_params
    b = sympy.symbols(f"b0:{p}")
    two = problem.x.ndim == 2
    xs = sympy.symbols("x0:2") if two else sympy.Symbol("x")
    fn = nist.model(problem)
    src = inspect.getsource(fn).split("\n", 1)[1]  # the body of ``def _name(x, b):``
    expr_src = src.strip().removeprefix("return").strip()
    ns = {"torch": _SymTorch(sympy), "math": math, "TWO_PI": 2 * sympy.pi,
          "x": _Columns(xs) if two else xs, "b": b}
    expr = eval(expr_src, ns)  # the model's own expression, on symbols
    args = (*xs, *b) if two else (xs, *b)
    f = sympy.lambdify(args, expr, "numpy")
    grads = [sympy.lambdify(args, -sympy.diff(expr, bi), "numpy") for bi in b]
    cols = [problem.x[:, 0], problem.x[:, 1]] if two else [problem.x]
    y = nist.response(problem)
    m = y.size

    def r_np(v: np.ndarray) -> np.ndarray:
        return y - f(*cols, *v)

    def J_np(v: np.ndarray) -> np.ndarray:
        out = np.empty((m, p))
        for k, g in enumerate(grads):
            out[:, k] = g(*cols, *v)  # broadcasts a constant column
        return out

    return r_np, J_np


def nist_fits(names: list[str], directory: Path) -> list[Fit]:
    fits = []
    for name in names:
        prob = nist.load(name, directory)
        r_np, J_np = _analytic(prob)
        r_t = nist.residual(prob)
        x0 = prob.start1.astype(np.float64)
        err = np.abs(J_np(x0) - torch.func.jacrev(r_t)(torch.from_numpy(x0)).numpy()).max()
        if not err <= 1e-8 * max(1.0, float(np.abs(J_np(x0)).max())):
            raise AssertionError(f"{name}: analytic Jacobian differs from AD by {err:.3g}")
        for k, start in enumerate(prob.starts, start=1):
            fits.append(Fit(name, k, np.array(start, dtype=np.float64), r_t, r_np, J_np,
                            prob.n_obs))
    return fits


# ---------------------------------------------------------------------------------------------
# Solvers

def solver(kind: str, fit: Fit) -> Callable[[], tuple[float, int]]:
    """A no-argument solve of ``fit`` by ``kind``, returning (cost, nfev)."""
    from scipy.optimize import least_squares as scipy_lsq

    import jacobite

    x0 = fit.x0
    if kind.startswith("jac"):
        xt = torch.from_numpy(x0)
        kw: dict[str, Any] = {}
        if kind == "jac_an":
            kw["jac"] = lambda p: fit.J_np(p.numpy())

        def run_j() -> tuple[float, int]:
            res = jacobite.least_squares(fit.r_torch, xt, **kw)
            return float(res.cost), int(res.nfev)

        return run_j
    method = kind[:-3]
    if kind.endswith("_an"):
        fun, jac = fit.r_np, fit.J_np
    else:
        jr = torch.func.jacrev(fit.r_torch)

        def fun(v: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return fit.r_torch(torch.from_numpy(v)).numpy()

        def jac(v: np.ndarray) -> np.ndarray:
            return jr(torch.from_numpy(np.asarray(v, dtype=np.float64))).numpy()

    def run_s() -> tuple[float, int]:
        res = scipy_lsq(fun, x0, jac=jac, method=method)
        return float(res.cost), int(res.nfev)

    return run_s


def warm_time(call: Callable[[], Any], repeats: int, budget: float) -> float:
    """Median seconds of ``call`` after one warm-up, at most ``repeats`` samples or ``budget``
    seconds in all (at least 3 samples)."""
    call()
    samples: list[float] = []
    t_all = time.perf_counter()
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() - t_all < budget):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


FIRST_CALL = """
import time, json, sys
t0 = time.perf_counter()
import torch
import jacobite
t1 = time.perf_counter()
sys.path.insert(0, {root!r})
from benchmarks.bench_lsq_small import exponential_data
t, y = (torch.from_numpy(a) for a in exponential_data())
r = lambda p: p[0] * torch.exp(-p[1] * t) + p[2] - y
x0 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
t2 = time.perf_counter()
solve = jacobite.least_squares  # the first access imports jacobite.solvers
t3 = time.perf_counter()
solve(r, x0)
t4 = time.perf_counter()
solve(r, x0)
t5 = time.perf_counter()
print(json.dumps(dict(imports=t1 - t0, first=t4 - t2, solvers_import=t3 - t2, first_solve=t4 - t3,
                      second=t5 - t4)))
"""


def first_call(processes: int = 3) -> dict[str, float]:
    """Medians over fresh interpreters: seconds of the imports, of the first call (the lazy
    import of ``jacobite.solvers`` on first access, then the first solve) and the second."""
    runs = []
    code = FIRST_CALL.format(root=str(ROOT))
    for _ in range(processes):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


# ---------------------------------------------------------------------------------------------
# The benchmark

def run(quick: bool = False, data_dir: str | None = None) -> Section:
    torch.set_num_threads(1)
    fits = [exponential_fit()]
    directory = nist.data_dir(data_dir)
    have_nist = nist.available(directory)
    if have_nist:
        names = [n for n in nist.select(QUICK if quick else None)
                 if (directory / f"{n}.dat").is_file()]
        fits += nist_fits(names, directory)
    repeats, budget = (3, 0.5) if quick else (9, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fit in fits:
            for kind in SOLVERS:
                call = solver(kind, fit)
                fit.costs[kind], fit.nfev[kind] = call()
                fit.times[kind] = warm_time(call, repeats, budget)
    sec = Section(
        "Small least squares, one problem at a time: jacobite vs SciPy (warm ms per solve)",
        ["problem", "start", "m", "n", *(LABELS[k] for k in SOLVERS),
         "jacobite AD / SciPy LM analytic", "nfev jacobite / SciPy LM"])
    for fit in fits:
        sec.rows.append([fit.name, fit.start, fit.m, fit.x0.size,
                         *(1e3 * fit.times[k] for k in SOLVERS),
                         fit.times["jac_ad"] / fit.times["lm_an"],
                         f"{fit.nfev['jac_ad']} / {fit.nfev['lm_an']}"])
    totals = {k: sum(f.times[k] for f in fits) for k in SOLVERS}
    sec.rows.append(["**total**", "", "", "", *(1e3 * totals[k] for k in SOLVERS),
                     totals["jac_ad"] / totals["lm_an"], ""])
    best = [min(f.costs.values()) for f in fits]
    at_best = {k: sum(f.costs[k] <= b * (1 + COST_RTOL) + 1e-300 for f, b in
                      zip(fits, best, strict=True)) for k in SOLVERS}
    cold = first_call(2 if quick else 3)
    ratio = totals["jac_ad"] / totals["lm_an"]
    ratio_ad = totals["jac_ad"] / totals["lm_ad"]
    first_ms = 1e3 * cold["first"]
    runs = f" and {len(fits) - 1} NIST StRD runs" if have_nist else ""
    sec.notes += [
        f"Runs: the exponential fit{runs}"
        + ("" if have_nist else f" (NIST StRD skipped: no data at {directory}; set --data DIR "
           f"or ${nist.ENV_VAR})") + (" — **quick run: a few problems only**" if quick else "")
        + ". Each solver at its own defaults (jacobite: ftol = xtol = gtol = 1e-15 and "
        "geodesic acceleration; SciPy: 1e-8), so jacobite usually spends more evaluations.",
        "Warm total ratios (jacobite AD over): " + ", ".join(
            f"{LABELS[k]} {totals['jac_ad'] / totals[k]:.2f}×" for k in SOLVERS[2:])
        + f"; jacobite analytic over SciPy LM analytic "
        f"{totals['jac_an'] / totals['lm_an']:.2f}× (the loop's own overhead).",
        f"Runs whose final cost is within {COST_RTOL:g} (relative) of the best of the six: "
        + ", ".join(f"{LABELS[k]} {at_best[k]}/{len(fits)}" for k in SOLVERS) + ".",
        f"Target warm total ≤ {TARGET_RATIO:g}× SciPy LM (analytic Jacobian): "
        + ("met" if ratio <= TARGET_RATIO else "**MISSED**") + f" ({ratio:.2f}×; "
        f"{ratio_ad:.2f}× SciPy LM with the AD Jacobian).",
        f"First call in a fresh process after `import jacobite` (exponential fit, median of "
        f"{2 if quick else 3} processes): {first_ms:.0f} ms = the import of jacobite.solvers on "
        f"first access ({1e3 * cold['solvers_import']:.0f} ms) + the first solve "
        f"({1e3 * cold['first_solve']:.0f} ms; the second: {1e3 * cold['second']:.1f} ms); "
        f"`import torch, jacobite` before it: {cold['imports']:.2f} s. "
        f"Target ≤ {TARGET_FIRST_MS:g} ms: "
        + ("met" if first_ms <= TARGET_FIRST_MS else "**MISSED**") + ".",
    ]
    return sec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_lsq_small",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--data", metavar="DIR", help="directory of the NIST StRD .dat files")
    args = ap.parse_args(argv)
    print(run(quick=args.quick, data_dir=args.data).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
