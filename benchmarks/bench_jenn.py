"""Jacobian-enhanced training: jacobite.nn (``sobolev_loss``, ``JENNRegressor``) beside jenn 2.1.1.

Four tables, float64, 1 thread; every fit is seeded and both libraries see the same data.
R² is pooled over columns (``_jenn_cases.r2``), for the values and for the partials, on test
points that were not trained on.

1. Rosenbrock 2-D on [−2, 2]², 25 Latin-hypercube points, nets 2-20-20-20-1 tanh, at most
   3000 iterations, 1000 uniform test points: jenn (Adam, γ = 1) and ``JENNRegressor``.
   Targets: jacobite R² ≥ 0.99 (values) and ≥ 0.97 (partials). Also the time of one Adam
   step on the Jacobian-enhanced loss over one on the values-only loss (``sobolev_loss``
   with and without ``dydx``, same net, median of interleaved repeats): target ≤ 1.6×.
2. jenn's own demos with jenn's demo settings — x·sin(x) (4 grid points, 1-12-1, λ = 0.1,
   1000 Adam steps at α = 0.05, no normalisation) and Rastrigin 2-D on [−1, 1.5]² (100
   random points, 2-24-24-1, 10 000 Adam steps at α = 1e-3, λ = 1e-4, normalised): test R²
   and fit time of both. Target: jacobite's R² as good or better in at most half jenn's time.
3. Sample efficiency, Rosenbrock 10-D on [−1, 1]¹⁰: the test R² of a values-only
   ``JENNRegressor`` on N points, and the fewest points N' (of a grid) with which the
   Jacobian-enhanced one reaches it. Target N' ≤ N/5.
4. Many inputs and outputs: a smooth map 100 → 100 (``_jenn_cases.ridge_map``): one Adam
   step on ``sobolev_loss(mode="projected", k=4)`` vs ``mode="full"`` (100 Jacobian
   products per sample), target ≥ 5× cheaper; and the test R² after the same number of steps
   (equal accuracy).

    python -m benchmarks.run --only jenn --output /tmp/jenn.md   # [--quick]
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from . import _jenn_cases as jc
from . import _jenn_torch as jt
from ._common import Section, median, met
from .bench_dense_overhead import bench_clock, clock_note


def _clock() -> float:
    """The benchmarks' clock (process CPU time when single-threaded), read now."""
    return bench_clock()()


def _have_jenn() -> bool:
    return importlib.util.find_spec("jenn") is not None


def _opt(reg: Any) -> str:
    """The optimizer a fitted JENNRegressor ran."""
    return str(getattr(reg, "optimizer_", "?"))


def _fmt_settings(kw: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items()) or "defaults"


def _warm_up() -> None:
    """One tiny fit of each library (and of each of jacobite's optimizers) first, so lazy
    imports and first-call set-up are not timed (constructing the first ``torch.optim``
    optimizer of a process imports ``torch._dynamo``, about a second)."""
    d = jc.sample_grid(jc.SINUSOID, 4)
    for opt in ("lm", "lbfgs", "adam"):
        jt.jacobite_outcome(d, d, hidden=(4,), max_iter=2, seed=0, progress=False,
                            optimizer=opt)
    if _have_jenn():
        jc.jenn_fit(d, [1, 4, 1], max_iter=2)


def _pair_fits(jenn_call: Callable[[], jc.Outcome] | None,
               jac_calls: Sequence[Callable[[], tuple[jc.Outcome, Any]]],
               repeats: int) -> tuple[jc.Outcome | None, list[tuple[jc.Outcome, Any]]]:
    """Run the fits ``repeats`` times interleaved; each outcome's seconds is the median."""
    j_runs: list[jc.Outcome] = []
    runs: list[list[tuple[jc.Outcome, Any]]] = [[] for _ in jac_calls]
    for _ in range(repeats):
        if jenn_call is not None:
            j_runs.append(jenn_call())
        for call, acc in zip(jac_calls, runs, strict=True):
            acc.append(call())
    j = None
    if j_runs:
        j = j_runs[-1]
        j.seconds = median([o.seconds for o in j_runs])
    out = []
    for acc in runs:
        o, reg = acc[-1]
        o.seconds = median([a[0].seconds for a in acc])
        out.append((o, reg))
    return j, out


# ---------------------------------------------------------------------------------------------
# The four tables


