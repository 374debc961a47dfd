"""NIST StRD nonlinear regression: jacobite.least_squares against SciPy's least_squares.

All 27 problems from both NIST starting points (54 runs), models in torch (``benchmarks/nist.py``),
float64, no per-problem tuning. Three solvers side by side in one process:

- (a) ``scipy.optimize.least_squares`` at its defaults (method "trf", 2-point finite differences);
- (b) the same with the exact Jacobian (``torch.func.jacrev`` of the residual) and
  ``ftol = xtol = gtol = 1e-15``;
- (c) ``jacobite.least_squares`` at its defaults (shown as "not available" until it exists).

Score: LRE = min over parameters of −log10(|b − c| / |c|), capped at 11 (c certified). Targets:
jacobite reaches LRE ≥ 6 on 54/54 runs, mean LRE ≥ 9.3, and no more residual plus
Jacobian evaluations in total than (b).

Data: ``--data DIR``, else ``$JACOBITE_NIST_DIR``, else ``../shared/data/nist_strd`` next to the
repository root; without it the section says "skipped".

    python -m benchmarks.bench_nist                         # full table to stdout
    python -m benchmarks.bench_nist --only MGH09 Bennett5   # some problems (for tuning)
    python -m benchmarks.run --only nist                    # as part of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

try:  # run as a module of the benchmarks package or as a script
    from . import nist
    from ._common import Section
except ImportError:  # pragma: no cover
    import nist  # type: ignore[no-redef]
    from _common import Section  # type: ignore[no-redef]

QUICK = ("Misra1a", "DanWood", "Nelson", "BoxBOD")
BIG_NFEV = 10_000  # (b) again with this budget where SciPy's default max_nfev = 100·p stopped it
SOLVE_TIMEOUT_S = 120.0  # per solve; a hung solver scores 0 instead of stalling the benchmark
TARGET_RUNS_DIGITS = 6.0
TARGET_MEAN_LRE = 9.3
SOLVERS = ("a", "b", "c")
LABELS = {"a": "SciPy defaults (FD)", "b": "SciPy exact J, tol 1e-15", "c": "jacobite defaults"}


@dataclass
class Outcome:
    """One solve: the estimate's LRE, evaluation counts, success flag, or the error it raised."""

    lre: float = 0.0
    nfev: int | None = None
    njev: int | None = None
    success: bool | None = None
    status: int | None = None
    error: str | None = None
    seconds: float = 0.0
    x: np.ndarray | None = None
    rss: float = math.nan  # residual sum of squares at x
    calls: int | None = None  # calls of the torch residual, counted by a wrapper

    @property
    def evals(self) -> int | None:
        if self.nfev is None:
            return None
        return int(self.nfev) + int(self.njev or 0)


# ---------------------------------------------------------------------------------------------
# Solvers


def jacobite_solver() -> tuple[Callable | None, str | None]:
    """``jacobite.least_squares`` (or ``jacobite.solvers[.lsq].least_squares``), else None."""
    import importlib

    why = "not available (no jacobite.least_squares yet)"
    for where in ("jacobite", "jacobite.solvers", "jacobite.solvers.lsq"):
        try:
            fn = getattr(importlib.import_module(where), "least_squares", None)
        except ModuleNotFoundError:
            continue
        except Exception as exc:  # an in-progress module that fails to import
            why = f"not available ({where}: {type(exc).__name__}: {exc})"
            continue
        if fn is not None:
            return fn, None
    return None, why


