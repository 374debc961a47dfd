"""Translate torch.func's runtime errors into jacobite errors that name the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import DtypeError, OutputTypeError, UnsupportedOperationError

MUTATES_INPUT = (
    "{f} modifies its input in place (x.mul_(2), x[i] = ..., x += ...), so every evaluation sees "
    "a different input and the Jacobian is meaningless; write it out of place (y = x * 2, "
    "torch.where, torch.cat) — your tensor was left unchanged")

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
    (("setup_context",), UnsupportedOperationError,
     "{f} uses a custom torch.autograd.Function written in the old style; torch.func transforms "
     "need it to define a separate setup_context staticmethod (and vmap support: "
     "generate_vmap_rule = True) — see PyTorch's notes on extending torch.func"),
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
        for needles, cls, msg in _RULES:
            if any(n in text for n in needles):
                first = text.strip().splitlines()[0][:200] if text.strip() else ""
                raise cls(msg.format(f=fname, mode=mode) + f" [torch said: {first}]") from exc
        raise


def check_not_mutated(fname: str, leaves: tuple[object, ...], versions: tuple[int, ...]) -> None:
    """Raise if ``f`` changed any of the (private copies of the) inputs in place."""
    if any(t._version != v for t, v in zip(leaves, versions, strict=True)):  # type: ignore[attr-defined]
        raise UnsupportedOperationError(MUTATES_INPUT.format(f=fname))