def rosenbrock_2d(quick: bool) -> Section:
    p = jc.ROSENBROCK_2D
    train, test = jc.sample_lhs(p, 25, seed=0), jc.sample_uniform(p, 200 if quick else 1000, 1)
    iters = 300 if quick else 3000
    layers = [2, 20, 20, 20, 1]
    jenn_kw: dict[str, Any] = dict(alpha=1e-3, gamma=1.0, is_normalize=True, max_iter=iters,
                                   random_state=0)
    lbfgs_kw: dict[str, Any] = dict(max_iter=iters)
    adam_kw: dict[str, Any] = dict(optimizer="adam", lr=1e-2, max_iter=iters)
    have = _have_jenn()
    sec = Section("bench_jenn: Rosenbrock 2-D, 25 training points, 2-20-20-20-1 tanh",
                  ["library", "settings", "iterations", "fit s", "R² values", "R² partials"])
    reps = 1 if quick else 3
    jcalls = [functools.partial(jt.jacobite_outcome, train, test, hidden=(20, 20, 20), seed=0,
                                progress=False, **kw) for kw in (lbfgs_kw, adam_kw)]
    jcall = functools.partial(jc.jenn_outcome, train, test, layers, clock=_clock, **jenn_kw)
    j, outs = _pair_fits(jcall if have else None, jcalls, reps)
    if j is not None:
        sec.rows.append(["jenn (JENN, Adam)", _fmt_settings(jenn_kw), j.iterations, j.seconds,
                         j.r2_values, j.r2_partials])
        plain_s = median([jc.jenn_outcome(train, test, layers, enhanced=False, clock=_clock,
                                          **jenn_kw).seconds for _ in range(reps)])
    else:
        sec.rows.append(["jenn", "skipped: install jenn", "", "", "", ""])
    for (o, reg), kw in zip(outs, (lbfgs_kw, adam_kw), strict=True):
        sec.rows.append([f"jacobite JENNRegressor ({_opt(reg)})",
                         _fmt_settings(kw), jt.iterations(reg), o.seconds, o.r2_values,
                         o.r2_partials])
    best = outs[0][0]
    sec.notes.append(f"Target: jacobite (defaults) R² ≥ 0.99 values ({best.r2_values:.4f}: "
                     f"{met(best.r2_values >= 0.99)}), ≥ 0.97 partials "
                     f"({best.r2_partials:.4f}: {met(best.r2_partials >= 0.97)}).")
    x, y, dydx = jt.standardise(train)
    steps = [*jt.loss_steps(train, (20, 20, 20), [None, {}]),
             jt.hand_written_step(jt.mlp(2, (20, 20, 20), 1, 0), x, y, dydx)]
    t_plain, t_jac, t_hand = jt.step_times(steps, repeats=5 if quick else 21,
                                           min_time=0.02 if quick else 0.2)
    ratio = t_jac / t_plain
    line = (f"One Adam step (25 points, `sobolev_loss` + `torch.optim.Adam`): values + partials "
            f"{t_jac * 1e3:.3f} ms vs values only {t_plain * 1e3:.3f} ms = **{ratio:.2f}×** "
            f"(target ≤ 1.6×: {met(ratio <= 1.6)}). The same step hand-written in plain "
            f"PyTorch (`autograd.grad(create_graph=True)` of the output's sum, then backward): "
            f"{t_hand * 1e3:.3f} ms = {t_hand / t_plain:.2f}× the values-only step, so "
            f"`sobolev_loss` adds {(t_jac - t_hand) * 1e3:.3f} ms per call here")
    if j is not None:
        line += (f". jenn's own ratio, from its fits' per-iteration times: "
                 f"{j.seconds / plain_s:.2f}× ({j.seconds / iters * 1e3:.3f} ms vs "
                 f"{plain_s / iters * 1e3:.3f} ms per step)")
    sec.notes.append(line + ".")
    sec.notes.append(clock_note())
    sec.notes.append("Data: 25 points of a seeded Latin hypercube on [−2, 2]², test on 1000 "
                     "seeded uniform points; the same for both. jenn: α = 1e-3 (the learning "
                     "rate of its Rastrigin demo; of 0.05 (its default), 0.01 and 1e-3 it gave "
                     "jenn's best R² here), normalised, γ = 1, λ = 0. jacobite: float64, "
                     "normalised, L2 α = 1e-3 (its default); L-BFGS stops on its tolerance.")
    return sec


# jenn's demo settings (docs/examples/demo_1_sinusoid, demo_2_rastrigin in jenn's repository):
# unlisted arguments keep jenn's defaults (Adam, α = 0.05, max_iter = 1000, γ = 1).
SINUSOID_DEMO: dict[str, Any] = dict(lambd=0.1, is_normalize=False, random_state=123)
RASTRIGIN_DEMO: dict[str, Any] = dict(max_iter=10_000, alpha=1e-3, lambd=1e-4,
                                      is_normalize=True, random_state=123)
