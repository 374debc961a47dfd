"""Choosing forward or reverse mode and a chunk size under the memory budget."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from .. import _validate
from .._validate import ChunkSize
from ..config import format_bytes
from ..errors import JacobianTooLarge, UnsupportedOperationError
from ._probe import Probe
from ._saved import chunk

log = logging.getLogger("jacobite.dense")

#: How a dense Jacobian is computed: one JVP per input entry (forward), one VJP per output entry
#: (reverse), or whichever the cost model finds cheaper (auto).
Mode = Literal["auto", "forward", "reverse"]
MODES: tuple[Mode, ...] = ("auto", "forward", "reverse")

# mode="auto": forward when FORWARD_COST * n + FORWARD_FIXED < m, reverse otherwise. Measured with
# torch.func on CPU (benchmarks/bench_dense_auto.py): one vmapped JVP costs about two VJPs per
# basis vector (256→1024: 14 µs vs 6.3 µs; 1024→1024: 16.7 µs vs 8.7 µs), and forward mode has a
# fixed cost of about 64 VJPs on small problems. The plain rule "forward iff n < m" picked the
# slower mode by 10-27% on small maps (e.g. 4→16, 16→64).
FORWARD_COST = 2
FORWARD_FIXED = 64


def auto_mode(n: int, m: int) -> tuple[str, str]:
    """The mode ``mode="auto"`` picks for n inputs and m outputs, and why.

    >>> auto_mode(3, 300)[0], auto_mode(300, 3)[0], auto_mode(4, 16)[0]
    ('forward', 'reverse', 'reverse')
    """
    fwd = FORWARD_COST * n + FORWARD_FIXED
    if fwd < m:
        return "forward", f"auto: est. cost {FORWARD_COST}·{n} + {FORWARD_FIXED} < {m} outputs"
    return "reverse", f"auto: {m} outputs <= est. forward cost {FORWARD_COST}·{n} + {FORWARD_FIXED}"


@dataclass(frozen=True)
class JacobianPlan:
    """How a dense Jacobian will be (or was) computed.

    ``mode`` is ``"forward"`` (one JVP per input entry) or ``"reverse"`` (one VJP per output
    entry); ``chunk_size`` basis vectors go through one vectorised call, ``num_chunks`` times.
    Sizes are in bytes; ``estimated_peak_bytes`` is the plan's estimate of the peak working set.
    """

    mode: str
    reason: str
    n: int
    m: int
    chunk_size: int
    num_chunks: int
    result_bytes: int
    work_bytes_per_vector: int
    estimated_peak_bytes: int
    budget: int
    single_tensor_output: bool = False
    # only torch.func's transforms treat f as the user means: f writes an input-dependent value
    # into a tensor it captured, or runs autograd itself (see _probe.Probe), which plain
    # autograd would let through; the constant route (_constant) is then not taken
    transform_only: bool = False

    def __str__(self) -> str:
        return (
            f"{self.mode} mode ({self.reason}): J is {self.m}×{self.n} "
            f"({format_bytes(self.result_bytes)}), {self.num_chunks} chunk(s) of "
            f"{self.chunk_size}, est. peak {format_bytes(self.estimated_peak_bytes)} "
            f"of a {format_bytes(self.budget)} budget"
        )


NO_GRAD_FORWARD = (
    "{f} computes part of its output from its input under torch.no_grad (or inference_mode / "
    "set_grad_enabled(False)); reverse mode treats "
    "that part as a constant but forward mode differentiates through it, so the two modes "
    "would give different Jacobians. Use "
    "mode='reverse' or mode='auto' (which then picks reverse), or write the constant part with "
    ".detach(), which every mode honours")


def check_mode(mode: str) -> None:
    _validate.choice(mode, "mode", MODES)


def check_chunk_size(chunk_size: ChunkSize) -> None:
    _validate.chunk_size(chunk_size)


def resolve_budget(memory_budget: int | str | None) -> int:
    return _validate.memory_budget(memory_budget)


AUTOGRAD_FORWARD = (
    "{f} runs torch.autograd itself (torch.autograd.grad, torch.autograd.functional, "
    ".backward()), which no torch.func transform can follow and which forward mode would "
    "misread as a constant; compute inner derivatives with jacobite (jacobite.jacobian, "
    "jacobite.vjp, jacobite.hessian) or torch.func instead")

RANDOM_FORWARD = (
    "{f} draws random numbers (Dropout in training mode, torch.rand, ...); forward mode evaluates "
    "f once per chunk of columns, so the columns would come from different draws. Use "
    "mode='reverse' or mode='auto' (one evaluation: the Jacobian for that draw), or put the "
    "model in eval() mode")


NO_FORWARD_AD_MSG = (
    "{f} uses an operation that torch cannot differentiate in forward mode (torch.cdist's direct "
    "kernel); use mode='reverse' or mode='auto', or compute_mode='use_mm_for_euclid_dist' in "
    "torch.cdist")


def honour_semantics(mode: str, reason: str, probe: Probe | None,
                     fname: str) -> tuple[str, str]:
    """Reverse mode when only it gives the Jacobian the user means — f has no_grad regions or
    draws random numbers — for mode "auto"; a typed error for an explicit "forward"."""
    if probe is None or not probe.reverse_only or mode == "reverse":
        return mode, reason
    if probe.runs_autograd:
        why, msg = "runs torch.autograd itself", AUTOGRAD_FORWARD
    elif probe.stops_gradient:
        why, msg = "computes under torch.no_grad", NO_GRAD_FORWARD
    elif probe.no_forward_ad:
        why, msg = "uses an operation without a forward-mode derivative", NO_FORWARD_AD_MSG
    else:
        why, msg = "draws random numbers", RANDOM_FORWARD
    if reason != "requested":
        return "reverse", f"auto: f {why}, which only reverse mode handles consistently"
    raise UnsupportedOperationError(msg.format(f=fname))


def guard(m: int, n: int, itemsize: int, budget: int, what: str = "dense Jacobian") -> int:
    """Raise JacobianTooLarge if an m×n result alone would exceed the budget; return its bytes."""
    nbytes = m * n * itemsize
    if nbytes > budget:
        raise JacobianTooLarge(
            f"the {what} would be {m:,} × {n:,} = {format_bytes(nbytes)}, over the memory budget "
            f"of {format_bytes(budget)}; use jacobite.linearize(f, x) for matrix-free products "
            "(mv / rmv), the sparse path if most entries are zero, or raise the budget with "
            "memory_budget=... or jacobite.config.set_memory_budget(...)"
        )
    return nbytes


def make_plan(n: int, m: int, itemsize: int, probe: Probe | None, mode: str,
              chunk_size: ChunkSize, budget: int, fname: str = "f") -> JacobianPlan:
    """Pick the mode and chunk size; raise JacobianTooLarge when the result cannot fit."""
    if mode == "auto":
        chosen, reason = auto_mode(n, m)
    else:
        chosen, reason = mode, "requested"
    chosen, reason = honour_semantics(chosen, reason, probe, fname)
    result = guard(m, n, itemsize, budget)
    basis = n if chosen == "forward" else m
    work = probe.work_bytes if probe is not None else (n + m) * itemsize
    per_vec = work + (n + m) * itemsize  # tangent/cotangent intermediates + basis + result row
    if chunk_size == "auto":
        avail = budget - result - work
        c = chunk(basis, per_vec, avail)
        if basis:
            reason += f"; chunk fits {format_bytes(budget)}"
    elif chunk_size is None:
        c = max(basis, 1)
    else:
        c = min(int(chunk_size), max(basis, 1))
    c = max(int(c), 1)
    if probe is not None and probe.vmap_wrong_backward and chosen == "reverse" and c > 1:
        c = 1  # torch's batched backward of such an operation is wrong: one VJP at a time
        reason += "; one VJP at a time (torch.cdist's vectorised backward is wrong)"
    chunks = -(-basis // c) if basis else 0
    plan = JacobianPlan(chosen, reason, n, m, c, chunks, result, per_vec,
                        result + work + c * per_vec, budget,
                        probe is not None and probe.single_tensor,
                        probe is not None and (probe.writes_captured or probe.runs_autograd))
    log.debug("jacobian plan: %s", plan)
    return plan
