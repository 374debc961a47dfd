"""Peak memory of a dense Jacobian, unchunked vs chunked under a memory budget.

The function is a dense tanh map with a wide per-feature expansion,
``f(x) = tanh(V x + sum_k c_k * tanh(a_k * x + b_k))`` with ``x`` of size n = m = 2000 and K = 64
expansion features: the Jacobian is 2000 × 2000 (15 MiB in float32) and dense, but reverse mode
carries a K·n = 128,000-entry intermediate per output, so vectorising all 2000 outputs at once
builds GBs of intermediates. Each configuration runs in a fresh subprocess (see ``_memory``);
"over baseline" is its peak resident memory minus that of the same setup without the Jacobian.
Target: chunk_size="auto" keeps the peak over baseline within the budget.
"""

from __future__ import annotations

import torch

from . import _memory
from ._common import Section

_SETUP = """
import torch, jacobite
torch.manual_seed(0)
N, K = {n}, {k}
V = torch.randn(N, N).mul_(N ** -0.5)
a = torch.randn(K, N)
b = torch.randn(K, N)
c = torch.randn(K, N).mul_(K ** -0.5)
x = torch.randn(N)

def f(x):
    z = torch.tanh(x * a + b)  # (K, N): the wide expansion
    return torch.tanh(V @ x + (z * c).sum(0))

kw = dict(chunk_size={chunk!r}, memory_budget={budget!r})
plan = jacobite.jacobian_plan(f, x, **kw)  # probes f once (cached), so the work below does not
"""

_WORK = """
J = jacobite.jacobian(f, x, **kw)
RESULT.update(chunk=plan.chunk_size, chunks=plan.num_chunks, est=plan.estimated_peak_bytes,
              budget=plan.budget, checksum=float(J.double().sum()), shape=list(J.shape))
"""


def _mib(b: float) -> str:
    return f"{b / 2**20:.0f}"


def run(quick: bool = False) -> Section:
    n, k = (400, 32) if quick else (2000, 64)
    threads = torch.get_num_threads()
    if quick:  # smoke run: one child, and its own RSS before the Jacobian as the baseline
        configs: list[tuple[str, object, str]] = [("chunk_size='auto', budget 32 MiB", "auto",
                                                   "32 MiB")]
    else:
        configs = [("chunk_size=None", None, "1 GiB")]
        configs += [(f"chunk_size='auto', budget {b}", "auto", b) for b in ("256 MiB", "1 GiB")]

    def setup(chunk: object, budget: str) -> str:
        return _SETUP.format(n=n, k=k, chunk=chunk, budget=budget)

    base = None if quick else _memory.measure(setup(None, "1 GiB"), threads=threads)
    runs = [_memory.measure(setup(ch, b), _WORK, threads=threads) for _, ch, b in configs]

    sec = Section(
        f"Peak memory: dense Jacobian {n}×{n} (K={k} expansion), unchunked vs chunked",
        ["configuration", "chunks × size", "planned peak (MiB)", "peak RSS (MiB)",
         "over baseline (MiB)", "budget (MiB)", "within budget", "time (s)"],
    )
    checks = []
    met = []
    for (label, chunk, _), m in zip(configs, runs, strict=True):
        r = m.result
        over = m.over(base)
        ok = over <= r["budget"]
        if chunk == "auto":
            met.append(ok)
        checks.append(r["checksum"])
        budget = _mib(r["budget"]) if chunk == "auto" else f"({_mib(r['budget'])})"
        within = ("yes" if ok else "**no**") if chunk == "auto" else (
            "yes" if ok else "no (not asked to)")
        sec.rows.append([label, f"{r['chunks']} × {r['chunk']}", _mib(r["est"]),
                         _mib(m.peak_bytes), _mib(over), budget, within, f"{m.seconds:.2f}"])
    base_txt = (f"peak RSS {_mib(base.peak_bytes)} MiB; 'over baseline' subtracts the lower of "
                "that and the run's own RSS just before the Jacobian "
                f"({', '.join(_mib(m.start_bytes) for m in runs)} MiB)" if base is not None else
                "(quick run: the child's RSS just before the Jacobian)")
    result_mib = n * n * 4 / 2**20
    same = max(checks) - min(checks) <= 1e-6 * max(1.0, abs(checks[0])) * n
    sec.notes += [
        f"Baseline (same setup, no Jacobian): {base_txt}. The result itself is "
        f"{result_mib:.1f} MiB; budgets cover result + intermediates. torch threads: "
        f"{threads}.",
        "Target (chunk_size='auto' stays within its budget): "
        + ("met" if all(met) else "**not met**") + f" on {sum(met)}/{len(met)} budgets. "
        "chunk_size=None ignores the budget (its column shows the default budget in parentheses "
        "for comparison).",
        "All configurations give the same Jacobian (checksums agree)." if same else
        f"**Checksums differ between configurations: {checks}**",
        "Time is one call (probe already cached), in the child process.",
    ]
    return sec


if __name__ == "__main__":
    print(run().to_markdown())