# jacobite's settings for the same demos beside its defaults (none: its defaults only); the
# sinusoid's is the demo's own choice of no normalisation
SINUSOID_JACOBITE: dict[str, Any] = dict(normalize=False)
RASTRIGIN_JACOBITE: dict[str, Any] = {}


def demos(quick: bool) -> Section:
    sec = Section("bench_jenn: jenn's demos, jenn's settings",
                  ["demo", "library", "settings", "iterations", "fit s", "R² values",
                   "R² partials", "time / jenn's"])
    cases = [
        ("x·sin(x): 4 grid points, 1-12-1", jc.sample_grid(jc.SINUSOID, 4),
         jc.sample_uniform(jc.SINUSOID, 30, 1), [1, 12, 1], SINUSOID_DEMO, SINUSOID_JACOBITE,
         1 if quick else 5),
        ("Rastrigin 2-D: 100 random points, 2-24-24-1",
         jc.sample_uniform(jc.RASTRIGIN_2D, 100, 123), jc.sample_grid(jc.RASTRIGIN_2D, 10),
         [2, 24, 24, 1], RASTRIGIN_DEMO, RASTRIGIN_JACOBITE, 1 if quick else 3),
    ]
    verdicts = [v for case in cases if (v := _demo_rows(sec, *case, quick=quick))]
    sec.notes.append("Target: jacobite (each demo's last row) R² as good or better (values "
                     "and partials) in at most half jenn's time — " + "; ".join(verdicts) + ".")
    sec.notes.append("jenn runs its demos' settings (jenn's defaults otherwise: Adam, "
                     "α = 0.05, 1000 iterations, γ = 1; one line-search trial per step); the "
                     "demos' samples are reproduced (x·sin x: 4 grid points on [−3.14, 3.14], "
                     "30 random test points; Rastrigin: 100 uniform points on [−1, 1.5]², a "
                     "10 × 10 test grid) with seeds. jacobite: float64, `seed=0`, its default "
                     "optimizer='auto' (Levenberg–Marquardt on tiny problems, else L-BFGS; the "
                     "one run is in brackets); the x·sin x row without normalisation follows "
                     "the demo's `is_normalize=False`. Fit time: the median of interleaved "
                     "repeats after a warm-up fit. " + clock_note())
    return sec


def _demo_rows(sec: Section, name: str, train: jc.Data, test: jc.Data, layers: list[int],
               jkw: dict[str, Any], kw: dict[str, Any], reps: int, *, quick: bool) -> str:
    """Rows of one demo (jenn, jacobite at its defaults, jacobite at the chosen settings);
    returns the target's verdict ("" without jenn)."""
    have = _have_jenn()
    jkw = dict(jkw, max_iter=50) if quick else jkw
    hidden = tuple(layers[1:-1])
    settings = [{}, kw] if kw else [{}]
    if quick:
        settings = [dict(s, max_iter=50) for s in settings]
    calls = [functools.partial(jt.jacobite_outcome, train, test, hidden=hidden, seed=0,
                               progress=False, **s) for s in settings]
    jcall = (functools.partial(jc.jenn_outcome, train, test, layers, clock=_clock, **jkw)
             if have else None)
    j, outs = _pair_fits(jcall, calls, reps)
    if j is not None:
        shown = {k: v for k, v in jkw.items() if k != "random_state"}
        sec.rows.append([name, "jenn (JENN, Adam)", _fmt_settings(shown),
                         j.iterations, j.seconds, j.r2_values, j.r2_partials,
                         1.0])
    else:
        sec.rows.append([name, "jenn", "skipped: install jenn", "", "", "", "", ""])
    for (o, reg), s in zip(outs, settings, strict=True):
        rel = o.seconds / j.seconds if j is not None else ""
        sec.rows.append([name, f"jacobite JENNRegressor ({_opt(reg)})",
                         _fmt_settings(s), jt.iterations(reg), o.seconds, o.r2_values,
                         o.r2_partials, rel])
    if j is None:
        return ""
    o = outs[-1][0]
    ok_r2 = o.r2_values >= j.r2_values and o.r2_partials >= j.r2_partials
    ok_t = o.seconds <= 0.5 * j.seconds
    return (f"{name.split(':')[0]}: R² {met(ok_r2)}, time {o.seconds / j.seconds:.2f}× "
            f"jenn's {met(ok_t)}")


