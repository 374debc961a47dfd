"""``jac="auto"``: the solvers' choice between a dense and a sparse Jacobian, by a cost model.

Per Jacobian, a dense one costs about ``min(m, n)`` derivative passes (forward or reverse,
whichever is fewer) and a dense factorisation of ``m · n · min(m, n)`` flops (``n³`` for a
square system); a sparse one costs about ``c`` passes (``c`` colors, close to the most nonzeros
in a row) and a sparse factorisation, after a one-time detection of the pattern (one traced
evaluation of ``F``) and a coloring. So:

1. ``min(m, n) < SPARSE_MIN_SIZE`` (1000): dense, without detection — at most a thousand
   passes and about 10⁹ flops per Jacobian, a fraction of a second, which detection and a
   compressed evaluation could not win back by much.
2. Otherwise one reverse pass first probes ``PROBE_ROWS`` (8) random rows at ``x0`` (for a
   Hessian, one Hessian-vector product on as many columns): where their nonzeros already fill
   more than ``MAX_DENSITY`` of them, the pattern is clearly dense and dense is kept without
   detection, whose dependency sets would hold ``m · n`` entries. The probe only ever skips
   detection; a sparse-looking probe (zeros at ``x0`` may hide structural nonzeros) is
   followed by detection, which alone decides sparse.
3. Otherwise the pattern is detected once at ``x0``. Dense is kept where the pattern is
   *local* (value-dependent control flow or indexing: valid only near ``x0``; the iterates move
   away, and a pattern re-detected at each iterate would cost a traced evaluation per Jacobian
   and carry no guarantee between them), where more than ``MAX_DENSITY`` (5 %) of its entries
   are nonzero (a sparse LU of such a matrix fills in and gains nothing), or where the coloring
   needs more than ``min(m, n) / 4`` colors (the passes saved do not pay for the sparse
   bookkeeping).
4. Else sparse: :func:`jacobite.sparse.prepare` with the detected pattern.

For a Hessian (``hessian=True``, :func:`jacobite.newton_minimize`) the same rules hold with
``m = n``, :func:`jacobite.sparse.detect_hessian` and :func:`jacobite.sparse.prepare_hessian`
(star coloring).

Detection that fails (an operation its tracker cannot follow) leaves the choice dense. Warnings
the detection raised (an op without a sparsity rule, a custom ``autograd.Function``, a
local pattern) are kept back when the choice is dense — the pattern is then not used — and
re-emitted when it is sparse.

:func:`slow_dense_warning` warns once per solve when a dense Jacobian will clearly be slow:
the first one's measured time plus an ``(2/3) m n min(m, n) / 10¹⁰ s`` factorisation, times
a nominal ``NOMINAL_JACOBIANS`` (10) per solve, above ``SLOW_SECONDS`` (10 s).

>>> import torch
>>> choice = choose(torch.sin, torch.zeros(3), 3)
>>> choice.mode, choice.reason
('dense', 'dense: min(m, n) = 3 is below 1000, where a dense Jacobian is cheap')
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..errors import JacobiteWarning

__all__ = ["JacChoice", "choose", "slow_dense_warning"]

#: Below this ``min(m, n)`` ``jac="auto"`` stays dense without detecting the pattern.
SPARSE_MIN_SIZE = 1000
#: Above this fraction of nonzero entries the detected pattern counts as dense.
MAX_DENSITY = 0.05
#: Rows (Hessian: columns) the pre-detection probe samples in one reverse pass.
PROBE_ROWS = 8
#: A sparse plan needs at most ``min(m, n) / MIN_COLOR_GAIN`` colors to be chosen.
MIN_COLOR_GAIN = 4
#: The slow-dense warning fires when a solve is estimated to take longer than this (seconds).
SLOW_SECONDS = 10.0
#: Jacobians a typical solve evaluates, for the slow-dense estimate.
NOMINAL_JACOBIANS = 10
_FLOPS = 1e10  # dense LU flop rate assumed by the estimate
#: Below this many rows or columns the warning stays quiet: its advice (a sparse Jacobian) cannot
#: help, and a slow first Jacobian of so small a map is one-time start-up (imports), not size.
SPARSE_HELPS = 100

JacMode = Literal["dense", "sparse", "callable"]


@dataclass(frozen=True)
class JacChoice:
    """What ``jac="auto"`` chose: ``mode``, the sparse ``plan`` (or ``None``), why, and how
    long deciding took (``seconds``: detection and coloring, 0 when none ran)."""

    mode: JacMode
    plan: Any
    reason: str
    seconds: float = 0.0


def choose(flat: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, m: int, *,
           hessian: bool = False) -> JacChoice:
    """Choose a dense or sparse Jacobian for ``flat`` (flat ``x`` to ``m`` flat outputs), or
    with ``hessian`` a dense or sparse Hessian for the scalar ``flat`` (``m`` is then ``n``)."""
    n = x.numel()
    size = min(m, n)
    if size < SPARSE_MIN_SIZE:
        return JacChoice("dense", None, f"dense: min(m, n) = {size} is below "
                         f"{SPARSE_MIN_SIZE}, where a dense Jacobian is cheap")
    from ..sparse import detect, detect_hessian, prepare, prepare_hessian

    t0 = time.perf_counter()
    probed = _probe_density(flat, x, m, hessian)
    if probed > MAX_DENSITY:
        return JacChoice("dense", None, f"dense: {min(PROBE_ROWS, m)} sampled "
                         f"{'columns' if hessian else 'rows'} are {100 * probed:.3g}% nonzero "
                         f"(> {100 * MAX_DENSITY:g}%) at x0", time.perf_counter() - t0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pat = (detect_hessian if hessian else detect)(flat, x)
    except Exception as exc:  # the dense path gives the user's own errors, if any, itself
        first = str(exc).splitlines()[0] if str(exc) else ""
        return JacChoice("dense", None, f"dense: sparsity detection failed "
                         f"({type(exc).__name__}: {first})", time.perf_counter() - t0)
    density = pat.nnz / (m * n)
    why = ""
    if pat.local:
        why = ("the detected pattern is local (value-dependent control flow or indexing), "
               "valid only near x0")
    elif density > MAX_DENSITY:
        why = f"the detected pattern is {100 * density:.3g}% nonzero (> {100 * MAX_DENSITY:g}%)"
    if why:
        return JacChoice("dense", None, f"dense: {why}", time.perf_counter() - t0)
    plan = (prepare_hessian if hessian else prepare)(flat, x, pattern=pat.matrix)
    seconds = time.perf_counter() - t0
    if plan.colors * MIN_COLOR_GAIN > size:
        return JacChoice("dense", None, f"dense: the pattern needs {plan.colors} colors, more "
                         f"than min(m, n) / {MIN_COLOR_GAIN} = {size / MIN_COLOR_GAIN:g}",
                         seconds)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)
    return JacChoice("sparse", plan, f"sparse: {pat.nnz} nonzeros ({100 * density:.2g}%), "
                     f"{plan.colors} colors ({plan.mode}) instead of {size} dense passes; "
                     f"detection and coloring took {seconds:.2g} s", seconds)


def _probe_density(flat: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, m: int,
                   hessian: bool) -> float:
    """An estimate of the density at ``x`` from ``k = PROBE_ROWS`` random rows (Hessian:
    columns) at once, by one VJP (HVP) with random weights on them: where their nonzeros cover
    a fraction ``u`` of the columns, rows of density ``d`` would cover ``1 − (1 − d)ᵏ``, so
    ``d = 1 − (1 − u)^(1/k)``. 0 where the probe fails (detection then decides)."""
    n = x.numel()
    gen = torch.Generator().manual_seed(0)
    k = min(PROBE_ROWS, m)
    rows = torch.randperm(m, generator=gen)[:k]
    w = torch.zeros(m, dtype=x.dtype)
    w[rows] = 1.0 + torch.rand(k, generator=gen, dtype=x.dtype)
    w = w.to(x.device)
    try:
        with torch.enable_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the probe is silent; detection speaks
            if hessian:
                g = lambda v: torch.func.grad(lambda u: flat(u).reshape(()))(v)  # noqa: E731
                out = torch.func.jvp(g, (x.detach(),), (w,))[1]
            else:
                pull = torch.func.vjp(flat, x.detach())[1]
                out = pull(w)[0]
    except Exception:  # a probe only: detection reports real problems
        return 0.0
    u = float(torch.count_nonzero(out)) / n
    return 1.0 - (1.0 - u) ** (1.0 / k)


def slow_dense_warning(seconds: float, n: int, who: str, reason: str = "",
                       m: int | None = None) -> None:
    """Warn (:class:`JacobiteWarning`) when a dense ``m × n`` Jacobian (``m = n`` by default)
    that took ``seconds`` to form, with its factorisation of about ``(2/3) m n min(m, n)``
    flops, makes a solve of ``NOMINAL_JACOBIANS`` of them slow."""
    m = n if m is None else m
    if min(m, n) < SPARSE_HELPS:
        return
    per = seconds + (2.0 / 3.0) * m * n * min(m, n) / _FLOPS
    total = NOMINAL_JACOBIANS * per
    if total < SLOW_SECONDS:
        return
    fix = ("jac='auto' detects the pattern and goes sparse where it pays"
           if not reason else f"jac='auto' stayed dense ({reason.removeprefix('dense: ')})")
    warnings.warn(f"{who}: each dense {n}-column Jacobian with its factorisation takes about "
                  f"{per:.2g} s, so this solve may take {total:.2g} s or more; if the Jacobian "
                  f"is sparse pass jac='sparse' or a jac callable returning a SciPy sparse "
                  f"matrix ({fix}); verbose=2 shows progress", JacobiteWarning, stacklevel=2)
