"""jacobite (and torch.func, eager and torch.compile'd) vs JAX on an MLP Jacobian.

The MLP 100 → 256 → 256 → 50 (tanh), float32, with the same weights in both frameworks:
its 50 × 100 Jacobian at one input (``jax.jit(jax.jacrev(f))``) and the per-sample Jacobians of
a batch of 256 (``jax.jit(jax.vmap(jax.jacrev(f)))`` vs ``jacobite.batch_jacobian``). Every
PyTorch variant is timed interleaved with the JAX reference in the same process and reported as
a ratio to it (lower is better, 1 = as fast as JAX). JAX is a benchmark-only dependency.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.func import jacrev, vmap

import jacobite

from ._common import Section, median
from .bench_dense_overhead import clock_note, time_interleaved

BATCH = 256


def _weights() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [((256, 100), 0.1), ((256,), 1.0), ((256, 256), 1 / 16), ((256,), 1.0),
              ((50, 256), 1 / 16), ((50,), 1.0)]
    return [(rng.standard_normal(s) * k).astype(np.float32) for s, k in shapes]


def _mlp(lib: Any, w: list[Any]) -> Callable[[Any], Any]:
    W1, b1, W2, b2, W3, b3 = w

    def f(x: Any) -> Any:
        return W3 @ lib.tanh(W2 @ lib.tanh(W1 @ x + b1) + b2) + b3

    return f


@contextlib.contextmanager
def _quiet_compile() -> Iterator[None]:
    """Silence torch.compile's graph-break chatter while a variant compiles."""
    loggers = [logging.getLogger(n) for n in ("torch._dynamo", "torch._inductor")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _compiled(fn: Callable[[torch.Tensor], Any], arg: torch.Tensor
              ) -> tuple[Callable[[torch.Tensor], Any] | None, str]:
    """torch.compile ``fn``; return it and its first-call time, or None and why it failed."""
    torch._dynamo.reset()
    c = torch.compile(fn)
    t0 = time.perf_counter()
    try:
        with _quiet_compile():
            c(arg)
    except Exception as exc:  # report any compiler failure rather than crash the run
        first = str(exc).strip().splitlines()
        msg = next((ln for ln in first if "Error" in ln or "Cannot" in ln), first[0] if first
                   else "")
        return None, f"fails: {type(exc).__name__}: {msg.strip()[:120]}"
    return c, f"compiles in {time.perf_counter() - t0:.1f} s"


def run(quick: bool = False) -> Section:
    sec = Section(
        "JAX reference: MLP 100→256→256→50 (tanh) Jacobian, float32",
        ["problem", "PyTorch variant", "compile", "PyTorch (ms)", "JAX (ms)", "ratio to JAX",
         "max |ΔJ|"],
    )
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return Section(sec.title, ["status"], [["skipped: install jax jaxlib (CPU wheels; a "
                                                "benchmark-only dependency)"]])

    w = _weights()
    f = _mlp(torch, [torch.from_numpy(a) for a in w])
    jf = _mlp(jnp, [jnp.asarray(a) for a in w])
    X = np.random.default_rng(1).standard_normal((BATCH, 100)).astype(np.float32)
    x_t, X_t = torch.from_numpy(X[0].copy()), torch.from_numpy(X)
    x_j, X_j = jnp.asarray(X[0]), jnp.asarray(X)
    jax_one = jax.jit(jax.jacrev(jf))
    jax_batch = jax.jit(jax.vmap(jax.jacrev(jf)))

    def jac_compiled_f(x: torch.Tensor) -> torch.Tensor:
        return jacobite.jacobian(compiled_f, x)

    compiled_f = torch.compile(f)
    variants: list[tuple[str, str, Callable[[torch.Tensor], Any], bool]] = [
        ("single input", "jacobite.jacobian(f, x)", lambda x: jacobite.jacobian(f, x), False),
        ("single input", "torch.func.jacrev(f)(x)", lambda x: jacrev(f)(x), False),
        ("single input", "torch.compile(x ↦ jacrev(f)(x))", lambda x: jacrev(f)(x), True),
        ("single input", "torch.compile(x ↦ jacobite.jacobian(f, x))",
         lambda x: jacobite.jacobian(f, x), True),
        ("single input", "torch.compile(x ↦ jacobite.jacobian(f, x, mode='reverse', "
         "chunk_size=None, check_finite=False))",
         lambda x: jacobite.jacobian(f, x, mode="reverse", chunk_size=None, check_finite=False),
         True),
        ("single input", "jacobite.jacobian(torch.compile(f), x)", jac_compiled_f, False),
        (f"batch of {BATCH}", "jacobite.batch_jacobian(f, X)",
         lambda X: jacobite.batch_jacobian(f, X), False),
        (f"batch of {BATCH}", "vmap(jacrev(f))(X)", lambda X: vmap(jacrev(f))(X), False),
        (f"batch of {BATCH}", "torch.compile(X ↦ vmap(jacrev(f))(X))",
         lambda X: vmap(jacrev(f))(X), True),
        (f"batch of {BATCH}", "torch.compile(X ↦ jacobite.batch_jacobian(f, X))",
         lambda X: jacobite.batch_jacobian(f, X), True),
    ]
    if quick:
        variants = [v for v in variants if not v[3] and v[0] == "single input"][:2]
    repeats, min_time = (3, 0.005) if quick else (21, 0.02)
    ratios: dict[tuple[str, str], float] = {}
    for problem, label, fn, compile_it in variants:
        single = problem == "single input"
        arg = x_t if single else X_t
        ref_fn = (lambda: jax_one(x_j).block_until_ready()) if single else (
            lambda: jax_batch(X_j).block_until_ready())
        ref = np.asarray(ref_fn())
        note = "—"
        if compile_it:
            fn, note = _compiled(fn, arg)  # type: ignore[assignment]
            if fn is None:
                sec.rows.append([problem, label, note, "—", "—", "—", "—"])
                continue
        elif fn is jac_compiled_f:
            t0 = time.perf_counter()
            with _quiet_compile():
                fn(arg)
            note = f"first call {(time.perf_counter() - t0) * 1e3:.0f} ms"
        with _quiet_compile():
            err = float(np.abs(fn(arg).detach().numpy() - ref).max())
            st, sj = time_interleaved([lambda fn=fn, arg=arg: fn(arg), ref_fn], repeats=repeats,
                                      min_time=min_time)
        tt, tj = median(st), median(sj)
        r = median([a / b for a, b in zip(st, sj, strict=True)])
        ratios[problem, label] = r
        sec.rows.append([problem, label, note, tt * 1e3, tj * 1e3, r, err])
    for problem, key in (("single input", "jacobite.jacobian(f, x)"),
                         (f"batch of {BATCH}", "jacobite.batch_jacobian(f, X)")):
        if (problem, key) not in ratios:
            continue
        line = f"{problem}: eager jacobite takes {ratios[problem, key]:.2f}× JAX's time"
        compiled = [(r, k) for (p, k), r in ratios.items() if p == problem and "compile" in k]
        if compiled:
            r, k = min(compiled)
            line += f"; the fastest torch.compile variant, {k}, {r:.2f}×"
        sec.notes.append(line + ".")
    sec.notes += [
        f"JAX {jax.__version__} on {jax.devices()[0].platform}; JAX timings include "
        "`block_until_ready()`. Ratio = median over rounds of PyTorch time / JAX time, "
        "both timed back to back in each round in the same process (`time_interleaved`). "
        + clock_note() + " (CPU "
        "time counts every thread of the process, so it includes the work JAX dispatches to "
        "its own threads.)",
        "The compile column gives the first-call (compilation) time, not included in the "
        "timings. Rows marked 'fails' could not be compiled; the error is torch.compile's. "
        "jacobite's defaults (input check, cached plan) cause graph breaks outside the "
        "differentiated function, so its compiled defaults run a little slower than the "
        "compiled bare jacrev; with a fixed mode and chunk size and check_finite=False dynamo "
        "captures one graph.",
    ]
    return sec


if __name__ == "__main__":
    print(run().to_markdown())
