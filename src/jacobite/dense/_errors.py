"""Translate torch.func's runtime errors into jacobite errors that name the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from torch import nn

from ..errors import (
    DtypeError,
    ModuleStateError,
    OutputTypeError,
    ShapeError,
    UnsupportedOperationError,
)

MUTATES_INPUT = (
    "{f} modifies its input in place (x.mul_(2), x[i] = ..., x += ...), so every evaluation sees "
    "a different input and the Jacobian is meaningless; write it out of place (y = x * 2, "
    "torch.where, torch.cat) — your tensor was left unchanged")

CHECKPOINT = (
    "{f} uses torch.utils.checkpoint, which torch.func's transforms cannot differentiate in "
    "{mode} mode (reentrant checkpointing is an old-style autograd.Function; the non-reentrant "
    "kind uses saved-tensor hooks, which reverse mode does not support); compute the Jacobian "
    "without checkpointing (e.g. a flag on your model that skips it), or, with "
    "use_reentrant=False, use mode='forward'")

RANDOM = (
    "{f} draws random numbers (Dropout in training mode, torch.rand, ...), and the vectorised "
    "{mode}-mode transform would have to choose which basis vectors share a draw; put the model "
    "in eval() mode, or use mode='reverse', which evaluates f once (the Jacobian for that draw)")

MUTATES_ARGUMENT = (
    "{f} changes its argument {i} in place; jacobite evaluates f more than once (how often "
    "depends on the mode and the chunk size), so that side effect would repeat an unspecified "
    "number of times. Return the new value instead (has_aux=True carries it out), or update "
    "the tensor after the Jacobian — your tensor was left unchanged")

_RULES: tuple[tuple[tuple[str, ...], type[Exception], str], ...] = (
    (("leaf Variable that requires grad is being used in an in-place operation",),
     UnsupportedOperationError, MUTATES_INPUT),
    (("must be floating-point or complex",), DtypeError,
     "{f} returns a tensor with an integer or bool dtype, which has no derivative; return a "
     "floating-point tensor (integer outputs come from rounding, argmax or comparisons)"),
    (("to return only tensors", "Expected f(*primals) to return only tensors"), OutputTypeError,
     "{f} must return a tensor or a pytree (tuple, list, dict) of tensors; convert Python "
     "numbers with torch.as_tensor and return aux data through has_aux=True"),
    (("would mutate a captured Tensor",), UnsupportedOperationError,
     "{f} changes a tensor it captured (a buffer, a global, a closure variable) in place "
     "during the transform; pass that tensor as an argument or write the update out of place"),
    (("inplace", "in-place"), UnsupportedOperationError,
     "{f} writes in place into a tensor that does not depend on the input (e.g. y = zeros(n); "
     "y[i] += x[i] or y.add_(x)), which the vectorised {mode}-mode transform cannot batch; build "
     "the result out of place (torch.stack, torch.cat, torch.where, y = y + x) or pass "
     "chunk_size=1"),
    (("calling .item()", ".item()", "data-dependent"), UnsupportedOperationError,
     "{f} reads a tensor's value into Python (.item(), float(), bool(), `if t:`) which the "
     "vectorised {mode}-mode transform cannot do; use tensor operations (torch.where) instead, "
     "or try mode='reverse', which evaluates f unbatched"),
    (("numpy()", "doesn't have storage", "does not have storage"), UnsupportedOperationError,
     "{f} leaves torch (calls .numpy()), so automatic differentiation cannot follow it; write "
     "it with torch operations, or use jacobite.numeric.jacobian for black-box functions"),
    (("dynamic shape", "dynamic output shape", "data-dependent output shape"),
     UnsupportedOperationError,
     "{f} uses an operation whose output shape depends on values (nonzero, masked_select, "
     "unique, boolean indexing); use torch.where with a fixed shape instead"),
    (("randomness error mode", "randomness flag"), UnsupportedOperationError, RANDOM),
    (("requires_grad_()", "torch.autograd.functional", "can't retain_grad"),
     UnsupportedOperationError,
     "{f} drives torch.autograd itself (requires_grad_(), retain_grad(), torch.autograd.grad or "
     "torch.autograd.functional, .backward()) on values that depend on its input, which the "
     "{mode}-mode transform cannot follow; compute inner derivatives with jacobite "
     "(jacobite.jacobian, jacobite.vjp, jacobite.hessian) or torch.func instead"),
    (("non-empty output",), OutputTypeError,
     "{f} returned no tensor; return a tensor or a pytree (tuple, list, dict) of tensors"),
    (("should be a tuple: (output, aux)",), OutputTypeError,
     "with has_aux=True, {f} must return a pair (output, aux): a tuple of exactly two items"),
    (("Expected tensors, got unsupported type",), OutputTypeError,
     "{f} returned a value that is not a tensor (with has_aux=True in jvp/vjp the aux must be "
     "tensors too); convert numbers with torch.as_tensor, or carry other values outside f"),
    (("pytree structure of cotangents",), ShapeError,
     "the cotangents passed to vjp_fn must have the structure of {f}'s output (the same nesting "
     "of tuples, lists and dicts, one tensor per output tensor); pass them in that structure"),
    (("saved tensor hooks",), UnsupportedOperationError,
     "{f} runs under saved-tensor hooks (torch.autograd.graph.save_on_cpu, a hooks context "
     "around the call, torch.utils.checkpoint), which torch.func's reverse mode does not "
     "support; leave that context for the Jacobian, or use mode='forward'"),
    (("does not have vmap support",), UnsupportedOperationError,
     "{f} uses a custom torch.autograd.Function without a vmap rule, which the vectorised "
     "{mode}-mode transform needs; pass chunk_size=1 (a plain loop, no vmap), or give the "
     "Function generate_vmap_rule = True (or a vmap staticmethod)"),
    (("setup_context",), UnsupportedOperationError,
     "{f} uses a custom torch.autograd.Function written in the old style; torch.func transforms "
     "need it to define a separate setup_context staticmethod (and vmap support: "
     "generate_vmap_rule = True) — see PyTorch's notes on extending torch.func"),
    (("Trying to use forward AD with",), UnsupportedOperationError,
     "{f} uses an operation that torch cannot differentiate in forward mode (named below); use "
     "mode='reverse' — for a Hessian or a second derivative through it, take "
     "jacobite.numeric.jacobian of the reverse-mode gradient, or rewrite that operation (for "
     "torch.cdist: compute_mode='use_mm_for_euclid_dist')"),
    (("derivative for", "is not implemented"), UnsupportedOperationError,
     "{f} uses an operation whose derivative torch does not implement at this order (named "
     "below); use a lower order of differentiation through it, jacobite.numeric.jacobian, or "
     "rewrite that operation (for torch.cdist: compute_mode='use_mm_for_euclid_dist')"),
    (("does not require grad and does not have a grad_fn",), UnsupportedOperationError,
     "{f} detaches its result from the input (.detach(), torch.no_grad(), .data); remove that"),
)


@contextlib.contextmanager
def translate(fname: str, mode: str) -> Iterator[None]:
    """Re-raise known torch.func failures as typed jacobite errors naming the fix."""
    try:
        yield
    except RuntimeError as exc:
        if isinstance(exc, UnsupportedOperationError):
            raise
        text = str(exc)
        if ("setup_context" in text or "saved tensor hooks" in text) and _from_checkpoint(exc):
            raise UnsupportedOperationError(CHECKPOINT.format(f=fname, mode=mode)) from exc
        for needles, cls, msg in _RULES:
            if any(n in text for n in needles):
                first = text.strip().splitlines()[0][:200] if text.strip() else ""
                raise cls(msg.format(f=fname, mode=mode) + f" [torch said: {first}]") from exc
        raise


def _from_checkpoint(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.replace("\\", "/").endswith("torch/utils/checkpoint.py"):
            return True
        tb = tb.tb_next
    return False


def check_not_mutated(fname: str, leaves: tuple[object, ...], versions: tuple[int, ...]) -> None:
    """Raise if ``f`` changed any of the (private copies of the) inputs in place."""
    if any(t._version != v for t, v in zip(leaves, versions, strict=True)):  # type: ignore[attr-defined]
        raise UnsupportedOperationError(MUTATES_INPUT.format(f=fname))


def check_module_state(f: Any, *, per_sample: bool = False) -> None:
    """Refuse a module whose forward pass would change it (BatchNorm updating its running
    statistics in training mode) — or, for per-sample Jacobians, one that mixes the samples of a
    batch (BatchNorm in training mode normalises with batch statistics)."""
    if not isinstance(f, nn.Module):
        return
    for name, sub in f.named_modules():
        if not (isinstance(sub, nn.modules.batchnorm._NormBase) and sub.training):
            continue
        where = f"{name or type(f).__name__} ({type(sub).__name__})"
        if per_sample:
            raise ModuleStateError(
                f"{where} is in training mode, where it normalises with the statistics of the "
                "whole batch, so one sample's output depends on the others and per-sample "
                "Jacobians do not exist; call module.eval() first, or take jacobite.jacobian of "
                "the whole batch")
        if sub.track_running_stats:
            raise ModuleStateError(
                f"{where} is in training mode and updates its running statistics in place on "
                "every forward pass, so its Jacobian would change the model; call module.eval() "
                "first (Jacobian with the running statistics)")
