"""Training on values and Jacobians: test accuracy against the number of training points.

One fixed problem, the Rosenbrock function f(x, y) = 100 (y − x²)² + (1 − x)² on [−2, 2]²; its
exact partials come from ``jacobite.nn.sobolev_data`` (automatic differentiation). For each
number of training points N (a seeded Latin hypercube) two networks 2-20-20-20-1 (tanh) are
fitted by ``jacobite.nn.JENNRegressor`` (L-BFGS for both at every N, inputs and outputs
standardised, the other settings its defaults) from the same initial weights: one on the N
values alone, one on the N values and their 2N partials (λ = 1). Both are scored on 1000 uniform
test points never trained on: R² of the values (``score``) and of the partials
(``score_jacobian``). Each N is repeated over several seeds (the sample and the initial
weights); the table shows the median, the plot the median and the range.

    python examples/jenn_accuracy.py               # table + docs/img/jenn_accuracy.png
    python examples/jenn_accuracy.py --markdown    # the table as docs/jenn.md shows it
    python examples/jenn_accuracy.py --sizes 8 32 --seeds 1 --no-plot
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from scipy.stats import qmc

from jacobite.nn import JENNRegressor, sobolev_data

PLOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "jenn_accuracy.png"
SIZES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
MODES = ("values only", "values + Jacobians")
LOW, HIGH = -2.0, 2.0


def rosenbrock(v: torch.Tensor) -> torch.Tensor:
    """The 2-D Rosenbrock function of a batch ``(B, 2)``: shape ``(B,)``."""
    return 100.0 * (v[:, 1] - v[:, 0] ** 2) ** 2 + (1.0 - v[:, 0]) ** 2


def training_points(size: int, seed: int) -> torch.Tensor:
    """``size`` points of a seeded Latin hypercube in [−2, 2]²."""
    u = qmc.LatinHypercube(d=2, seed=seed).random(size)
    return LOW + (HIGH - LOW) * torch.as_tensor(u, dtype=torch.float64)


def held_out_points(size: int = 1000, seed: int = 12345) -> torch.Tensor:
    """``size`` uniform points in [−2, 2]², drawn once (seeded) and shared by every fit."""
    g = torch.Generator().manual_seed(seed)
    return LOW + (HIGH - LOW) * torch.rand(size, 2, generator=g, dtype=torch.float64)


def scores(size: int, seed: int, test: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Test R² (values, partials) of both fits on the same ``size`` training points."""
    x = training_points(size, seed)
    data, truth = sobolev_data(rosenbrock, x), sobolev_data(rosenbrock, test)
    out = {}
    for mode in MODES:
        reg = JENNRegressor(hidden=(20, 20, 20), activation="tanh", optimizer="lbfgs",
                            seed=seed)
        reg.fit(x, data.y, data.dydx if mode == MODES[1] else None)
        out[mode] = (reg.score(test, truth.y), reg.score_jacobian(test, truth.dydx))
    return out


def sweep(sizes: tuple[int, ...] = SIZES, seeds: int = 5
          ) -> dict[str, dict[int, list[tuple[float, float]]]]:
    """``result[mode][N]``: the (values R², partials R²) of each seed."""
    test = held_out_points()
    result: dict[str, dict[int, list[tuple[float, float]]]] = {m: {} for m in MODES}
    for size in sizes:
        for seed in range(seeds):
            for mode, r2 in scores(size, seed, test).items():
                result[mode].setdefault(size, []).append(r2)
    return result


def _median(result: dict[str, dict[int, list[tuple[float, float]]]], mode: str, size: int,
            which: int) -> float:
    return statistics.median(r[which] for r in result[mode][size])


def fewest(result: dict[str, dict[int, list[tuple[float, float]]]], mode: str,
           target: float = 0.99, which: int = 0) -> int | None:
    """The fewest training points whose median test R² reaches ``target`` (None: none does)."""
    for size in sorted(result[mode]):
        if _median(result, mode, size, which) >= target:
            return size
    return None


def table(result: dict[str, dict[int, list[tuple[float, float]]]]) -> str:
    """Median test R² per N: values and partials, each values-only and values + Jacobians."""
    head = (f"{'N':>4s} | {'R² values: plain':>17s} {'+ Jacobians':>12s} | "
            f"{'R² partials: plain':>19s} {'+ Jacobians':>12s}")
    lines = [head, "-" * len(head)]
    for size in sorted(result[MODES[0]]):
        v = [_median(result, m, size, 0) for m in MODES]
        p = [_median(result, m, size, 1) for m in MODES]
        lines.append(f"{size:4d} | {v[0]:17.4f} {v[1]:12.4f} | {p[0]:19.4f} {p[1]:12.4f}")
    return "\n".join(lines)


def markdown_table(result: dict[str, dict[int, list[tuple[float, float]]]]) -> str:
    """:func:`table` as the Markdown table of the guide (``docs/jenn.md``)."""
    lines = ["| N | R² of the values, values only | values + Jacobians | "
             "R² of the partials, values only | values + Jacobians |",
             "|---:|---:|---:|---:|---:|"]
    for size in sorted(result[MODES[0]]):
        cells = [_median(result, m, size, w) for w in (0, 1) for m in MODES]
        lines.append(f"| {size} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def plot(result: dict[str, dict[int, list[tuple[float, float]]]], path: Path = PLOT) -> Path:
    """1 − R² (log scale, lower is better) against N, values and partials side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for which, (ax, title) in enumerate(zip(axes, ("values", "partials ∂f/∂x, ∂f/∂y"),
                                            strict=True)):
        for mode, style in zip(MODES, ("o--", "s-"), strict=True):
            sizes = sorted(result[mode])
            miss = [[max(1 - r[which], 1e-6) for r in result[mode][s]] for s in sizes]
            ax.plot(sizes, [statistics.median(m) for m in miss], style, label=mode, ms=4)
            ax.fill_between(sizes, [min(m) for m in miss], [max(m) for m in miss], alpha=0.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes], fontsize=8)
        ax.minorticks_off()
        ax.set_xlabel("training points N")
        ax.set_title(f"test accuracy of the {title}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("1 − R² on 1000 test points")
    axes[0].legend(fontsize=9)
    fig.suptitle("Rosenbrock on [−2, 2]², MLP 2-20-20-20-1 (tanh), L-BFGS", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="the table in Markdown")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    result = sweep(tuple(args.sizes), args.seeds)
    print(f"Median test R² over {args.seeds} seed(s):\n")
    print(markdown_table(result) if args.markdown else table(result))
    for mode in MODES:
        print(f"\n{mode}: R² ≥ 0.99 of the values from N = {fewest(result, mode)}, "
              f"of the partials from N = {fewest(result, mode, which=1)}", end="")
    print(f"\n\n{time.perf_counter() - t0:.0f} s")
    if not args.no_plot:
        print(f"plot: {plot(result, args.plot)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
