"""jacobite.numeric.jacobian(method="richardson") against numdifftools.Jacobian at its defaults.

Target: numdifftools' accuracy or better (max abs error against the analytic Jacobian, worst
over a few random points) with fewer calls of ``f``. Calls are counted with a wrapper.

Run: ``python -m benchmarks.bench_numeric`` (needs ``pip install 'jacobite[bench]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jacobite.errors import require
from jacobite.numeric import jacobian

try:  # run as a module of the benchmarks package or as a script
    from ._common import Section, time_pair
except ImportError:  # pragma: no cover
    from _common import Section, time_pair  # type: ignore[no-redef]


@dataclass
class Problem:
    name: str
    f: Callable[[np.ndarray], np.ndarray]
    jac: Callable[[np.ndarray], np.ndarray]
    point: Callable[[np.random.Generator], np.ndarray]


def _problems() -> list[Problem]:
    rng = np.random.default_rng(2024)
    A = rng.standard_normal((15, 20)) / np.sqrt(20)
    C = rng.standard_normal((8, 8))

    def exp_sin(x):
        return np.exp(x) * np.sin(np.roll(x, 1))

    def exp_sin_jac(x):
        n = x.size
        J = np.diag(np.exp(x) * np.sin(np.roll(x, 1)))
        J[np.arange(n), (np.arange(n) - 1) % n] += np.exp(x) * np.cos(np.roll(x, 1))
        return J

    def rosen(x):
        return np.concatenate([10 * (x[1:] - x[:-1] ** 2), 1 - x[:-1]])

    def rosen_jac(x):
        n = x.size
        J = np.zeros((2 * (n - 1), n))
        i = np.arange(n - 1)
        J[i, i], J[i, i + 1], J[n - 1 + i, i] = -20 * x[:-1], 10.0, -1.0
        return J

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    def softmax_jac(x):
        s = softmax(x)
        return np.diag(s) - np.outer(s, s)

    def trig(x):
        n = x.size
        return n - np.cos(x).sum() + np.arange(1, n + 1) * (1 - np.cos(x)) - np.sin(x)

    def trig_jac(x):
        n = x.size
        return np.tile(np.sin(x), (n, 1)) + np.diag(np.arange(1, n + 1) * np.sin(x) - np.cos(x))

    def broyden(x):
        xp = np.concatenate([[0.0], x, [0.0]])
        return (3 - 2 * x) * x - xp[:-2] - 2 * xp[2:] + 1

    def broyden_jac(x):
        n = x.size
        return np.diag(3 - 4 * x) - np.eye(n, k=-1) - 2 * np.eye(n, k=1)

    def logsqrt(x):
        return np.concatenate([np.log(x), np.sqrt(x) * x[::-1]])

    def logsqrt_jac(x):
        n = x.size
        J = np.zeros((2 * n, n))
        J[:n] = np.diag(1 / x)
        J[n:] = np.diag(0.5 / np.sqrt(x) * x[::-1]) + np.sqrt(x)[:, None] * np.eye(n)[::-1]
        return J

    def wave(x):
        return np.sin(10 * x) * np.exp(-(x ** 2))

    def wave_jac(x):
        return np.diag((10 * np.cos(10 * x) - 2 * x * np.sin(10 * x)) * np.exp(-(x ** 2)))

    return [
        Problem("exp(x)*sin(roll(x))", exp_sin, exp_sin_jac, lambda r: r.uniform(-1, 1, 5)),
        Problem("Rosenbrock residuals", rosen, rosen_jac, lambda r: r.uniform(-2, 2, 10)),
        Problem("cubic polynomial map", lambda x: C @ x ** 3 + x ** 2 - 3 * x,
                lambda x: C * (3 * x ** 2)[None, :] + np.diag(2 * x - 3),
                lambda r: r.uniform(-3, 3, 8)),
        Problem("tanh(A x)", lambda x: np.tanh(A @ x),
                lambda x: (1 - np.tanh(A @ x) ** 2)[:, None] * A,
                lambda r: r.standard_normal(20)),
        Problem("softmax", softmax, softmax_jac, lambda r: r.standard_normal(20)),
        Problem("trigonometric (Moré)", trig, trig_jac, lambda r: r.uniform(0, 1, 12)),
        Problem("Broyden tridiagonal", broyden, broyden_jac, lambda r: r.uniform(-1, 1, 16)),
        Problem("log, sqrt at x~100", logsqrt, logsqrt_jac, lambda r: r.uniform(50, 200, 6)),
        Problem("sin(10x) exp(-x^2)", wave, wave_jac, lambda r: r.uniform(-1, 1, 6)),
    ]


def _counted(f: Callable) -> tuple[Callable, list[int]]:
    calls = [0]

    def g(x):
        calls[0] += 1
        return f(x)

    return g, calls


def run(quick: bool = False) -> Section:
    """Compare accuracy, calls and time with numdifftools on every problem."""
    nd = require("numdifftools", "bench")
    points = 1 if quick else 3
    section = Section(
        title="Numeric Jacobians: jacobite richardson vs numdifftools.Jacobian (defaults)",
        headers=["function", "n", "m", "jacobite max abs err", "numdifftools max abs err",
                 "jacobite nfev", "numdifftools nfev", "calls ratio", "time ratio", "target"],
    )
    met_all = True
    for prob in _problems():
        rng = np.random.default_rng(7)
        err_j = err_n = 0.0
        calls_j = calls_n = 0
        x0 = None
        for _ in range(points):
            x = prob.point(rng)
            x0 = x if x0 is None else x0
            exact = prob.jac(x)
            g, cj = _counted(prob.f)
            res = jacobian(g, x, "richardson")
            g2, cn = _counted(prob.f)
            ref = np.asarray(nd.Jacobian(g2)(x)).reshape(exact.shape)
            err_j = max(err_j, float(np.abs(res.jacobian - exact).max()))
            err_n = max(err_n, float(np.abs(ref - exact).max()))
            calls_j += cj[0]
            calls_n += cn[0]
        t_j, t_n = time_pair(lambda x=x0, p=prob: jacobian(p.f, x),
                             lambda x=x0, p=prob: nd.Jacobian(p.f)(x),
                             repeats=3 if quick else 7, min_time=0.02 if quick else 0.05)
        m = int(np.asarray(prob.f(x0)).size)
        met = err_j <= err_n and calls_j < calls_n
        met_all &= met
        section.rows.append([
            prob.name, int(x0.size), m, err_j, err_n, round(calls_j / points),
            round(calls_n / points), calls_j / calls_n, t_j / t_n, "met" if met else "MISSED",
        ])
        section.notes.append(
            f"{prob.name}: target {'met' if met else 'MISSED'} "
            f"(error {err_j:.2e} vs {err_n:.2e}, {calls_j / calls_n:.0%} of the calls)"
        )
    section.notes.insert(0, (
        f"Errors are the worst over {points} random point(s) per function, against the analytic "
        "Jacobian; nfev is the mean per Jacobian; ratios are jacobite / numdifftools (time: "
        "median of interleaved repeats at the first point)."
    ))
    section.notes.insert(1, "Target 'numdifftools' accuracy or better with fewer calls': "
                         + ("met on every function." if met_all else "NOT met everywhere."))
    return section


if __name__ == "__main__":
    print(run().to_markdown())