def sample_efficiency(quick: bool) -> Section:
    p = jc.ROSENBROCK_10D
    test = jc.sample_uniform(p, 500 if quick else 2000, 1)
    n_values = 200 if quick else 1000
    grid = (20, 40) if quick else (50, 100, 150, 200, 300)
    kw: dict[str, Any] = dict(hidden=(32, 32), max_iter=100 if quick else 2000, tol=1e-7,
                              seed=0, progress=False)
    sec = Section("bench_jenn: sample efficiency, Rosenbrock 10-D on [−1, 1]¹⁰",
                  ["training", "points", "iterations", "fit s", "R² values", "R² partials"])
    base, reg = jt.jacobite_outcome(jc.sample_lhs(p, n_values, 0), test, enhanced=False, **kw)
    sec.rows.append([f"values only ({_opt(reg)})", n_values, jt.iterations(reg),
                     base.seconds, base.r2_values, base.r2_partials])
    reached = None
    for n in grid:
        o, reg = jt.jacobite_outcome(jc.sample_lhs(p, n, 0), test, **kw)
        sec.rows.append([f"values + partials ({_opt(reg)})", n, jt.iterations(reg), o.seconds,
                         o.r2_values, o.r2_partials])
        if o.r2_values >= base.r2_values:
            reached = n
            break
    if reached is None:
        sec.notes.append(f"Target N' ≤ N/5 = {n_values // 5}: **missed** — no grid size up to "
                         f"{grid[-1]} reached the values-only R² {base.r2_values:.4f}.")
    else:
        sec.notes.append(f"N' = {reached} points with partials reach the values-only R² of "
                         f"N = {n_values} points ({base.r2_values:.4f}): N/N' = "
                         f"{n_values / reached:.1f} (target N' ≤ N/5: "
                         f"{met(reached <= n_values / 5)}).")
    sec.notes.append("`JENNRegressor(hidden=(32, 32), max_iter=2000, tol=1e-7, seed=0)` "
                     "(both trainings alike; values only = `fit(x, y)`), seeded Latin "
                     "hypercube training points, 2000 uniform test points. Each sample with "
                     "partials holds 11 numbers, so N' = N/5 is about twice the numbers of N "
                     "values.")
    return sec


def many_inputs(quick: bool) -> Section:
    p = jc.ridge_map()
    n_train = 64
    train, test = jc.sample_uniform(p, n_train, 0), jc.sample_uniform(p, 200 if quick else
                                                                         1000, 1)
    hidden, steps, lr = (64, 64), (10 if quick else 300), 1e-2
    sec = Section("bench_jenn: 100 inputs, 100 outputs — projected vs full Jacobian term",
                  ["loss", "ms per Adam step", "× full's cost", f"R² values after {steps} "
                   "steps", "partials' relative error"])
    full_kw: dict[str, Any] = dict(mode="full")
    proj_kw: dict[str, Any] = dict(mode="projected", k=4)
    t_full, t_proj = jt.step_times(jt.loss_steps(train, hidden, [full_kw, proj_kw]),
                                   repeats=3 if quick else 7, min_time=0.01 if quick else 0.3)
    results = []
    for kw in (full_kw, proj_kw, None):
        results.append(jt.train_adam(train, test, hidden, steps, lr, kw))
    labels = ("full (100 products per sample)", "projected, k = 4", "values only")
    measured = (t_full, t_proj, None)
    for label, (o, per, rel), t in zip(labels, results, measured, strict=True):
        ms = (t if t is not None else per) * 1e3
        sec.rows.append([label, ms, (t_full * 1e3) / ms, o.r2_values, rel])
    ratio = t_full / t_proj
    fr, pr = results[0][0].r2_values, results[1][0].r2_values
    sec.notes.append(f"Projected (k = 4) step {ratio:.1f}× cheaper than full (target ≥ 5×: "
                     f"{met(ratio >= 5)}); test R² of the values after {steps} steps: full "
                     f"{fr:.4f}, projected {pr:.4f} (equal accuracy: "
                     f"{met(pr >= fr - 0.01)}, within 0.01).")
    sec.notes.append(f"f(x) = C sin(B x), B (8 × 100), C (100 × 8) Gaussian (seeded), on "
                     f"[−1, 1]¹⁰⁰; {n_train} uniform training points (one full batch), "
                     f"net 100-64-64-100 tanh, float64, Adam lr {lr}, the same initial "
                     "weights. Step times: medians of interleaved repeats (full and "
                     "projected); the values-only row is its training loop's mean. The "
                     "partials' relative error is ‖Ĵ − J‖ / ‖J‖ over the test points.")
    return sec


def run(quick: bool = False) -> list[Section]:
    _warm_up()
    return [rosenbrock_2d(quick), demos(quick), sample_efficiency(quick), many_inputs(quick)]


if __name__ == "__main__":
    import sys

    for s in run(quick="--quick" in sys.argv):
        print(s.to_markdown())
