"""The Hessian of a scalar function: forward-over-reverse, chunked under the memory budget."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from torch.func import grad as _grad

from .. import _validate
from .._modules import keeps_state
from .._validate import ChunkSize
from ..errors import ShapeError
from ._engine import probe_of
from ._plan import Mode
from ._trees import function_name, normalize_argnums
from .jacobian import _flags, jacobian

__all__ = ["hessian"]


_GRADIENTS: weakref.WeakKeyDictionary[Any, dict[Any, Callable[..., Any]]] = (
    weakref.WeakKeyDictionary())


def _gradient_of(f: Callable[..., Any], argnums: int | tuple[int, ...]) -> Callable[..., Any]:
    """``grad(f)`` with a scalar-output check; the same object for the same ``f``, so the dense
    engine's plan cache recognises repeated Hessians of one function."""
    try:
        per_f = _GRADIENTS.setdefault(f, {})
    except TypeError:  # not weak-referenceable: build a fresh one
        per_f = {}
    key = argnums if isinstance(argnums, int) else tuple(argnums)
    if key in per_f:
        return per_f[key]
    fname = function_name(f)
    g = _grad(f, argnums=argnums)

    def gradient(*a: Any) -> Any:
        try:
            return g(*a)
        except RuntimeError as exc:
            text = str(exc)
            if "scalar" in text or "1 element" in text or "numel" in text:
                raise ShapeError(
                    f"hessian needs {fname} to return a scalar (one element); for a vector-valued "
                    "function take jacobian(lambda x: jacobian(f, x), x) instead"
                ) from exc
            raise

    gradient.__qualname__ = f"grad({fname})"
    per_f[key] = gradient
    return gradient


@keeps_state
def hessian(f: Callable[..., Any], *args: Any, argnums: int | tuple[int, ...] = 0,
            chunk_size: ChunkSize = "auto", flat: bool = False,
            memory_budget: int | str | None = None, check_finite: bool = True,
            sparse: bool = False) -> Any:
    """The Hessian of a scalar-valued ``f``: the forward-mode Jacobian of its reverse-mode gradient
    (reverse over reverse when ``f`` computes under ``torch.no_grad``, which forward mode would
    not honour).

    Shapes follow ``torch.func.hessian`` (input shape + input shape), or one ``(n, n)`` matrix with
    ``flat=True``. Chunked like :func:`jacobite.jacobian` so large Hessians stay under the budget.
    ``sparse=True`` detects the Hessian's pattern, star-colors it and returns a CSR
    :class:`~jacobite.operators.SparseOperator` (:func:`jacobite.sparse.prepare_hessian`).

    >>> import torch, jacobite
    >>> f = lambda v: v[0] ** 2 + 4 * v[1] ** 2 - 11 * v[0] + 8 * v[1] - 16
    >>> jacobite.hessian(f, torch.tensor([0.0, 0.0], dtype=torch.float64)).tolist()
    [[2.0, 0.0], [0.0, 8.0]]
    >>> H = jacobite.hessian(lambda v: (v ** 3).sum(), torch.ones(4), sparse=True)
    >>> H.to_scipy().nnz, H.diagonal().tolist()
    (4, [6.0, 6.0, 6.0, 6.0])
    """
    _flags(sparse=sparse)
    if sparse:  # the sparse path checks every argument itself, as the dense one does
        from ..sparse.evaluate import one_call

        return one_call(f, args, argnums, "auto", False, check_finite, hessian=True,
                        chunk_size=chunk_size, flat=flat, memory_budget=memory_budget)
    _validate.callable_(f)
    _flags(flat=flat, check_finite=check_finite)
    normalize_argnums(argnums, len(args))
    _validate.chunk_size(chunk_size)
    _validate.memory_budget(memory_budget)
    gradient = _gradient_of(f, argnums)
    # forward-over-reverse, unless f has no_grad regions (forward mode would differentiate
    # through them) or draws random numbers (forward mode evaluates it once per chunk): then
    # reverse-over-reverse, as torch.autograd.functional.hessian
    mode: Mode = "reverse" if probe_of(f, args, argnums).reverse_only else "forward"
    return jacobian(gradient, *args, argnums=argnums, mode=mode, chunk_size=chunk_size,
                    flat=flat, memory_budget=memory_budget, check_finite=check_finite)