def _counting(r: Callable[[torch.Tensor], torch.Tensor], counter: list[int]
              ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``r`` that counts its calls (a Jacobian through torch.func calls it once per trace)."""

    def counted(b: torch.Tensor) -> torch.Tensor:
        counter[0] += 1
        return r(b)

    return counted


def _numpy_residual(r: Callable[[torch.Tensor], torch.Tensor], counter: list[int]):
    def fun(b: np.ndarray) -> np.ndarray:
        counter[0] += 1
        with torch.no_grad():
            return r(torch.as_tensor(np.asarray(b, dtype=np.float64))).numpy()

    return fun


def solve_scipy_fd(problem: nist.Problem, x0: np.ndarray) -> Outcome:
    from scipy.optimize import least_squares

    calls = [0]
    res = least_squares(_numpy_residual(nist.residual(problem), calls), x0)
    # nfev counts the residual calls outside finite differencing; njev the FD Jacobians.
    return Outcome(nfev=int(res.nfev), njev=int(res.njev or 0), success=bool(res.success),
                   status=int(res.status), x=np.asarray(res.x, dtype=np.float64))


def solve_scipy_exact(problem: nist.Problem, x0: np.ndarray,
                      max_nfev: int | None = None) -> Outcome:
    from scipy.optimize import least_squares

    calls = [0]
    r = _counting(nist.residual(problem), calls)
    jr = torch.func.jacrev(r)
    fcalls, jcalls = [0], [0]

    def jac(b: np.ndarray) -> np.ndarray:
        jcalls[0] += 1
        return jr(torch.as_tensor(np.asarray(b, dtype=np.float64))).detach().numpy()

    res = least_squares(_numpy_residual(r, fcalls), x0, jac=jac, method="trf",
                        ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=max_nfev)
    return Outcome(nfev=fcalls[0], njev=jcalls[0], success=bool(res.success),
                   status=int(res.status), x=np.asarray(res.x, dtype=np.float64),
                   calls=calls[0])


def solve_jacobite(fn: Callable, problem: nist.Problem, x0: np.ndarray) -> Outcome:
    calls = [0]
    res = fn(_counting(nist.residual(problem), calls), torch.as_tensor(x0, dtype=torch.float64))
    x = res.x.detach().cpu().numpy() if isinstance(res.x, torch.Tensor) else np.asarray(res.x)
    njev = getattr(res, "njev", None)
    return Outcome(nfev=int(res.nfev), njev=None if njev is None else int(njev),
                   success=bool(getattr(res, "success", False)),
                   x=np.asarray(x, dtype=np.float64).ravel(), calls=calls[0])


class _SolveTimeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise _SolveTimeout after ``seconds`` (main thread on Unix only; otherwise no limit)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _SolveTimeout(f"no result after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def guarded(solve: Callable[[], Outcome], certified: np.ndarray,
            rss: Callable[[np.ndarray], float] | None = None,
            timeout: float = SOLVE_TIMEOUT_S) -> Outcome:
    """Run one solve; any exception (or timeout) scores LRE 0 and keeps its message."""
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(), _time_limit(timeout):
            warnings.simplefilter("ignore")
            out = solve()
        out.lre = nist.lre(out.x, certified) if out.x is not None else 0.0
        if rss is not None and out.x is not None and out.x.shape == certified.shape:
            out.rss = rss(out.x)
    except Exception as exc:
        msg = " ".join(str(exc).split())
        out = Outcome(error=f"{type(exc).__name__}: {msg[:200]}")
    out.seconds = time.perf_counter() - t0
    return out


# ---------------------------------------------------------------------------------------------
# The benchmark


def _skipped(where: object, why: str = "NIST StRD data not found at") -> Section:
    return Section("NIST StRD nonlinear regression", ["status"],
                   [[f"skipped: {why} {where} (set --data DIR or ${nist.ENV_VAR})"]])


def _lre_cell(o: Outcome | None, footnote: int | None) -> str:
    if o is None:
        return "n/a"
    cell = f"{o.lre:.1f}"
    if o.error is not None and footnote is not None:
        cell += f" [{footnote}]"
    return cell


def _evals_cell(o: Outcome | None) -> str:
    if o is None or o.error is not None or o.evals is None:
        return "–"
    if o.njev is None:
        return f"{o.nfev} (njev ?)"
    return f"{o.evals} ({o.nfev}+{o.njev})"


def _flag(o: Outcome | None) -> str:
    if o is None:
        return "–"
    if o.error is not None:
        return "err"
    return "y" if o.success else "n"


def _rss_cell(o: Outcome | None, certified_rss: float) -> str:
    if o is None or not math.isfinite(o.rss):
        return "–"
    return f"{o.rss / certified_rss - 1:+.1e}"


def run(quick: bool = False, data_dir: str | None = None,
        only: Sequence[str] | None = None, detail: bool = False) -> Section:
    """Fit every NIST problem from both starts with (a), (b) and (c); one row per run.

    ``detail`` adds, for (b) and (c), the relative excess of the residual sum of squares over the
    certified one (a large excess: another local minimum; a tiny one with a low LRE: stopped
    early on a flat valley).
    """
    directory = nist.data_dir(data_dir)
    if not nist.available(directory):
        return _skipped(directory)
    names = nist.select(only or (QUICK if quick else None))
    missing = [n for n in names if not (directory / f"{n}.dat").is_file()]
    problems = [nist.load(n, directory) for n in names if n not in missing]
    if not problems:
        return _skipped(directory, f"none of {', '.join(names)} found in")

    jfn, jwhy = jacobite_solver()
    section = Section(
        title="NIST StRD nonlinear regression: jacobite.least_squares vs SciPy least_squares",
        headers=["problem", "level", "start", "n", "p", "LRE (a)", "LRE (b)", "LRE (c)",
                 "evals (b)", "evals (c)", "success a/b/c"]
        + (["RSS/cert − 1 (b)", "RSS/cert − 1 (c)"] if detail else []),
    )
    footnotes: list[str] = []
    checks: list[str] = []
    bad_models: list[str] = []
    results: dict[str, list[Outcome]] = {s: [] for s in SOLVERS}
    b_big: list[Outcome] = []  # (b), rerun with max_nfev = BIG_NFEV where it hit the default
    reruns: list[str] = []
    runs: list[tuple[str, int]] = []

    for prob in problems:
        ok, why = nist.check_transcription(prob)
        if not ok:
            bad_models.append(f"{prob.name} ({why})")
        elif not why.startswith("RSS agrees"):
            checks.append(f"{prob.name}: {why}")
        def rss_of(b: np.ndarray, p: nist.Problem = prob) -> float:
            return nist.rss(p, b)

        cert = prob.certified
        for k, x0 in enumerate(prob.starts, start=1):
            x0 = np.array(x0, dtype=np.float64)
            row_out: dict[str, Outcome | None] = {
                "a": guarded(lambda p=prob, x=x0: solve_scipy_fd(p, x), cert, rss_of),
                "b": guarded(lambda p=prob, x=x0: solve_scipy_exact(p, x), cert, rss_of),
                "c": (guarded(lambda p=prob, x=x0: solve_jacobite(jfn, p, x), cert, rss_of)
                      if jfn is not None else None),
            }
            ob = row_out["b"]
            rerun = None
            if ob is not None and ob.status == 0:
                rerun = guarded(lambda p=prob, x=x0: solve_scipy_exact(p, x, BIG_NFEV), cert,
                                rss_of)
                reruns.append(f"{prob.name} start {k}")
            b_big.append(rerun if rerun is not None else ob)  # type: ignore[arg-type]
            notes_idx: dict[str, int | None] = {}
            for s in SOLVERS:
                o = row_out[s]
                notes_idx[s] = None
                if o is not None:
                    results[s].append(o)
                    if o.error is not None:
                        footnotes.append(f"[{len(footnotes) + 1}] {prob.name} start {k}, "
                                         f"({s}) {LABELS[s]}: `{o.error}`")
                        notes_idx[s] = len(footnotes)
            runs.append((prob.name, k))
            lre_b, evals_b = _lre_cell(ob, notes_idx["b"]), _evals_cell(ob)
            if rerun is not None:
                lre_b += f" → {rerun.lre:.1f}†"
                evals_b += f" → {rerun.evals if rerun.evals is not None else '–'}†"
            section.rows.append([
                prob.name, prob.difficulty.lower(), k, prob.n_obs, prob.n_params,
                _lre_cell(row_out["a"], notes_idx["a"]), lre_b,
                _lre_cell(row_out["c"], notes_idx["c"]) if jfn is not None else "n/a",
                evals_b, _evals_cell(row_out["c"]),
                "/".join(_flag(row_out[s]) for s in SOLVERS),
                *([_rss_cell(ob, prob.certified_rss), _rss_cell(row_out["c"], prob.certified_rss)]
                  if detail else []),
            ])

    n_runs = len(runs)
    results["b+"] = b_big

    def good(s: str) -> int:
        return sum(o.lre >= TARGET_RUNS_DIGITS for o in results[s])

    def mean(s: str) -> float:
        return statistics.fmean(o.lre for o in results[s]) if results[s] else math.nan

    def total_evals(s: str) -> int | None:
        vals = [o.evals for o in results[s]]
        if not vals or any(v is None for v in vals):
            return None
        return sum(v for v in vals if v is not None)

    def fmt_total(s: str) -> str:
        t = total_evals(s)
        if t is None:
            errs = sum(o.error is not None for o in results[s])
            return f"– ({errs} runs failed)" if results[s] else "–"
        return str(t)

    have_c = jfn is not None
    blank = ["", "", "", ""]
    section.rows.append(["**runs with LRE ≥ 6**", *blank,
                         f"{good('a')}/{n_runs}", f"{good('b')}/{n_runs}",
                         f"{good('c')}/{n_runs}" if have_c else "n/a", "", "", ""])
    section.rows.append(["**mean LRE**", *blank, f"{mean('a'):.2f}", f"{mean('b'):.2f}",
                         f"{mean('c'):.2f}" if have_c else "n/a", "", "", ""])
    section.rows.append(["**min LRE**", *blank,
                         *(f"{min(o.lre for o in results[s]):.1f}" if results[s] else "n/a"
                           for s in SOLVERS), "", "", ""])
    section.rows.append(["**total evals (nfev + njev)**", *blank, "", "", "",
                         fmt_total("b"), fmt_total("c") if have_c else "n/a", ""])

    width = len(section.headers)
    for row in section.rows[-4:]:
        row.extend([""] * (width - len(row)))
    notes = section.notes
    notes.append(
        "LRE = min over parameters of −log10(|b − c|/|c|), capped at 11 (c = certified value); "
        "(a) SciPy `least_squares` at its defaults (trf, 2-point finite differences); (b) SciPy "
        "trf with the exact Jacobian (`torch.func.jacrev`) and ftol = xtol = gtol = 1e-15; (c) "
        "`jacobite.least_squares` at its defaults. Evals = residual + Jacobian evaluations "
        "(nfev + njev; for (b) counted by wrappers, for (c) as the result reports them). "
        "Levels are NIST's (lower, average, higher difficulty); n observations, p parameters.")
    if quick:
        notes.append(f"**Quick run: {len(problems)} problems only ({', '.join(names)}); the "
                     "targets below are checked on these runs only (the target's: all 54).**")
    elif only and not missing:
        notes.append(f"**Only {', '.join(names)}: the targets below are checked on these runs "
                     "only (the target's: all 54).**")
    if missing:
        notes.append(f"**Missing data files: {', '.join(missing)}.**")
    if bad_models:
        notes.append("**MODEL CHECK FAILED** (RSS at the certified parameters does not match the "
                     "certified RSS): " + "; ".join(bad_models))
    else:
        notes.append(f"Model check: at the certified parameters every residual sum of squares "
                     f"matches the certified one to ≥ 6 digits ({len(problems)}/{len(problems)})"
                     + (f"; {'; '.join(checks)}" if checks else "") + ".")
    if reruns:
        notes.append(
            f"† (b) stopped at SciPy's default max_nfev = 100·p on {len(reruns)} run(s) "
            f"({', '.join(reruns)}); after the arrow: the same solve with max_nfev = {BIG_NFEV}. "
            f"With that budget (b) reaches LRE ≥ 6 on {good('b+')}/{n_runs}, mean LRE "
            f"{mean('b+'):.2f}, {fmt_total('b+')} evals in all (the reference for (b): "
            "54/54, mean 9.3).")
    secs = {s: sum(o.seconds for o in results[s]) for s in SOLVERS}
    notes.append("Solve time in all: " + ", ".join(
        f"({s}) {secs[s]:.1f} s" for s in SOLVERS if results[s]) + ".")

    def total_calls(s: str) -> str:
        vals = [o.calls for o in results[s]]
        return "–" if not vals or None in vals else str(sum(v for v in vals if v is not None))

    notes.append("Calls of the residual function counted by a wrapper (each Jacobian through "
                 f"torch.func traces it once): (b) {total_calls('b')}"
                 + (f", (c) {total_calls('c')}" if have_c else "") + ".")
    if not have_c:
        notes.append(f"(c) jacobite.least_squares: {jwhy}; targets not evaluated.")
    else:
        g, m, tb, tc = good("c"), mean("c"), total_evals("b"), total_evals("c")
        misses = [f"{name} start {k} ({o.lre:.1f})" for (name, k), o in zip(runs, results["c"],
                                                                            strict=True)
                  if o.lre < TARGET_RUNS_DIGITS]
        met1 = g == n_runs
        notes.append(f"Target jacobite LRE ≥ 6 on {n_runs}/{n_runs} runs: "
                     f"{'met' if met1 else 'MISSED'} ({g}/{n_runs}"
                     + (f"; below 6: {', '.join(misses)}" if misses else "") + ").")
        notes.append(f"Target mean LRE ≥ {TARGET_MEAN_LRE}: "
                     f"{'met' if m >= TARGET_MEAN_LRE else 'MISSED'} ({m:.2f}; SciPy (b) "
                     f"{mean('b'):.2f}).")
        if tb is None or tc is None:
            notes.append("Target total evals ≤ SciPy (b): not evaluated (a solve failed or "
                         "reported no counts).")
        else:
            tbb = total_evals("b+")
            extra = (f"; {tc / tbb:.0%} of the {tbb} of (b) with max_nfev = {BIG_NFEV}"
                     if reruns and tbb else "")
            notes.append(f"Target total evals ≤ SciPy (b): {'met' if tc <= tb else 'MISSED'} "
                         f"({tc} vs {tb}, {tc / tb:.0%}{extra}).")
    notes.extend(footnotes)
    return section


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_nist",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--data", metavar="DIR",
                    help=f"directory of the .dat files (default ${nist.ENV_VAR} or "
                         f"{nist.DEFAULT_DIR})")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="problems to run (case-insensitive), e.g. MGH09 Bennett5")
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    ap.add_argument("--detail", action="store_true",
                    help="add the RSS excess over the certified RSS for (b) and (c)")
    args = ap.parse_args(argv)
    try:
        section = run(quick=args.quick, data_dir=args.data, only=args.only, detail=args.detail)
    except ValueError as exc:
        ap.error(str(exc))
    print(section.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
